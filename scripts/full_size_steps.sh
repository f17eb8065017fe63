#!/usr/bin/env bash
# One SGD training step of every model in `clover models` at its standard input size
# (224² ImageNet models, 240²–600² EfficientNets, 32² CIFAR models) and class count, on
# synthetic data, then an evaluation pass; prints a markdown table of the loss, the step's
# seconds and the evaluation accuracy. Exits non-zero if any model fails.
#
#   bash scripts/full_size_steps.sh                    # default device, batch 2
#   bash scripts/full_size_steps.sh --device pocl --batch 4 --filter efficientnet
#
# On a GPU use a real batch (e.g. --batch 32); on a 2-core CPU the default batch of 2 keeps
# the whole sweep to minutes.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# CLOVER_BIN names a prebuilt clover (the GPU machine has no Swift toolchain: see
# scripts/gpu_session.sh); otherwise the setup runs and clover is built here.
if [ -z "${CLOVER_BIN:-}" ]; then
    source scripts/setup.sh
fi

device_args=()
batch=2
filter=""
while [ $# -gt 0 ]; do
    case "$1" in
        --device) device_args=(--device "$2"); shift 2 ;;
        --batch) batch=$2; shift 2 ;;
        --filter) filter=$2; shift 2 ;;
        *) echo "usage: bash scripts/full_size_steps.sh [--device D] [--batch B] [--filter TEXT]" >&2; exit 2 ;;
    esac
done

bin=${CLOVER_BIN:-$(clover_release_binary)}
out=${RUNS_DIR:-runs/full-size-steps}
mkdir -p "$out"
# The model names: the first column of `clover models` after its two header lines.
models=$("$bin" models | tail -n +3 | awk '{print $1}' | grep -F -- "$filter" || true)
[ -n "$models" ] || [[ "oscar-base" == *"$filter"* ]] || { echo "no model matches '$filter'" >&2; exit 2; }

failed=0
rows=()
for model in $models; do
    echo "== $model" >&2
    if "$bin" train --model "$model" --dataset synthetic --train-subset "$batch" --test-subset "$batch" \
        --batch-size "$batch" --epochs 1 --lr 0.01 --log-every 1 --out "$out/$model" "${device_args[@]}" \
        > "$out/$model.log" 2>&1; then
        rows+=("$(python3 - "$out/$model/metrics.json" "$model" "$("$bin" models --filter "$model" | tail -n +3 |
                  awk -v m="$model" '$1 == m {print $2}')" "$batch" <<'PY'
import json, sys
last = json.load(open(sys.argv[1]))[-1]
# A non-finite loss is written as the string "NaN" or "Infinity" (float() reads both).
print(f"| `{sys.argv[2]}` | {sys.argv[3]} | {sys.argv[4]} | {float(last['trainLoss']):.4f} | "
      f"{float(last['seconds']):.1f} | {float(last['testLoss']):.4f} | ok |")
PY
)")
    else
        failed=1
        rows+=("| \`$model\` | | $batch | | | | FAILED: $(tail -1 "$out/$model.log") |")
    fi
done

# The OSCAR encoder at BERT-base size (sequence 128) is not a zoo model: clover-bench times
# its pre-training step (masked-token + contrastive loss, AdamW) at batch $batch of its 32.
if [[ "oscar-base" == *"$filter"* ]]; then
    echo "== oscar-base" >&2
    bench=${CLOVER_BENCH_BIN:-$(clover_release_binary clover-bench)}
    scale=$(python3 -c "print($batch / 32)")
    if "$bench" --filter model/oscar-base --batch-scale "$scale" --warmup 0 --repeat 1 --no-reference \
        --json "$out/oscar-base.json" "${device_args[@]}" > "$out/oscar-base.log" 2>&1; then
        rows+=("$(python3 - "$out/oscar-base.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"][0]
p = r["params"]
print(f"| `oscar-base` | {p['words']} words + {p['tags']} tags + {p['regions']} regions | {p['batch']} | — | "
      f"{r['seconds']:.1f} | — | ok |")
PY
)")
    else
        failed=1
        rows+=("| \`oscar-base\` | | $batch | | | | FAILED: $(tail -1 "$out/oscar-base.log") |")
    fi
fi

echo
echo "| model | input | batch | training loss | step seconds | evaluation loss | result |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
printf '%s\n' "${rows[@]}"
exit $failed
