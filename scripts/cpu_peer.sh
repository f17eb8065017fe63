#!/usr/bin/env bash
# Training throughput on this machine's CPU: Clover on POCL against PyTorch's CPU build
# (torch.set_num_threads(2)), measured alternating, model by model, in one run (issue #23's table).
#
#   bash scripts/cpu_peer.sh [ROUNDS] [MODEL:BATCH ...]      (default 2 rounds, the seven rows below)
#
# Rows: CIFAR ResNet-20, WRN-16-8 and RegNet-20 ConvGRU at 32² and batch 64; ResNet-50,
# ResNeXt-50 32x4d, EfficientNet-B0 and VGG-11 at 224² and batch 8. Both sides time full training
# steps (forward, softmax cross-entropy, backward, SGD momentum 0.9 and weight decay 5e-4) on
# synthetic images after warm-up steps: Clover with `clover-bench --model NAME:BATCH` (the median
# of REPEAT steps after WARMUP), PyTorch with Benchmarks/peers/cpu_peer.py (the mean of STEPS
# steps after WARMUP), from the interop virtual environment (.build/interop-venv, made by
# scripts/torchvision_interop.sh). Each round runs Clover, then PyTorch, per model.
# CLOVER_BENCH picks the Clover binary (default: this tree's release build); OLD_CLOVER_BENCH adds
# an older build's column. Prints a Markdown table per round, then the per-model ratios.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
rounds=${1:-2}
case "$rounds" in ''|*[!0-9]*|0) echo "usage: bash scripts/cpu_peer.sh [ROUNDS] [MODEL:BATCH ...]" >&2; exit 2 ;; esac
shift || true
rows=("$@")
[ ${#rows[@]} -gt 0 ] || rows=(cifar-resnet20:64 wrn-16-8:64 regnet20-gru:64 resnet50:8 resnext50-32x4d:8
                               efficientnet-b0:8 vgg11:8)
for row in "${rows[@]}"; do
    case "$row" in *:[1-9]*) ;; *) echo "error: row '$row' is not MODEL:BATCH" >&2; exit 2 ;; esac
done
if [ -z "${CLOVER_BENCH:-}" ]; then
    source scripts/setup.sh
    CLOVER_BENCH=$(clover_release_binary clover-bench)
fi
python=.build/interop-venv/bin/python
[ -x "$python" ] || { echo "error: $python is missing: run scripts/torchvision_interop.sh first" >&2; exit 2; }
warmup=${WARMUP:-2}
repeat=${REPEAT:-5}
steps=${STEPS:-$repeat}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# images/s of one Clover model row, from clover-bench's JSON.
clover_rate() {
    "$1" --model "$2" --no-reference --warmup "$warmup" --repeat "$repeat" --json "$work/c.json" >/dev/null 2>"$work/c.err" ||
        { echo "error: $1 --model $2 failed:" >&2; tail -5 "$work/c.err" >&2; exit 1; }
    "$python" -c 'import json,sys; print("%.2f" % json.load(open(sys.argv[1]))["results"][0]["images_per_second"])' "$work/c.json"
}
torch_rate() {
    "$python" Benchmarks/peers/cpu_peer.py --model "${1%%:*}" --batch "${1##*:}" --steps "$steps" --warmup "$warmup" \
        --threads 2 2>"$work/t.err" | sed -n 's/.*: \([0-9.]*\) images\/s$/\1/p' | grep . ||
        { echo "error: the PyTorch peer failed on $1:" >&2; tail -5 "$work/t.err" >&2; exit 1; }
}

echo "date: $(date -u +%Y-%m-%dT%H:%MZ); $(nproc) cores; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "clover: $CLOVER_BENCH; pytorch: $("$python" -c 'import torch; print(torch.__version__)') (2 threads)"
echo "timing: Clover median of $repeat steps after $warmup, PyTorch mean of $steps steps after $warmup"
declare -A ratios
for r in $(seq "$rounds"); do
    echo
    echo "round $r"
    if [ -n "${OLD_CLOVER_BENCH:-}" ]; then
        echo "| model | batch | Clover images/s | old Clover images/s | PyTorch images/s | Clover / PyTorch | Clover / old |"
        echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
    else
        echo "| model | batch | Clover images/s | PyTorch images/s | Clover / PyTorch |"
        echo "| --- | ---: | ---: | ---: | ---: |"
    fi
    for row in "${rows[@]}"; do
        c=$(clover_rate "$CLOVER_BENCH" "$row")
        if [ -n "${OLD_CLOVER_BENCH:-}" ]; then o=$(clover_rate "$OLD_CLOVER_BENCH" "$row"); fi
        t=$(torch_rate "$row")
        ratio=$(awk -v a="$c" -v b="$t" 'BEGIN { printf "%.2f", a / b }')
        ratios[$row]="${ratios[$row]:-}${ratios[$row]:+ }$ratio"
        if [ -n "${OLD_CLOVER_BENCH:-}" ]; then
            echo "| ${row%%:*} | ${row##*:} | $c | $o | $t | $ratio | $(awk -v a="$c" -v b="$o" 'BEGIN { printf "%.2f", a / b }') |"
        else
            echo "| ${row%%:*} | ${row##*:} | $c | $t | $ratio |"
        fi
    done
done
echo
echo "Clover / PyTorch per round:"
for row in "${rows[@]}"; do echo "  ${row%%:*} (batch ${row##*:}): ${ratios[$row]}"; done
