#!/usr/bin/env python3
"""The PyTorch peer of clover-bench: the same kernels and models, on the same GPU.

It reads the cases from a clover-bench JSON file (a finished run, or a plan
written by `clover-bench --list --json FILE`), so that both sides time exactly
the same shapes, and writes results in the same schema (name, pass, op,
params, shape, seconds, gflops/gbps, images_per_second (sequences per second
for the OSCAR encoder), peak_bytes), once per precision mode:

  strict   strict FP32: torch.backends.cudnn.allow_tf32 = False and
           torch.backends.cuda.matmul.allow_tf32 = False
  default  PyTorch's defaults: TF32 on for cuDNN convolutions, off for matmul

Timing matches clover-bench: wall clock from torch.cuda.synchronize() to
torch.cuda.synchronize() per run, median of --repeat runs after --warmup runs.
Kernel backward passes are torch.autograd.grad over a graph recorded once
(retain_graph), with the same fixed cotangents Clover's vjp gets; flops and
bytes are copied from Clover's rows, so GFLOP/s and GB/s use one convention.
Everything is eager PyTorch (no torch.compile): the ConvLSTM/ConvGRU gates are
several unfused elementwise kernels there, as a user would write them.

Usage (on the GPU machine, from the project root):
  python3 Benchmarks/peers/pytorch_peer.py --cases clover.json --json torch.json
"""

import argparse
import datetime
import json
import math
import os
import statistics
import sys
import time

MODES = ("strict", "default")


def load_cases(path):
    """The rows of a clover-bench JSON file, and its header."""
    with open(path) as f:
        report = json.load(f)
    return report, report.get("results", [])


def group_cases(rows, filters=()):
    """Rows grouped by benchmark name (forward and backward together), in order."""
    groups = {}
    for row in rows:
        name = row["name"]
        if filters and not any(f.lower() in name.lower() for f in filters):
            continue
        groups.setdefault(name, []).append(row)
    return list(groups.items())


