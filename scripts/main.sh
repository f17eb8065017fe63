#!/usr/bin/env bash
# The main job: installs what is missing, builds the `clover` tool in release
# mode, lists the OpenCL devices and runs the conformance sweep.
#
# Extra arguments go to `clover conformance`, e.g.
#   bash scripts/main.sh --device pocl --json conformance.json
# Exits non-zero when the build fails or any conformance check fails.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh

swift build -c release --product clover
bin="$(swift build -c release --product clover --show-bin-path)/clover"

"$bin" devices
echo
"$bin" conformance "$@"
