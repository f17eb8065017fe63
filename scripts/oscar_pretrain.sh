#!/usr/bin/env bash
# OSCAR end to end on the Fashion-MNIST corpus, one command: trains the LeNet-5 backbone,
# builds the corpus from it (`clover oscar-corpus`: regions, tags and captions; README,
# "Pre-training OSCAR"), pre-trains a small OSCAR on it (`clover pretrain`: masked-token +
# contrastive loss) and reports image-text retrieval on the held-out split
# (`clover eval-retrieval`), with chance beside it.
#
#   bash scripts/oscar_pretrain.sh                    # default device, runs under runs/oscar-*
#   bash scripts/oscar_pretrain.sh --device pocl      # any `clover --device` value
#
# The sizes fit a 2-core CPU (BENCHMARKS.md, "OSCAR pre-training"); OSCAR_MODEL, OSCAR_EPOCHS,
# OSCAR_TRAIN, OSCAR_TEST, OSCAR_LR and OSCAR_OUT change them. Steps already done (a trained
# backbone, a built corpus) are reused; delete their directories to redo them.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh

device_args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --device) device_args=(--device "$2"); shift 2 ;;
        --device=*) device_args=(--device "${1#--device=}"); shift ;;
        *) echo "usage: bash scripts/oscar_pretrain.sh [--device D]" >&2; exit 2 ;;
    esac
done

out=${OSCAR_OUT:-runs}
bin=$(clover_release_binary)

if [ ! -f "$out/oscar-backbone/model.safetensors" ]; then
    "$bin" train --model lenet5 --dataset fashion-mnist --epochs 2 --lr 0.05 --batch-size 128 \
        --seed 0 --log-every 50 --out "$out/oscar-backbone" "${device_args[@]}"
fi
if [ ! -f "$out/oscar-corpus/vocab.txt" ]; then
    "$bin" oscar-corpus --backbone "$out/oscar-backbone" --out "$out/oscar-corpus" \
        --train-count "${OSCAR_TRAIN:-10000}" --test-count "${OSCAR_TEST:-500}" "${device_args[@]}"
fi
# Trained from scratch (Oscar starts from BERT's weights), the model first learns the
# alignment alone (two contrastive-only epochs), then with the masked-token loss; polluted
# samples get another sample's caption, the judgement retrieval asks for (README).
"$bin" pretrain --model "${OSCAR_MODEL:-oscar-toy}" --data "$out/oscar-corpus" \
    --epochs "${OSCAR_EPOCHS:-5}" --contrastive-only-epochs 2 --pollute captions \
    --lr "${OSCAR_LR:-1e-3}" --warmup 0.3 --batch-size 64 \
    --seed 0 --log-every 20 --out "$out/oscar" "${device_args[@]}"
"$bin" eval-retrieval --model "${OSCAR_MODEL:-oscar-toy}" --data "$out/oscar-corpus" \
    --checkpoint "$out/oscar" "${device_args[@]}"