def scaled_sizes(full_sizes, count, tensors):
    """Split `count` parameters into `tensors` tensors shaped like `full_sizes`.

    Clover shrinks ResNet-50's parameter list tensor by tensor; this mirrors it
    and then fixes the rounding so the total is exactly `count`.
    """
    if full_sizes and len(full_sizes) == tensors:
        total = sum(full_sizes)
        if total == count:
            return list(full_sizes)
        factor = count / total
        sizes = [max(1, round(s * factor)) for s in full_sizes]
    else:
        sizes = [max(1, count // tensors)] * tensors
    # Put the rounding difference on the largest tensor.
    largest = max(range(len(sizes)), key=lambda i: sizes[i])
    sizes[largest] += count - sum(sizes)
    return sizes


def median_timing(samples):
    return {"seconds": statistics.median(samples), "min_seconds": min(samples), "repetitions": len(samples)}


# ----------------------------------------------------------------------------
# Everything below needs torch; it is imported in main() so that the helpers
# above can be tested on a machine without it.


def set_mode(torch, mode):
    """Sets the TF32 switches for `mode` and returns them as read back."""
    if mode == "strict":
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    else:
        # PyTorch's documented defaults.
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cuda.matmul.allow_tf32 = False
    return {
        "cudnn.allow_tf32": bool(torch.backends.cudnn.allow_tf32),
        "cuda.matmul.allow_tf32": bool(torch.backends.cuda.matmul.allow_tf32),
        "cudnn.benchmark": bool(torch.backends.cudnn.benchmark),
    }


def measure(torch, fn, warmup, repeat):
    torch.cuda.synchronize()
    for _ in range(warmup):
        fn()
        torch.cuda.synchronize()
    samples = []
    for _ in range(max(1, repeat)):
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        samples.append(time.perf_counter() - start)
    return median_timing(samples)


def build_kernel(torch, op, p, device):
    """(forward, backward) closures for one Clover kernel case."""
    F = torch.nn.functional
    gen = torch.Generator(device=device).manual_seed(0)

    def rand(*shape, grad=True):
        t = torch.rand(*shape, device=device, generator=gen) * 2 - 1
        return t.requires_grad_(grad)

    if op == "matmul":
        inputs = [rand(p["m"], p["k"]), rand(p["k"], p["n"])]
        f = lambda a, b: torch.mm(a, b)
    elif op == "conv2d":
        inputs = [rand(p["n"], p["c"], p["h"], p["w"]),
                  rand(p["o"], p["c"] // p["groups"], p["kernel"], p["kernel"])]
        f = lambda x, w: F.conv2d(x, w, stride=p["stride"], padding=p["padding"], groups=p["groups"])
    elif op == "scale":
        # The copy-bandwidth row: y = 1·x (Clover's scale_elementwise).
        inputs = [rand(p["n"])]
        f = lambda x: x * 1.0
    elif op == "batchnorm":
        inputs = [rand(p["n"], p["c"], p["h"], p["w"]), rand(p["c"]), rand(p["c"])]
        # Training-mode statistics without running averages: Clover's
        # BatchNormTraining updates those in a separate op.
        f = lambda x, g, b: F.batch_norm(x, None, None, g, b, training=True, eps=1e-5)
    elif op == "lstm_cell":
        n, c, h, w = p["n"], p["c"], p["h"], p["w"]
        inputs = [rand(n, 4 * c, h, w), rand(n, c, h, w)]

        def f(pre, cell):
            # Gate k of state channel j is channel 4j + k (Clover's layout): i, f, o, g.
            i, fg, o, g = pre.view(n, c, 4, h, w).unbind(2)
            c2 = torch.sigmoid(fg) * cell + torch.sigmoid(i) * torch.tanh(g)
            return torch.sigmoid(o) * torch.tanh(c2), c2
    elif op == "gru_gates":
        n, c, h, w = p["n"], p["c"], p["h"], p["w"]
        inputs = [rand(n, 2 * c, h, w), rand(n, c, h, w)]

        def f(pre, state):
            z, r = pre.view(n, c, 2, h, w).unbind(2)
            return torch.sigmoid(z), torch.sigmoid(r) * state
    elif op == "attention":
        n, l, d, heads = p["n"], p["l"], p["d"], p["heads"]
        inputs = [rand(n, l, d), rand(n, l, d), rand(n, l, d)]

        def f(q, k, v):
            split = lambda t: t.view(n, l, heads, d // heads).transpose(1, 2)
            out = F.scaled_dot_product_attention(split(q), split(k), split(v))
            return out.transpose(1, 2).reshape(n, l, d)
    elif op in ("sgd", "adamw"):
        shapes = resnet50_shapes()
        sizes = scaled_sizes([math.prod(s) for s in shapes], p["count"], p["tensors"])
        # Weight decay on weights only (rank > 1), Clover's default policy.
        decays = [len(s) > 1 for s in shapes] if len(shapes) == len(sizes) else [True] * len(sizes)
        params = [torch.nn.Parameter(rand(s, grad=False)) for s in sizes]
        for q in params:
            q.grad = rand(q.numel(), grad=False)
        groups = [g for g in (
            {"params": [q for q, d in zip(params, decays) if d]},
            {"params": [q for q, d in zip(params, decays) if not d], "weight_decay": 0.0},
        ) if g["params"]]
        make = {
            "sgd": lambda **kw: torch.optim.SGD(groups, lr=0.1, momentum=0.9, weight_decay=1e-4, **kw),
            "adamw": lambda **kw: torch.optim.AdamW(groups, lr=1e-3, weight_decay=0.05, **kw),
        }[op]
        # fused=True (one multi-tensor kernel per step) is PyTorch's closest
        # analogue of Clover's single fused launch; fall back where missing.
        try:
            opt, impl = make(fused=True), "fused"
        except (TypeError, RuntimeError, ValueError):
            opt, impl = make(), "default"
        return opt.step, None, {"impl": impl}
    else:
        raise ValueError(f"unknown op {op!r}")

    def forward():
        with torch.no_grad():
            f(*inputs)

    outputs = f(*inputs)
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    cotangents = [torch.rand_like(o) * 2 - 1 for o in outputs]

    def backward():
        torch.autograd.grad(outputs, inputs, cotangents, retain_graph=True)

    return forward, backward, {}


_RESNET50 = {}


def resnet50_shapes():
    if "shapes" not in _RESNET50:
        import torchvision
        _RESNET50["shapes"] = [tuple(q.shape) for q in torchvision.models.resnet50().parameters()]
    return _RESNET50["shapes"]


# ----------------------------------------------------------------------------
# Models: torchvision where it has them; the CIFAR ones written out to mirror
# Sources/CloverModels (see the Swift files for the exact designs).


def cifar_models(torch):
    nn, F = torch.nn, torch.nn.functional

    def conv3x3(i, o, stride=1):
        return nn.Conv2d(i, o, 3, stride, 1, bias=False)

    class BasicBlockA(nn.Module):
        """CIFAR ResNet basic block with option A shortcuts (He et al.)."""

        def __init__(self, i, o, stride):
            super().__init__()
            self.conv1, self.bn1 = conv3x3(i, o, stride), nn.BatchNorm2d(o)
            self.conv2, self.bn2 = conv3x3(o, o), nn.BatchNorm2d(o)
            self.stride, self.pad = stride, (o - i) // 2 if (stride != 1 or i != o) else None

        def forward(self, x):
            out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
            short = x
            if self.pad is not None:
                short = F.pad(x[:, :, ::self.stride, ::self.stride], (0, 0, 0, 0, self.pad, self.pad))
            return F.relu(out + short)

    class CIFARResNet(nn.Module):
        def __init__(self, n, classes):
            super().__init__()
            self.conv1, self.bn1 = conv3x3(3, 16), nn.BatchNorm2d(16)
            layers, inp = [], 16
            for planes, stride in ((16, 1), (32, 2), (64, 2)):
                for b in range(n):
                    layers.append(BasicBlockA(inp, planes, stride if b == 0 else 1))
                    inp = planes
            self.layers, self.fc = nn.Sequential(*layers), nn.Linear(64, classes)

        def forward(self, x):
            x = self.layers(F.relu(self.bn1(self.conv1(x))))
            return self.fc(x.mean((2, 3)))

    class PreActBlock(nn.Module):
        """Wide ResNet pre-activation block (xternalz/WideResNet-pytorch)."""

        def __init__(self, i, o, stride, dropout):
            super().__init__()
            self.bn1, self.conv1 = nn.BatchNorm2d(i), conv3x3(i, o, stride)
            self.bn2, self.conv2 = nn.BatchNorm2d(o), conv3x3(o, o)
            self.dropout = dropout
            self.shortcut = nn.Conv2d(i, o, 1, stride, bias=False) if stride != 1 or i != o else None

        def forward(self, x):
            p = F.relu(self.bn1(x))
            out = F.relu(self.bn2(self.conv1(p)))
            out = self.conv2(F.dropout(out, self.dropout, self.training))
            return out + (self.shortcut(p) if self.shortcut is not None else x)

    class WideResNet(nn.Module):
        def __init__(self, depth, widen, dropout, classes):
            super().__init__()
            n, w = (depth - 4) // 6, [16, 16 * widen, 32 * widen, 64 * widen]
            self.conv1 = conv3x3(3, w[0])
            blocks = []
            for stage, stride in ((1, 1), (2, 2), (3, 2)):
                for b in range(n):
                    blocks.append(PreActBlock(w[stage - 1] if b == 0 else w[stage], w[stage],
                                              stride if b == 0 else 1, dropout))
            self.blocks, self.bn1, self.fc = nn.Sequential(*blocks), nn.BatchNorm2d(w[3]), nn.Linear(w[3], classes)

        def forward(self, x):
            x = F.relu(self.bn1(self.blocks(self.conv1(x))))
            return self.fc(x.mean((2, 3)))

    def projection(i, o, stride):
        return nn.Sequential(nn.Conv2d(i, o, 1, stride, bias=False), nn.BatchNorm2d(o))

    class Regulator(nn.Module):
        """One stage's ConvLSTM or ConvGRU cell (Sources/Clover/Ops/RegulatorCell.swift): a grouped 1x1 over
        channel pairs [X_n, H_n] (N groups), a depthwise 3x3, then the gates; gate k of state n is channel n*G + k."""

        def __init__(self, n, kind):
            super().__init__()
            self.n, self.kind = n, kind
            g = 4 if kind == "lstm" else 2
            self.pointwise = nn.Conv2d(2 * n, g * n, 1, groups=n)
            self.depthwise = nn.Conv2d(g * n, g * n, 3, padding=1, groups=g * n)
            if kind == "gru":  # the candidate's own convs over [X, r*H]
                self.candidate_pointwise = nn.Conv2d(2 * n, n, 1, groups=n)
                self.candidate_depthwise = nn.Conv2d(n, n, 3, padding=1, groups=n)

        @staticmethod
        def pairs(x, h):
            b, n, hh, ww = x.shape
            return torch.stack((x, h), 2).reshape(b, 2 * n, hh, ww)

        def forward(self, x, h, c):
            b, n, hh, ww = x.shape
            pre = self.depthwise(self.pointwise(self.pairs(x, h)))
            if self.kind == "lstm":
                i, f, o, g = pre.view(b, n, 4, hh, ww).unbind(2)
                c2 = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                return torch.sigmoid(o) * torch.tanh(c2), c2
            z, r = torch.sigmoid(pre.view(b, n, 2, hh, ww)).unbind(2)
            candidate = self.candidate_depthwise(self.candidate_pointwise(self.pairs(x, r * h)))
            return (1 - z) * torch.tanh(candidate) + z * h, None

    class RegBlock(nn.Module):
        def __init__(self, i, o, stride):
            super().__init__()
            self.conv1, self.bn1 = conv3x3(i, o, stride), nn.BatchNorm2d(o)
            self.conv2, self.bn2 = conv3x3(2 * o, o), nn.BatchNorm2d(o)
            self.downsample = projection(i, o, stride) if stride != 1 or i != o else None

        def forward(self, x, cell, h, c):
            i = F.relu(self.bn1(self.conv1(x)))
            h, c = cell(i, h if h is not None else torch.zeros_like(i),
                        c if c is not None or cell.kind != "lstm" else torch.zeros_like(i))
            out = self.bn2(self.conv2(torch.cat((i, h), 1)))
            return F.relu(out + (self.downsample(x) if self.downsample is not None else x)), h, c

    class RegNet(nn.Module):
        """CIFAR RegNet-(6n+2) with a ConvLSTM or ConvGRU regulator on every stage (Xu et al.), H fused by the
        block's second 3x3 conv, projection shortcuts and H (and C) carried between stages by 1x1 conv + BN."""

        def __init__(self, n, kind, classes):
            super().__init__()
            self.conv1, self.bn1 = conv3x3(3, 16), nn.BatchNorm2d(16)
            self.stages, self.cells, self.h_in, self.c_in = nn.ModuleList(), nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
            inp, prev = 16, None
            for k, width in enumerate((16, 32, 64)):
                stride = 1 if k == 0 else 2
                self.stages.append(nn.ModuleList(RegBlock(inp if b == 0 else width, width, stride if b == 0 else 1)
                                                 for b in range(n)))
                self.cells.append(Regulator(width, kind))
                self.h_in.append(projection(prev, width, 2) if prev else nn.Identity())
                self.c_in.append(projection(prev, width, 2) if prev and kind == "lstm" else nn.Identity())
                inp, prev = width, width
            self.fc = nn.Linear(64, classes)

        def forward(self, x):
            x = F.relu(self.bn1(self.conv1(x)))
            h = c = None
            for k, blocks in enumerate(self.stages):
                if h is not None:
                    h = self.h_in[k](h)
                    c = self.c_in[k](c) if c is not None else None
                for block in blocks:
                    x, h, c = block(x, self.cells[k], h, c)
            return self.fc(x.mean((2, 3)))

    return {
        "cifar-resnet20": lambda classes: CIFARResNet(3, classes),
        "wrn-16-8": lambda classes: WideResNet(16, 8, 0.3, classes),
        "wrn-28-10": lambda classes: WideResNet(28, 10, 0.3, classes),
        "regnet20-gru": lambda classes: RegNet(3, "gru", classes),
        "regnet20-lstm": lambda classes: RegNet(3, "lstm", classes),
    }


def import_torchvision(torch):
    """torchvision, also beside a CPU-only torch (the `+cpu` wheel).

    PyPI's torchvision wheel is built against PyPI's CUDA torch: under the `+cpu` torch its C++ ops
    (nms, roi_align, ...) do not load, and importing it fails while it registers their fake-tensor
    kernels. The models never call those ops, so for a CPU torch the registration is skipped while
    torchvision imports, and said on stderr.
    """
    if torch.version.cuda is not None or "torchvision" in sys.modules:
        import torchvision
        return torchvision
    import torch.library
    register_fake = torch.library.register_fake
    torch.library.register_fake = lambda *args, **kwargs: (lambda fn: fn)
    try:
        import torchvision
    finally:
        torch.library.register_fake = register_fake
    if not torchvision.extension._has_ops():
        print("note: torchvision's C++ ops did not load beside this CPU torch; its models do not use them",
              file=sys.stderr)
    return torchvision


def build_model(torch, name, classes):
    cifar = cifar_models(torch)
    if name in cifar:
        return cifar[name](classes)
    # Imported only when needed: the written-out models must build without torchvision.
    torchvision = import_torchvision(torch)
    zoo = {
        "resnet50": torchvision.models.resnet50,
        "resnext50-32x4d": torchvision.models.resnext50_32x4d,
        "efficientnet-b0": torchvision.models.efficientnet_b0,
        "vgg11": torchvision.models.vgg11,
        "vgg16": torchvision.models.vgg16,
    }
    if name in zoo:
        return zoo[name](num_classes=classes)
    raise ValueError(f"no PyTorch model for {name!r}")


def oscar_model(torch, p):
    """OSCAR's encoder and pre-training heads, mirroring Sources/CloverModels/OSCAR.swift:
    BERT text embeddings (word + position + token type, LayerNorm, dropout), the region
    projection with its LayerNorm, post-LN GELU encoder layers, the tanh pooler, the
    masked-token head with the decoder tied to the word embeddings, and a one-logit
    contrastive head."""
    nn = torch.nn
    h = p["hidden"]

    class OSCAR(nn.Module):
        def __init__(self):
            super().__init__()
            self.word = nn.Embedding(p["vocabulary"], h)
            self.position = nn.Embedding(p["positions"], h)
            self.token_type = nn.Embedding(p["types"], h)
            self.text_norm = nn.LayerNorm(h, eps=1e-12)
            self.img_embedding = nn.Linear(p["features"], h)
            self.img_norm = nn.LayerNorm(h, eps=1e-12)
            self.dropout = nn.Dropout(0.1)
            layer = nn.TransformerEncoderLayer(h, p["heads"], p["intermediate"], dropout=0.1, activation="gelu",
                                               layer_norm_eps=1e-12, batch_first=True)
            self.encoder = nn.TransformerEncoder(layer, p["layers"], enable_nested_tensor=False)
            self.pooler = nn.Linear(h, h)
            self.transform = nn.Linear(h, h)
            self.transform_norm = nn.LayerNorm(h, eps=1e-12)
            self.decoder_bias = nn.Parameter(torch.zeros(p["vocabulary"]))
            self.seq_relationship = nn.Linear(h, 1)

        def forward(self, ids, positions, types, regions):
            text = self.word(ids) + self.position(positions) + self.token_type(types)
            text = self.dropout(self.text_norm(text))
            image = self.dropout(self.img_norm(self.img_embedding(regions)))
            sequence = self.encoder(torch.cat([text, image], 1))
            pooled = torch.tanh(self.pooler(sequence[:, 0]))
            hidden = self.transform_norm(nn.functional.gelu(self.transform(sequence[:, :ids.shape[1]])))
            return hidden @ self.word.weight.t() + self.decoder_bias, self.seq_relationship(pooled)

    return OSCAR()


def oscar_step(torch, p, device):
    """The model and one pre-training step (masked-token CE over 15% of the text slots +
    contrastive BCE, AdamW) on a fixed synthetic batch with every slot real."""
    F = torch.nn.functional
    model = oscar_model(torch, p).to(device).train()
    batch, text = p["batch"], p["words"] + p["tags"]
    gen = torch.Generator().manual_seed(5)
    ids = torch.randint(104, p["vocabulary"], (batch, text), generator=gen)
    labels = torch.where(torch.rand(batch, text, generator=gen) < 0.15, ids, torch.full_like(ids, -100))
    ids, labels = ids.to(device), labels.to(device)
    positions = torch.arange(text, device=device).expand(batch, text)
    types = (torch.arange(text, device=device) >= p["words"]).long().expand(batch, text)
    regions = torch.rand(batch, p["regions"], p["features"], device=device) * 2 - 1
    real = (torch.arange(batch, device=device) % 2).float().unsqueeze(1)
    decay = [q for q in model.parameters() if q.dim() > 1]
    no_decay = [q for q in model.parameters() if q.dim() <= 1]
    opt = torch.optim.AdamW([{"params": decay}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=1e-4, weight_decay=0.01)

    def step():
        opt.zero_grad(set_to_none=True)
        logits, contrastive = model(ids, positions, types, regions)
        loss = (F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100)
                + F.binary_cross_entropy_with_logits(contrastive, real))
        loss.backward()
        opt.step()

    return model, step


def image_step(torch, row, device):
    """A zoo model and one SGD training step on a fixed synthetic batch."""
    p = row["params"]
    batch, side, channels, classes = p["batch"], p["side"], p["channels"], p["classes"]
    model = build_model(torch, row["model"], classes).to(device).train()
    decay = [q for q in model.parameters() if q.dim() > 1]
    no_decay = [q for q in model.parameters() if q.dim() <= 1]
    opt = torch.optim.SGD([{"params": decay}, {"params": no_decay, "weight_decay": 0.0}],
                          lr=0.01, momentum=0.9, weight_decay=5e-4)
    images = torch.rand(batch, channels, side, side, device=device) * 2 - 1
    labels = torch.arange(batch, device=device) % classes

    def step():
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(images), labels).backward()
        opt.step()

    return model, step


def run_model(torch, row, modes, device, warmup, repeat):
    """One record per mode for a model's training step (images, or sequences for OSCAR)."""
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    is_oscar = row["model"].startswith("oscar-")
    model, step = oscar_step(torch, row["params"], device) if is_oscar else image_step(torch, row, device)
    records = []
    for mode in modes:
        flags = set_mode(torch, mode)
        torch.cuda.reset_peak_memory_stats()
        timing = measure(torch, step, max(1, warmup), repeat)
        records.append(dict(timing, mode=mode, flags=flags,
                            images_per_second=row["params"]["batch"] / timing["seconds"],
                            peak_bytes=torch.cuda.max_memory_allocated(),
                            parameters=sum(q.numel() for q in model.parameters())))
    return records


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", required=True, help="clover-bench JSON (a run, or a plan from --list --json)")
    ap.add_argument("--json", required=True, help="where to write the peer's results")
    ap.add_argument("--modes", default="strict,default", help="comma-separated: strict, default")
    ap.add_argument("--warmup", type=int, help="untimed runs (default: the cases file's)")
    ap.add_argument("--repeat", type=int, help="timed runs, median reported (default: the cases file's)")
    ap.add_argument("--filter", action="append", default=[], help="only names containing this (repeatable)")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--cudnn-benchmark", action="store_true",
                    help="let cuDNN time its algorithms (off by default, as in PyTorch)")
    args = ap.parse_args(argv)

    import torch

    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    for m in modes:
        if m not in MODES:
            ap.error(f"unknown mode {m!r}; use {', '.join(MODES)}")
    header, rows = load_cases(args.cases)
    warmup = args.warmup if args.warmup is not None else header.get("warmup", 3)
    repeat = args.repeat if args.repeat is not None else header.get("repeat", 10)
    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    device = torch.device(args.device)

    report = {
        "tool": "pytorch_peer",
        "device": torch.cuda.get_device_name(device),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "timing": (f"wall clock from torch.cuda.synchronize() to torch.cuda.synchronize() per run; median of {repeat} "
                   f"after {warmup} warm-up run(s); eager mode"),
        "modes": {m: set_mode(torch, m) for m in modes},
        "cases": args.cases,
        "warmup": warmup,
        "repeat": repeat,
        "results": [],
    }

    def save():
        with open(args.json + ".tmp", "w") as f:
            json.dump(report, f, indent=1, sort_keys=True)
        os.replace(args.json + ".tmp", args.json)

    for name, group in group_cases(rows, args.filter):
        print(f"{name} {group[0].get('shape', '')} …", file=sys.stderr, flush=True)
        base = [{k: r.get(k) for k in ("name", "pass", "op", "params", "model", "shape", "flops", "bytes")}
                for r in group]
        try:
            if group[0]["op"] == "train_step":
                for rec in run_model(torch, group[0], modes, device, warmup, repeat):
                    out = dict(base[0], **rec)
                    if out.get("flops"):
                        out["gflops"] = out["flops"] / out["seconds"] / 1e9
                    report["results"].append(out)
                    print(f"  {rec['mode']}: {out['images_per_second']:.1f} images/s", file=sys.stderr, flush=True)
            else:
                forward, backward, extra = build_kernel(torch, group[0]["op"], group[0]["params"], device)
                for mode in modes:
                    flags = set_mode(torch, mode)
                    for row in base:
                        fn = backward if row["pass"] == "backward" else forward
                        if fn is None:
                            continue
                        out = dict(row, **extra, mode=mode, flags=flags, **measure(torch, fn, warmup, repeat))
                        if out.get("flops"):
                            out["gflops"] = out["flops"] / out["seconds"] / 1e9
                        if out.get("bytes"):
                            out["gbps"] = out["bytes"] / out["seconds"] / 1e9
                        report["results"].append(out)
                        print(f"  {mode} {row['pass']}: {out['seconds'] * 1e3:.3g} ms", file=sys.stderr, flush=True)
                del forward, backward
        except Exception as e:  # one failing case (out of memory, say) must not end the run
            for row in base:
                for mode in modes:
                    report["results"].append(dict(row, mode=mode, error=f"{type(e).__name__}: {e}"))
            print(f"  error: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
            torch.cuda.empty_cache()
        save()
    save()
    failed = sum(1 for r in report["results"] if r.get("error"))
    print(f"wrote {args.json}: {len(report['results'])} results, {failed} failed", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
