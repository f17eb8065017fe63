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
# A missing OpenCL device (or clover binary, mpirun, data set) fails the run
# rather than skipping every device test (Tests/CloverTestSupport); a
# developer can run `swift test` directly to get skips with their reasons.
export CLOVER_REQUIRE_DEVICE=${CLOVER_REQUIRE_DEVICE:-1}
swift test "$@"
