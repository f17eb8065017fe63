#!/usr/bin/env bash
# The RegNet paper's comparison (its Table III in spirit, Fashion-MNIST instead of CIFAR),
# repeated over seeds: ResNet-20, RegNet-20 with ConvGRU and ConvLSTM regulators under both
# fusions (the 3x3 conv over [I, H], and the paper's 1x1 2N → N), and the SE variant of each,
# all trained with the same schedule. Prints a markdown table of the mean ± sample standard
# deviation of test error over the seeds, with the parameter counts.
#
#   bash scripts/regnet_comparison.sh                 # the POCL schedule below, seeds 0 1 2
#   SEEDS="0 1 2 3 4" bash scripts/regnet_comparison.sh
#   bash scripts/regnet_comparison.sh --device 0 --train-subset 60000 --test-subset 10000 --epochs 10
#
# Extra arguments go to every `clover train` after the schedule (later options win), e.g. a
# GPU and a longer schedule. CLOVER_BIN picks the binary (default: a release build in .build);
# RUNS_DIR the output folder. A run whose metrics.json exists under the same command is reused,
# so an interrupted comparison continues where it stopped; MODELS picks a subset of models.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [ -n "${CLOVER_BIN:-}" ]; then
    bin=$CLOVER_BIN
else
    source scripts/setup.sh
    bin=$(clover_release_binary)
fi

out=${RUNS_DIR:-runs/regnet-comparison}
# Sized for the 2-core POCL machine now that the convolution engine trains ResNet-20 at about
# 600 and the RegNets at 100-160 images/s: all 30 runs in about 40 minutes. One pass over the
# first 8,192 training images without augmentation, tested on all 10,000 test images; SGD
# momentum 0.9, lr 0.05 with cosine decay, weight decay 5e-4, batch 32 (256 steps: batch
# norm's running statistics, momentum 0.1, have long left their initial values). The earlier
# table (1,024 images, batch 16, 1,000 test images, before the engine) is in the README's
# history of this comparison.
schedule=(--dataset fashion-mnist --epochs 1 --train-subset 8192 --test-subset 10000 --batch-size 32
          --lr 0.05 --schedule cosine --weight-decay 5e-4 --no-augment)
# regnet20-plain is ResNet-20 with projection shortcuts (272,474 parameters at 3 input
# channels, the paper's 0.273M): the same network as the RegNets less the regulator.
default_models=(regnet20-plain regnet20-gru regnet20-gru-paper regnet20-lstm regnet20-lstm-paper
                se-regnet20-plain se-regnet20-gru se-regnet20-gru-paper se-regnet20-lstm se-regnet20-lstm-paper)
read -r -a models <<< "${MODELS:-${default_models[*]}}"
read -r -a seeds <<< "${SEEDS:-0 1 2}"

for seed in "${seeds[@]}"; do
    for model in "${models[@]}"; do
        dir="$out/$model/seed$seed"
        command="$bin train --model $model ${schedule[*]} --seed $seed $* --out $dir"
        if [ -f "$dir/metrics.json" ] && [ "$(cat "$dir/command" 2>/dev/null)" = "$command" ]; then
            echo "reusing $dir"
            continue
        fi
        rm -rf "$dir"
        mkdir -p "$dir"
        echo "$command" > "$dir/command"
        "$bin" train --model "$model" "${schedule[@]}" --seed "$seed" "$@" --out "$dir" 2>&1 \
            | tee "$dir/train.log"
    done
done

echo
echo "Schedule: ${schedule[*]} $*; seeds ${seeds[*]}"
echo
python3 - "$out" "${seeds[@]}" -- "${models[@]}" <<'PY'
import json, re, statistics, sys
args = sys.argv[1:]
out, seeds, models = args[0], args[1:args.index("--")], args[args.index("--") + 1:]
print("| model | parameters (1 input channel) | test error (%), mean ± sd | per seed | seeds | training seconds (mean) |")
print("| --- | --- | --- | --- | --- | --- |")
for model in models:
    errors, seconds, params = [], [], "?"
    for seed in seeds:
        try:
            history = json.load(open(f"{out}/{model}/seed{seed}/metrics.json"))
            log = open(f"{out}/{model}/seed{seed}/train.log").read()
        except (OSError, ValueError):
            continue  # not finished: left out, and the seeds column says so
        errors.append(100 * (1 - history[-1]["testAccuracy"]))
        seconds.append(sum(m["seconds"] for m in history))
        found = re.search(r"\((\d+) parameters\)", log)
        params = f"{int(found.group(1)):,}" if found else params
    if not errors:
        print(f"| {model} | {params} | not run | | 0 | |")
        continue
    sd = statistics.stdev(errors) if len(errors) > 1 else float("nan")
    per_seed = ", ".join(f"{e:.2f}" for e in errors)
    print(f"| {model} | {params} | {statistics.mean(errors):.2f} ± {sd:.2f} | {per_seed} | {len(errors)} "
          f"| {statistics.mean(seconds):.0f} |")
PY
