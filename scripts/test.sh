#!/usr/bin/env bash
# The tests: installs what is missing, builds every target with its tests,
# and runs `swift test`. The conformance tests run on the default OpenCL
# device (CLOVER_DEVICE, else the first GPU, else POCL's CPU device).
#
# Extra arguments go to `swift test`, e.g.
#   bash scripts/test.sh --filter CloverCLITests
# Exits non-zero when the build fails or any test fails.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh

# The benchmark merge script's tests (the peer's torch-free helpers), first,
# so that swift test's summary closes the log.
python3 -m unittest discover -s Benchmarks/tests
# The safetensors parser under libFuzzer for a bounded time (CLOVER_FUZZ_SECONDS, default 60):
# any crash fails the run.
bash scripts/fuzz_safetensors.sh "${CLOVER_FUZZ_SECONDS:-60}"
swift build --build-tests
# The DocC catalog of the Clover module (Sources/Clover/Clover.docc, built with
# swift-docc-plugin; about 15 s once the package is built). A DocC error fails
# the run, and so does any warning in the catalog's own articles (a broken
# symbol or article link); warnings from doc comments in the sources are shown
# but do not fail it.
docs_log=$(mktemp)
swift package --allow-writing-to-directory .build/docs generate-documentation \
    --target Clover --output-path .build/docs 2>&1 | tee "$docs_log"
if grep -qE -- '--> [^ ]*\.md:' "$docs_log"; then
    echo "error: the DocC catalog (Sources/Clover/Clover.docc) has warnings; see above" >&2
    rm -f "$docs_log"
    exit 1
fi
rm -f "$docs_log"
# The static NVIDIA check (about a minute on 2 cores once clover is built): every GPU-path
# kernel compiled for sm_80 and sm_90 by NVIDIA's assembler, held to its register, spill,
# stack, local-memory and occupancy budgets; it rewrites NVIDIA_STATIC.md and fails the run
# on any miss.
bash scripts/nvidia_static.sh
# A missing OpenCL device (or clover binary, mpirun, data set) fails the run
# rather than skipping every device test (Tests/CloverTestSupport); a
# developer can run `swift test` directly to get skips with their reasons.
export CLOVER_REQUIRE_DEVICE=${CLOVER_REQUIRE_DEVICE:-1}
swift test "$@"
