#!/usr/bin/env bash
# Checks that weights move between torchvision and Clover with the same logits (relative
# error <= 1e-4), in both directions, for VGG, ResNet, ResNeXt, Wide ResNet and
# EfficientNet (scripts/interop/torchvision_check.py says how); first, that the PyTorch
# benchmark peer's written-out models have Clover's parameter counts and train every tensor
# (scripts/interop/peer_check.py).
#
#   bash scripts/torchvision_interop.sh                       # every model
#   bash scripts/torchvision_interop.sh --models resnet50     # arguments go to the checker
#
# PyTorch is not one of Clover's dependencies: this script installs CPU PyTorch,
# torchvision and safetensors into a virtual environment under .build/ (pip, from the
# configured index), builds `clover` in release mode, and runs the checker on the default
# OpenCL device (set CLOVER_DEVICE to choose another).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh

venv=.build/interop-venv
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c "import torch, torchvision, safetensors" 2>/dev/null; then
    # torch 2.13 (a CPU wheel where pip is configured to offer one) with the torchvision
    # release built for it (0.28); torchvision's own requirement would pull a CUDA build
    # of torch, hence --no-deps and its two other needs.
    "$venv/bin/pip" install --quiet "torch==2.13.*"
    "$venv/bin/pip" install --quiet --no-deps "torchvision==0.28.*"
    "$venv/bin/pip" install --quiet safetensors pillow numpy
fi

bin=$(clover_release_binary)
"$venv/bin/python" scripts/interop/peer_check.py --clover "$bin"
exec "$venv/bin/python" scripts/interop/torchvision_check.py --clover "$bin" "$@"
