#!/usr/bin/env bash
# The RegNet paper's claim on our data (its Tables III/IV in spirit, Fashion-MNIST instead
# of CIFAR): CIFAR ResNet-20 against RegNet-20 with ConvGRU and ConvLSTM regulators, trained
# with the same schedule and seed, reporting test error and parameter counts as a markdown
# table. Extra arguments go to every `clover train` (e.g. --device, --epochs).
#
#   bash scripts/regnet_comparison.sh                       # the short schedule below
#   bash scripts/regnet_comparison.sh --epochs 30 --train-subset 60000   # later options win
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh
bin=$(clover_release_binary)

out=${RUNS_DIR:-runs/regnet-comparison}
# The main job's schedule (scripts/main.sh): one pass over the first 32,000 training images
# without augmentation, tested on all 10,000 test images.
schedule=(--dataset fashion-mnist --epochs 1 --train-subset 32000 --batch-size 64
          --lr 0.1 --schedule cosine --weight-decay 5e-4 --no-augment --seed 0)
models=(cifar-resnet20 regnet20-gru regnet20-lstm)
# TRAIN_MODELS="regnet20-gru regnet20-lstm" retrains only those and reuses the others' runs
# under $out (training is deterministic for a given command and seed).
read -r -a train_models <<< "${TRAIN_MODELS:-${models[*]}}"

for model in "${train_models[@]}"; do
    mkdir -p "$out/$model"
    "$bin" train --model "$model" "${schedule[@]}" --out "$out/$model" "$@" | tee "$out/$model/train.log"
done

echo
echo "| model | parameters | test error (%) | epochs | training seconds |"
echo "| --- | --- | --- | --- | --- |"
for model in "${models[@]}"; do
    # The count of the model as trained (1 input channel), from its log line.
    params=$(grep -oE '\([0-9]+ parameters\)' "$out/$model/train.log" | head -1 | tr -dc '0-9')
    python3 - "$out/$model/metrics.json" "$model" "$params" <<'PY'
import json, sys
history = json.load(open(sys.argv[1]))
last = history[-1]
seconds = sum(m["seconds"] for m in history)
print(f"| {sys.argv[2]} | {sys.argv[3]} | {100 * (1 - last['testAccuracy']):.2f} | {last['epoch']} | {seconds:.0f} |")
PY
done
