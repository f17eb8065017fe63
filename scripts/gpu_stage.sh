#!/usr/bin/env bash
# Stages everything the GPU machine needs into .gpu/ (carried by the device tool):
#   1. ../shared/gpu/stage.sh clover clover-bench: static-stdlib release binaries, the OpenCL
#      loader, CLBlast and clinfo packages, and prelude.sh (which unpacks every .gpu/debs/*.deb);
#   2. the Debian packages of every other shared library the two binaries load (Open MPI's
#      libmpi and what it needs: both tools link CloverDistributed), so they start on a machine
#      without Open MPI — found with ldd and dpkg, not listed by hand;
#   3. the Fashion-MNIST files into .gpu/data.
# Then, there: source .gpu/prelude.sh && bash scripts/gpu_session.sh [parts...]
# .gpu/ as a whole is over the device tool's 64 MiB: carry .gpu/bin, .gpu/debs and
# .gpu/prelude.sh for the first four parts, and .gpu/bin/clover, .gpu/debs, .gpu/prelude.sh and
# .gpu/data for `train` (printed below with their sizes).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
stage=../shared/gpu/stage.sh
[ -x "$stage" ] || [ -f "$stage" ] || { echo "gpu_stage.sh: $stage is missing" >&2; exit 2; }
bash "$stage" clover clover-bench
mkdir -p .gpu/debs .gpu/data
# The C runtime and the compiler's libraries are on every machine.
base='^(libc6|libgcc-s1|libstdc\+\+6|libzstd1|zlib1g|liblzma5|libbz2-1.0)$'
packages=$(for bin in .gpu/bin/clover .gpu/bin/clover-bench; do
        ldd "$bin" | awk '/=>/ {print $3}' | while read -r lib; do
            dpkg -S "$(readlink -f "$lib")" 2>/dev/null | cut -d: -f1
        done
    done | sort -u | grep -Ev "$base" || true)
for p in $packages; do
    ls .gpu/debs/"${p}"_*.deb >/dev/null 2>&1 || (cd .gpu/debs && apt-get download "$p")
done
cp /usr/share/datasets/fashion-mnist/*.gz .gpu/data/
echo "staged: $(ls .gpu/bin | tr '\n' ' '); packages: $(ls .gpu/debs | tr '\n' ' ')"
# All of .gpu/ (two ~17 MiB binaries, ~30 MiB of Fashion-MNIST) is more than the device tool
# carries (64 MiB with the working tree), so a run carries one of two sets:
tree=$(git ls-files -co --exclude-standard -z | du -cb --files0-from=- 2>/dev/null | awk '/total$/ {s += $1} END {print s}')
carry() {
    local bytes
    bytes=$(( tree + $(du -cb "$@" | tail -1 | cut -f1) ))
    printf '  %-60s %3d MiB of 64%s\n' "$(printf '"%s" ' "$@")" $((bytes / 1048576)) \
        "$([ $bytes -lt $((62 * 1048576)) ] || echo '  TOO BIG')"
}
echo "carry (working tree included):"
carry .gpu/bin .gpu/debs .gpu/prelude.sh                       # gpu_session.sh devices steps tune bench
carry .gpu/bin/clover .gpu/debs .gpu/prelude.sh .gpu/data      # gpu_session.sh train
