#!/usr/bin/env bash
# CIFAR ResNet-20 training on this machine's CPU: Clover on POCL against PyTorch's CPU build
# (torch.set_num_threads(2)), measured back to back, alternating, in one run.
#
#   bash scripts/cpu_peer.sh [ROUNDS]        (default 2)
#
# Both train on synthetic 3x32x32 images at batch 64 with SGD (momentum 0.9, weight decay 5e-4).
# Clover: `clover train --dataset synthetic` over IMAGES images (default 1280), images/s of the
# epoch as it prints it; PyTorch: Benchmarks/peers/cpu_resnet20_peer.py, from the interop virtual
# environment (.build/interop-venv, made by scripts/torchvision_interop.sh). CLOVER_BIN picks
# the Clover binary (default: this tree's release build); OLD_CLOVER_BIN adds an older build.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
rounds=${1:-2}
case "$rounds" in ''|*[!0-9]*) echo "usage: bash scripts/cpu_peer.sh [ROUNDS]" >&2; exit 2 ;; esac
if [ -z "${CLOVER_BIN:-}" ]; then
    source scripts/setup.sh
    CLOVER_BIN=$(clover_release_binary)
fi
python=.build/interop-venv/bin/python
[ -x "$python" ] || { echo "error: $python is missing: run scripts/torchvision_interop.sh first" >&2; exit 2; }
images=${IMAGES:-1280}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
clover_rate() {
    "$1" train --model cifar-resnet20 --dataset synthetic --train-subset "$images" --test-subset 64 \
        --batch-size 64 --epochs 1 --lr 0.1 --log-every 100000 --seed 0 --out "$work/run-$RANDOM" 2>&1 |
        sed -n 's/^epoch 1: .*(\([0-9.]*\) s, \([0-9.]*\) img\/s).*/\2/p' | tail -1
}
echo "date: $(date -u +%Y-%m-%dT%H:%MZ); $(nproc) cores; $("$CLOVER_BIN" devices | grep -m1 '#0')"
for r in $(seq "$rounds"); do
    echo "round $r: clover $(clover_rate "$CLOVER_BIN") images/s"
    [ -n "${OLD_CLOVER_BIN:-}" ] && echo "round $r: old clover $(clover_rate "$OLD_CLOVER_BIN") images/s"
    echo "round $r: $("$python" Benchmarks/peers/cpu_resnet20_peer.py --batch 64 --steps 20 --threads 2 2>/dev/null | tail -1)"
done
