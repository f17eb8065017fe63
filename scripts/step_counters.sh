#!/usr/bin/env bash
# The training-step counters of BENCHMARKS.md ("Training-step counters"), by one command:
#
#   bash scripts/step_counters.sh                     # builds this tree's release `clover`
#   COMMIT=39e897e bash scripts/step_counters.sh      # builds that commit in a worktree (before)
#   CLOVER_BIN=/path/to/clover bash scripts/step_counters.sh   # any build, an older one too
#
# For each model and batch size, `clover train` runs on synthetic data at the model's full
# input size under scripts/count_cl_calls.sh (an OpenCL call interposer, so CLBlast's internal
# kernels and buffers count), once for STEPS_SHORT steps and once for STEPS_LONG steps, with
# the same one-batch evaluation and checkpoint; the difference divided by the extra steps is
# what one step costs in steady state, whatever the binary prints. Then CIFAR ResNet-20 trains
# on the first THROUGHPUT_IMAGES Fashion-MNIST images (main.sh's options) and its images/s is
# reported.
#
# Environment: STEP_MODELS (default "resnet50 efficientnet-b0 resnext50-32x4d"; "none": only
# the images/s), STEP_BATCHES
# ("2 4"), STEPS_SHORT (2), STEPS_LONG (4), THROUGHPUT_IMAGES (3200, 0 skips it), DEVICE (a
# `clover --device` value; default: clover's choice), COMMIT_WORKTREE (where COMMIT is checked
# out; default /tmp/clover-COMMIT). The images/s figure needs an otherwise idle machine; run
# the before and after builds back to back.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
if [ -z "${CLOVER_BIN:-}" ]; then
    source scripts/setup.sh
    if [ -n "${COMMIT:-}" ]; then
        # Another commit's release build, in a worktree of its own beside this tree's.
        tree="${COMMIT_WORKTREE:-${TMPDIR:-/tmp}/clover-$COMMIT}"
        [ -d "$tree" ] || git worktree add --detach "$tree" "$COMMIT" >&2
        CLOVER_BIN=$(cd "$tree" && clover_release_binary)
    else
        CLOVER_BIN=$(clover_release_binary)
    fi
fi
models=(${STEP_MODELS:-resnet50 efficientnet-b0 resnext50-32x4d})
[ "${models[*]}" = none ] && models=()
batches=(${STEP_BATCHES:-2 4})
short=${STEPS_SHORT:-2}
long=${STEPS_LONG:-4}
images=${THROUGHPUT_IMAGES:-3200}
device_args=()
[ -n "${DEVICE:-}" ] && device_args=(--device "$DEVICE")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "binary: $CLOVER_BIN"
echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
"$CLOVER_BIN" devices | sed 's/^/  /'
echo

# Totals of one `clover train` run of `steps` steps: the cl-counts line.
counts() {
    local model=$1 batch=$2 steps=$3 file="$work/counts"
    rm -f "$file"
    CLOVER_CL_COUNTS_FILE="$file" bash scripts/count_cl_calls.sh "$CLOVER_BIN" train --model "$model" \
        --dataset synthetic --train-subset $((batch * steps)) --test-subset "$batch" --batch-size "$batch" \
        --epochs 1 --log-every 1000000 --seed 0 --out "$work/run-$model-$batch-$steps" "${device_args[@]}" >"$work/log" 2>&1 \
        || { echo "error: clover train failed for $model batch $batch:" >&2; tail -n 5 "$work/log" >&2; exit 1; }
    cat "$file"
}

# The table row of one model and batch: (long-run totals - short-run totals) / extra steps.
per_step_row() {
    python3 - "$@" <<'PY'
import sys
model, batch, steps, a, b = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
def parse(text):
    # One line per process that loaded the counter (POCL's compiler runs count
    # nothing); the sum is the command's.
    total = {}
    for line in text.splitlines():
        for k, v in (f.split("=") for f in line.split()[1:]):
            total[k] = total.get(k, 0) + int(v)
    return total
a, b = parse(a), parse(b)
d = {k: (b[k] - a[k]) / steps for k in a}
def n(v): return f"{v:,.0f}" if v == int(v) else f"{v:,.1f}"
mb = d["bytes_allocated"] / 1e6
print(f"| {model} | {batch} | {n(d['kernel_launches'])} | {n(d['kernel_creations'])} | {n(d['buffer_copies'])} | "
      f"{n(d['buffer_creations'])} ({mb:,.1f} MB) | {n(d['blocking_reads'])} | {n(d['finishes'])} | {n(d['event_waits'])} |")
PY
}

if [ "${#models[@]}" -gt 0 ]; then
    echo "OpenCL calls per training step in steady state (steps $((short + 1))-$long minus steps 1-$short, per step):"
    echo
    echo "| Model | Batch | Kernel launches | Kernel creations | Buffer copies | Buffer creations (bytes) | Blocking reads | clFinish | clWaitForEvents |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    for model in "${models[@]}"; do
        for batch in "${batches[@]}"; do
            a=$(counts "$model" "$batch" "$short")
            b=$(counts "$model" "$batch" "$long")
            per_step_row "$model" "$batch" "$((long - short))" "$a" "$b"
        done
    done
fi

if [ "$images" -gt 0 ]; then
    echo
    echo "CIFAR ResNet-20 on Fashion-MNIST, $images training images, batch 64 (main.sh's options):"
    "$CLOVER_BIN" train --model cifar-resnet20 --dataset fashion-mnist --epochs 1 --train-subset "$images" \
        --test-subset 256 --batch-size 64 --lr 0.1 --schedule cosine --weight-decay 5e-4 --no-augment --seed 0 \
        --log-every 25 --out "$work/resnet20" "${device_args[@]}" >"$work/resnet20.log" 2>&1 \
        || { echo "error: ResNet-20 training failed:" >&2; tail -n 5 "$work/resnet20.log" >&2; exit 1; }
    tr '\r' '\n' <"$work/resnet20.log" | grep -E '^epoch 1:' | sed 's/^/  /'
fi
