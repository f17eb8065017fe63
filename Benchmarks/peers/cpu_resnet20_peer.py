#!/usr/bin/env python3
"""PyTorch's CPU build training CIFAR ResNet-20 the way `clover train` does in
scripts/cpu_peer.sh: synthetic 3x32x32 images, batch 64, SGD (momentum 0.9,
weight decay 5e-4), softmax cross-entropy, torch.set_num_threads(THREADS).
Prints images per second over STEPS timed steps after WARMUP steps.

  python3 Benchmarks/peers/cpu_resnet20_peer.py [--batch 64] [--steps 20] [--threads 2]
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pytorch_peer import cifar_models  # noqa: E402  (the same model definitions as the GPU peer)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    import torch
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    models = cifar_models(torch)
    model = models["cifar-resnet20"](10)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    x = torch.rand(args.batch, 3, 32, 32)
    y = torch.randint(0, 10, (args.batch,))
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
    print(f"pytorch {torch.__version__} threads {args.threads}: {args.batch * args.steps / seconds:.1f} images/s")


if __name__ == "__main__":
    main()
