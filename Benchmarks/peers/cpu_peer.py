#!/usr/bin/env python3
"""PyTorch's CPU build training one model the way scripts/cpu_peer.sh times Clover: synthetic images
of the model's standard size (3x32x32 for the CIFAR models, 3x224x224 for the ImageNet ones),
SGD (momentum 0.9, weight decay 5e-4), softmax cross-entropy, torch.set_num_threads(THREADS),
train mode (batch statistics, dropout and stochastic depth on, as in Clover's step).
Prints images per second over STEPS timed steps after WARMUP steps.

The models are pytorch_peer.py's: the CIFAR ones written out to mirror Sources/CloverModels
(same parameter counts), the ImageNet ones torchvision's.

  python3 Benchmarks/peers/cpu_peer.py --model cifar-resnet20 [--batch 64] [--steps 20] [--warmup 3] [--threads 2]
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pytorch_peer import build_model  # noqa: E402  (the same model definitions as the GPU peer)

# Input side and class count of each model, as `clover models` lists them.
STANDARD = {"cifar-resnet20": (32, 10), "wrn-16-8": (32, 10), "wrn-28-10": (32, 10), "regnet20-gru": (32, 10),
            "regnet20-lstm": (32, 10), "resnet50": (224, 1000), "resnext50-32x4d": (224, 1000),
            "efficientnet-b0": (224, 1000), "vgg11": (224, 1000), "vgg16": (224, 1000)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="cifar-resnet20", choices=sorted(STANDARD))
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    for name in ("batch", "steps", "threads"):
        if getattr(args, name) < 1:
            ap.error(f"--{name} must be at least 1")
    import torch
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    side, classes = STANDARD[args.model]
    model = build_model(torch, args.model, classes)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    x = torch.rand(args.batch, 3, side, side)
    y = torch.randint(0, classes, (args.batch,))
    loss_fn = torch.nn.CrossEntropyLoss()

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss.item()

    for _ in range(args.warmup):
        step()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    seconds = time.perf_counter() - start
    print(f"pytorch {torch.__version__} threads {args.threads} {args.model} batch {args.batch}: "
          f"{args.batch * args.steps / seconds:.2f} images/s")


if __name__ == "__main__":
    main()
