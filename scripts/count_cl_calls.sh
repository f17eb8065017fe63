#!/usr/bin/env bash
# Runs a command with its OpenCL calls counted, and prints the totals when it exits:
#
#   bash scripts/count_cl_calls.sh ./clover train --model resnet50 --dataset synthetic ...
#
# The counter is Sources/CCLCounters/CLCounters.c, the same file Clover links into every
# executable, built here with gcc as an LD_PRELOAD library (-DCLOVER_CL_COUNTERS_PRELOAD). It
# defines clEnqueueNDRangeKernel, clCreateBuffer, clEnqueueCopyBuffer, clEnqueueReadBuffer,
# clEnqueueWriteBuffer, clFinish, clWaitForEvents and clCreateKernel, counts each call and
# forwards it to the ICD loader, so CLBlast's internal kernels and buffers count as well. Any
# binary can be measured the same way, an older Clover build without the target included.
#
# Output: one line on standard error when the process exits,
#   cl-counts kernel_launches=N buffer_creations=N bytes_allocated=N buffer_copies=N reads=N
#   blocking_reads=N writes=N blocking_writes=N finishes=N event_waits=N kernel_creations=N
# or appended to $CLOVER_CL_COUNTS_FILE when that is set; child processes that inherit the
# preload (POCL runs its linker) add lines of their own. The command's exit status is kept.
set -euo pipefail

if [ $# -eq 0 ]; then
    echo "usage: bash scripts/count_cl_calls.sh COMMAND [ARGUMENTS...]" >&2
    exit 2
fi

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source="$root/Sources/CCLCounters/CLCounters.c"
library="${CLOVER_CL_COUNTER_LIBRARY:-${TMPDIR:-/tmp}/clover-cl-counters-$(id -u).so}"

# Rebuilt when the source is newer than the library.
if [ ! -f "$library" ] || [ "$source" -nt "$library" ]; then
    gcc -O2 -shared -fPIC -DCLOVER_CL_COUNTERS_PRELOAD \
        -I"$root/Sources/CCLCounters/include" "$source" -o "$library.tmp$$" -ldl
    mv "$library.tmp$$" "$library"
fi

LD_PRELOAD="$library${LD_PRELOAD:+:$LD_PRELOAD}" exec "$@"
