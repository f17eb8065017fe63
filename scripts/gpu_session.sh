#!/usr/bin/env bash
# Everything the GPU machine is needed for, in one go (the machine has NVIDIA's OpenCL driver
# and PyTorch but no Swift toolchain and no network):
#   1. the full ResNet-20 run on Fashion-MNIST (the ≥ 93.5% goal): 30 epochs over all 60,000
#      images, batch 128, lr 0.1 cosine, weight decay 5e-4, crop + flip augmentation;
#   2. one training step of every zoo model at its standard size and of the BERT-base OSCAR
#      encoder (scripts/full_size_steps.sh, batch 8);
#   3. the benchmark table against PyTorch (Benchmarks/run_gpu.sh).
#
# Here, first:
#   ../shared/gpu/stage.sh clover clover-bench
#   mkdir -p .gpu/data && cp /usr/share/datasets/fashion-mnist/*.gz .gpu/data/
# There (the device tool: carry .gpu, results under $OUT):
#   source .gpu/prelude.sh && bash scripts/gpu_session.sh [train|steps|bench ...]
# With no arguments all three run. Each writes to $OUT (or ./gpu-results). GPU_DEVICE (default
# nvidia), GPU_EPOCHS, GPU_STEP_BATCH and GPU_STEP_FILTER adjust them (a dry run of the steps
# on POCL here: GPU_DEVICE=pocl GPU_STEP_BATCH=1 GPU_STEP_FILTER=cifar-resnet20).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out="${OUT:-gpu-results}"
mkdir -p "$out"
parts=("$@")
[ ${#parts[@]} -gt 0 ] || parts=(train steps bench)
status=0
for part in "${parts[@]}"; do
    case "$part" in
        train)
            .gpu/bin/clover train --model cifar-resnet20 --dataset fashion-mnist --data-dir .gpu/data \
                --epochs "${GPU_EPOCHS:-30}" --batch-size 128 --lr 0.1 --schedule cosine --weight-decay 5e-4 \
                --seed 0 --log-every 100 --device "${GPU_DEVICE:-nvidia}" --out "$out/resnet20-full" | tee "$out/resnet20-full.log"
            [ "${PIPESTATUS[0]}" -eq 0 ] || status=1 ;;
        steps)
            CLOVER_BIN=.gpu/bin/clover CLOVER_BENCH_BIN=.gpu/bin/clover-bench RUNS_DIR="$out/steps" \
                bash scripts/full_size_steps.sh --device "${GPU_DEVICE:-nvidia}" \
                --batch "${GPU_STEP_BATCH:-8}" --filter "${GPU_STEP_FILTER:-}" | tee "$out/full-size-steps.md"
            [ "${PIPESTATUS[0]}" -eq 0 ] || status=1 ;;
        bench)
            bash Benchmarks/run_gpu.sh || status=1 ;;
        *)
            echo "gpu_session.sh: unknown part '$part' (train, steps or bench)" >&2; exit 2 ;;
    esac
done
exit "$status"
