#!/usr/bin/env bash
# The one command for the GPU machine: Clover and its PyTorch peer on the same
# GPU in one go, then the ratio table.
#
# Here, first (builds a static clover-bench into .gpu/, with the OpenCL loader
# and CLBlast packages):   ../shared/gpu/stage.sh clover-bench
# There, from the project root:
#   bash Benchmarks/run_gpu.sh [clover-bench options, e.g. --repeat 5 --filter gemm]
#
# Results go to $OUT (the device tool's output folder) or ./bench-results:
#   plan.json    the cases (clover-bench --list), which the peer reads, so both
#                sides time the same shapes even if Clover's run is cut short
#   clover.json, clover.md   Clover's results (JSON rewritten after every benchmark)
#   torch.json   PyTorch strict FP32 and PyTorch default, same schema
#   merged.md    the ratio table (Benchmarks/merge.py)
# Every step runs even when an earlier one fails; the exit status is non-zero
# if any did.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out="${OUT:-bench-results}"
mkdir -p "$out"
status=0

# shellcheck disable=SC1091
source .gpu/prelude.sh || { echo "run_gpu.sh: .gpu/prelude.sh failed (run ../shared/gpu/stage.sh clover-bench first)" >&2; exit 1; }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>/dev/null | tee "$out/gpu.txt"

.gpu/bin/clover-bench --list --json "$out/plan.json" "$@" > /dev/null || status=1
.gpu/bin/clover-bench --device nvidia --json "$out/clover.json" "$@" | tee "$out/clover.md"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
python3 Benchmarks/peers/pytorch_peer.py --cases "$out/plan.json" --json "$out/torch.json" || status=1
if [ -f "$out/clover.json" ] && [ -f "$out/torch.json" ]; then
    python3 Benchmarks/merge.py "$out/clover.json" "$out/torch.json" --out "$out/merged.md" || status=1
else
    echo "run_gpu.sh: nothing to merge (clover.json or torch.json missing)" >&2
    status=1
fi
exit "$status"
