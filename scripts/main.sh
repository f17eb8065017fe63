#!/usr/bin/env bash
# The main job: installs what is missing, builds the `clover` tool in release mode, lists the
# OpenCL devices, runs the conformance sweep, then trains CIFAR ResNet-20 on Fashion-MNIST
# on the best device found (the first GPU, else POCL's CPU device) and reports its test
# accuracy on all 10,000 test images.
#
#   bash scripts/main.sh                   # default device
#   bash scripts/main.sh --device pocl     # any `clover --device` value
#
# The training schedule fits a 2-core CPU in under 10 minutes with install and build (see
# BENCHMARKS.md, "Main job"): one pass over all 60,000 training images without random crops or
# flips (a single pass gains nothing from them; they cost about 3.7 points of accuracy at
# this length); set MAIN_EPOCHS, MAIN_TRAIN_IMAGES, MAIN_BATCH and MAIN_LR to change it. Exits non-zero when the build, a conformance check or the
# training fails.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# Each phase's wall time goes to standard error as it ends (BENCHMARKS.md, "The first run").
main_start=$SECONDS
phase_start=$SECONDS
phase() {
    echo "main: $1 took $((SECONDS - phase_start)) s ($((SECONDS - main_start)) s in all)" >&2
    phase_start=$SECONDS
}
source scripts/setup.sh
phase "setup (packages, data)"

device_args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --device) device_args=(--device "$2"); shift 2 ;;
        --device=*) device_args=(--device "${1#--device=}"); shift ;;
        *) echo "usage: bash scripts/main.sh [--device D]" >&2; exit 2 ;;
    esac
done

bin=$(clover_release_binary)
phase "release build"

"$bin" devices
echo
"$bin" conformance "${device_args[@]}"
phase "conformance"
echo
"$bin" train --model cifar-resnet20 --dataset fashion-mnist \
    --epochs "${MAIN_EPOCHS:-1}" --train-subset "${MAIN_TRAIN_IMAGES:-60000}" \
    --batch-size "${MAIN_BATCH:-64}" --lr "${MAIN_LR:-0.1}" --schedule cosine --weight-decay 5e-4 \
    --no-augment --seed 0 --log-every 25 --out runs/main "${device_args[@]}"
phase "training and evaluation"
