#!/usr/bin/env python3
"""Checks that the PyTorch benchmark peer builds the models Clover builds.

Benchmarks/peers/pytorch_peer.py writes out the models torchvision lacks (CIFAR ResNet-20,
WRN-28-10, the ConvLSTM RegNet-20, the OSCAR encoder) to mirror Sources/CloverModels; a
ratio against a different network would mean nothing. For each, the peer's parameter count
must equal the count `clover models` prints, and one training step on the CPU must change
every parameter tensor (a tensor left out of the graph would not be trained). Exits 1 on
any mismatch. Run through scripts/torchvision_interop.sh (it has the PyTorch environment).
"""

import argparse
import json
import os
import subprocess
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "Benchmarks", "peers"))
import pytorch_peer as peer  # noqa: E402


def clover_count(clover, model):
    """The parameter count `clover models --json` gives for `model` (3 channels, 10 classes for CIFAR)."""
    listing = subprocess.run([clover, "models", "--filter", model, "--json"], check=True, capture_output=True,
                             text=True).stdout
    for row in json.loads(listing)["models"]:
        if row["name"] == model:
            return row["parameters"]
    raise SystemExit(f"clover models does not list {model}")


def changed_fraction(model, step):
    before = [q.detach().clone() for q in model.parameters()]
    step()
    changed = sum(int(not torch.equal(a, b.detach())) for a, b in zip(before, model.parameters()))
    return changed, len(before)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clover", required=True, help="the clover executable")
    args = ap.parse_args()
    torch.manual_seed(0)
    cpu = torch.device("cpu")
    failures = 0
    for name in ("cifar-resnet20", "wrn-28-10", "regnet20-lstm"):
        row = {"model": name, "params": {"batch": 2, "side": 32, "channels": 3, "classes": 10}}
        model, step = peer.image_step(torch, row, cpu)
        expected, got = clover_count(args.clover, name), sum(q.numel() for q in model.parameters())
        changed, total = changed_fraction(model, step)
        ok = got == expected and changed == total
        failures += not ok
        print(f"{name}: peer {got:,} parameters, Clover {expected:,}; one step changed {changed} of {total} "
              f"tensors: {'ok' if ok else 'MISMATCH'}")
    # OSCAR is not in `clover models`; its BERT-base count is asserted in OSCARTests.
    p = dict(batch=2, words=12, tags=8, regions=5, features=2054, hidden=768, layers=12, heads=12,
             intermediate=3072, vocabulary=30522, positions=512, types=2)
    model, step = peer.oscar_step(torch, p, cpu)
    got = sum(q.numel() for q in model.parameters())
    changed, total = changed_fraction(model, step)
    ok = got == 111_685_435 and changed == total
    failures += not ok
    print(f"oscar-base: peer {got:,} parameters, Clover 111,685,435; one step changed {changed} of {total} "
          f"tensors: {'ok' if ok else 'MISMATCH'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
