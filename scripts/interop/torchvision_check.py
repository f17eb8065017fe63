#!/usr/bin/env python3
"""Checks that weights move between torchvision and Clover unchanged.

For each model, in both directions:

  torchvision -> Clover  a seeded torchvision model (BatchNorm affine parameters and
                         running statistics randomised, so evaluation-mode BatchNorm is
                         not the identity) is saved with `safetensors`; `clover predict
                         --checkpoint` loads that file and runs the same input batch.
  Clover -> torchvision  `clover predict --save-weights` writes the weights of a seeded
                         Clover model; torchvision's `load_state_dict(strict=True)` loads
                         them and runs the same batch.

The logits must agree to a relative error (max |a - b| / max |b|) of at most --tolerance
(1e-4). Exits 1 when any comparison fails. Run through scripts/torchvision_interop.sh,
which installs PyTorch into a virtual environment and builds `clover`.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import torch


def import_torchvision():
    """Imports torchvision's model definitions.

    A torchvision wheel built for another PyTorch flavour (a CUDA build beside the CPU
    PyTorch) fails while registering fake kernels for its C++ detection operators (nms,
    roi_align), which the classification models never use; registration is then skipped
    and the import retried.
    """
    try:
        import torchvision
        return torchvision
    except RuntimeError as error:
        if "torchvision::" not in str(error):
            raise
    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]
    original = torch.library.register_fake
    torch.library.register_fake = lambda *args, **kwargs: (lambda function: function)
    try:
        import torchvision
    finally:
        torch.library.register_fake = original
    return torchvision


# Clover's name -> torchvision's constructor. Every family whose state-dict names follow
# torchvision's: VGG (with and without BN), ResNet, ResNeXt, Wide ResNet, EfficientNet.
MODELS = {
    "vgg11-bn": "vgg11_bn",
    "vgg16": "vgg16",
    "resnet18": "resnet18",
    "resnet50": "resnet50",
    "resnext50-32x4d": "resnext50_32x4d",
    "wide-resnet50-2": "wide_resnet50_2",
    "efficientnet-b0": "efficientnet_b0",
    "efficientnet-b1": "efficientnet_b1",
}


def randomise_batch_norm(model, generator):
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            with torch.no_grad():
                module.weight.copy_(torch.rand(module.weight.shape, generator=generator) * 0.5 + 0.75)
                module.bias.copy_(torch.rand(module.bias.shape, generator=generator) * 0.2 - 0.1)
                module.running_mean.copy_(torch.rand(module.running_mean.shape, generator=generator) * 0.2 - 0.1)
                module.running_var.copy_(torch.rand(module.running_var.shape, generator=generator) + 0.5)


def relative_error(a, b):
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


def clover(binary, *args):
    started = time.monotonic()
    subprocess.run([binary, "predict", *args], check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - started


def check(torchvision, binary, name, batch, size, device, workdir, safetensors_torch):
    constructor = getattr(torchvision.models, MODELS[name])
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    x = torch.randn(batch, 3, size, size, generator=generator)
    inputs = os.path.join(workdir, "input.safetensors")
    safetensors_torch.save_file({"input": x}, inputs)
    device_args = ["--device", device] if device else []
    results = []

    # torchvision -> Clover
    reference = constructor()
    randomise_batch_norm(reference, generator)
    reference.eval()
    with torch.no_grad():
        expected = reference(x)
    exported = os.path.join(workdir, "torchvision.safetensors")
    safetensors_torch.save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, exported)
    logits = os.path.join(workdir, "logits.safetensors")
    seconds = clover(binary, "--model", name, "--input", inputs, "--checkpoint", exported, "--output", logits,
                     *device_args)
    got = safetensors_torch.load_file(logits)["logits"]
    results.append(("torchvision -> clover", relative_error(got, expected), seconds))
    del reference

    # Clover -> torchvision
    weights = os.path.join(workdir, "clover.safetensors")
    seconds = clover(binary, "--model", name, "--input", inputs, "--seed", "1", "--save-weights", weights,
                     "--output", logits, *device_args)
    got = safetensors_torch.load_file(logits)["logits"]
    loaded = constructor()
    state = loaded.state_dict()
    saved = safetensors_torch.load_file(weights)
    # Clover stores every tensor as float32; num_batches_tracked is int64 in PyTorch.
    loaded.load_state_dict({k: v.to(state[k].dtype) if k in state else v for k, v in saved.items()}, strict=True)
    loaded.eval()
    with torch.no_grad():
        expected = loaded(x)
    results.append(("clover -> torchvision", relative_error(got, expected), seconds))
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clover", required=True, help="path of the clover binary")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--size", type=int, default=224, help="input height and width")
    parser.add_argument("--device", help="clover --device value")
    parser.add_argument("--tolerance", type=float, default=1e-4)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()

    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    torchvision = import_torchvision()
    import safetensors.torch as safetensors_torch

    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}; batch {args.batch} "
          f"at {args.size}x{args.size}; tolerance {args.tolerance:g}")
    print(f"{'model':<18} {'direction':<22} {'rel. error':>11} {'clover s':>9}  result")
    rows, failed = [], False
    for name in args.models:
        with tempfile.TemporaryDirectory(prefix="clover-interop-") as workdir:
            for direction, error, seconds in check(torchvision, args.clover, name, args.batch, args.size,
                                                   args.device, workdir, safetensors_torch):
                ok = error <= args.tolerance
                failed |= not ok
                rows.append({"model": name, "direction": direction, "relative_error": error, "ok": ok})
                print(f"{name:<18} {direction:<22} {error:>11.2e} {seconds:>9.1f}  {'ok' if ok else 'FAIL'}",
                      flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"torch": torch.__version__, "torchvision": torchvision.__version__, "batch": args.batch,
                       "size": args.size, "tolerance": args.tolerance, "results": rows}, f, indent=2)
    print("interop: " + ("FAIL" if failed else "PASS"))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
