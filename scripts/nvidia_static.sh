#!/usr/bin/env bash
# The static NVIDIA check (README "The static NVIDIA check"): every kernel of every GPU-path
# parameter set, with the build options the runtime passes, compiled as NVIDIA's OpenCL would
# compile it (OpenCL C 1.2 -> NVPTX by clang's nvptx64-nvidia-nvcl target with libclc's
# builtins -> SASS by NVIDIA's ptxas) for sm_80 and sm_90, its registers, spills, stack, local
# memory and resident work-groups per SM held to budgets (scripts/nvidia/static_check.py).
#
# Tools: clang-15 and libclc-15 from Debian (scripts/setup.sh installs them), ptxas from PyPI's
# nvidia-cuda-nvcc-cu12 in .build/nvidia-venv (installed here on first use). No GPU is needed.
#
#   bash scripts/nvidia_static.sh            # writes NVIDIA_STATIC.md; exits 1 on a budget miss
#
# CLOVER_BIN picks the clover binary (default: the release build). CLOVER_NVIDIA_STATIC_OUTPUT
# names the table to write (default NVIDIA_STATIC.md in the repository root).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh

ptxas_package="nvidia-cuda-nvcc-cu12==12.9.86"
venv=.build/nvidia-venv
find_ptxas() { ls "$venv"/lib/python3*/site-packages/nvidia/cuda_nvcc/bin/ptxas 2>/dev/null | head -n 1; }
ptxas=$(find_ptxas || true)
if [ -z "$ptxas" ] || ! "$ptxas" --version >/dev/null 2>&1; then
    [ -x "$venv/bin/pip" ] || python3 -m venv "$venv"
    echo "nvidia-static: installing ptxas ($ptxas_package) into $venv"
    "$venv/bin/pip" install --quiet "$ptxas_package"
    ptxas=$(find_ptxas || true)
    if [ -z "$ptxas" ]; then
        echo "error: $ptxas_package installed no ptxas under $venv" >&2
        exit 2
    fi
fi

bin=${CLOVER_BIN:-$(clover_release_binary)}
work=.build/nvidia-static
rm -rf "$work/inventory"
mkdir -p "$work"
"$bin" gpu-kernels --output "$work/inventory"
python3 scripts/nvidia/static_check.py --inventory "$work/inventory" --ptxas "$ptxas" \
    --clang clang-15 --libclc /usr/lib/clc/nvptx64--nvidiacl.bc --kernels Kernels \
    --output "${CLOVER_NVIDIA_STATIC_OUTPUT:-NVIDIA_STATIC.md}" --json "$work/static.json"
