#!/usr/bin/env python3
"""Merge clover-bench's JSON and the PyTorch peer's JSON into a markdown ratio table.

  python3 Benchmarks/merge.py clover.json torch.json [--out merged.md]

Rows are joined on (name, pass); each PyTorch mode (strict FP32, PyTorch's
default with TF32 convolutions) gets its own column. Every ratio is Clover's
throughput over PyTorch's: PyTorch seconds / Clover seconds for kernels,
Clover images/s / PyTorch images/s for models. Above 1 Clover is faster.
Rows measured at different shapes, missing on one side or failed are listed
under "Not compared" rather than given a ratio.
"""

import argparse
import json
import math
import sys

MODES = ("strict", "default")
MODE_TITLES = {"strict": "PyTorch strict FP32", "default": "PyTorch default (TF32 convs)"}


def load(path):
    with open(path) as f:
        return json.load(f)


def fmt(value, unit=""):
    """Three significant digits, never scientific; '—' for missing."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    magnitude = abs(value)
    if magnitude >= 100 or magnitude == 0:
        text = f"{value:,.0f}"
    elif magnitude >= 10:
        text = f"{value:.1f}"
    elif magnitude >= 1:
        text = f"{value:.2f}"
    else:
        text = f"{value:.{min(9, 2 - math.floor(math.log10(magnitude)))}f}"
    return text + unit


def fmt_bytes(count):
    if count is None:
        return "—"
    value, unit = float(count), 0
    units = ["B", "KiB", "MiB", "GiB", "TiB"]
    while value >= 1024 and unit < len(units) - 1:
        value /= 1024
        unit += 1
    return f"{count} B" if unit == 0 else f"{value:.1f} {units[unit]}"


def table(headers, rows, numeric=()):
    lines = ["| " + " | ".join(headers) + " |",
             "|" + "|".join(" ---: " if i in numeric else " --- " for i in range(len(headers))) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |")
    return "\n".join(lines)


def ratio(clover, peer, is_model):
    """Clover's throughput over the peer's, or None when either is missing."""
    if is_model:
        a, b = clover.get("images_per_second"), peer.get("images_per_second")
        return a / b if a and b else None
    a, b = clover.get("seconds"), peer.get("seconds")
    return b / a if a and b else None


def geomean(values):
    values = [v for v in values if v and v > 0]
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else None


def merge(clover, peer):
    """The markdown report for two loaded JSON documents."""
    peer_rows = {}
    for r in peer.get("results", []):
        peer_rows[(r["name"], r["pass"], r.get("mode"))] = r
    modes = [m for m in MODES if m in peer.get("modes", {}) or any(k[2] == m for k in peer_rows)]

    out = ["## Clover vs PyTorch", ""]
    out.append(f"- Clover: {clover.get('device', '?')} (OpenCL platform {clover.get('platform_version', '?')}; "
               f"driver {clover.get('driver_version', '?')}), {clover.get('date', '?')}, sizes {clover.get('sizing', '?')}")
    out.append(f"- PyTorch {peer.get('torch', '?')} (CUDA {peer.get('cuda', '?')}, cuDNN {peer.get('cudnn', '?')}) "
               f"on {peer.get('device', '?')}, {peer.get('date', '?')}")
    for m in modes:
        flags = peer.get("modes", {}).get(m)
        if flags:
            out.append(f"- {MODE_TITLES[m]}: " + ", ".join(f"{k} = {v}" for k, v in sorted(flags.items())))
    out.append(f"- Clover timing: {clover.get('timing', '?')}")
    out.append(f"- PyTorch timing: {peer.get('timing', '?')}")
    out.append("- Ratios are Clover's throughput over PyTorch's (PyTorch seconds ÷ Clover seconds; for models "
               "Clover images/s ÷ PyTorch images/s): above 1 Clover is faster.")
    out.append("- Peak memory: Clover's is the high-water mark of its buffer pool's live allocations (bucket "
               "sizes, up to 25% above the request); PyTorch's is torch.cuda.max_memory_allocated().")
    clover_device, peer_device = str(clover.get("device", "")), str(peer.get("device", ""))
    if clover_device and peer_device and clover_device.lower() not in peer_device.lower() \
            and peer_device.lower() not in clover_device.lower():
        out.append(f"- **Warning:** the device names differ ({clover_device!r} vs {peer_device!r}).")
    out.append("")

    kernel_rows, model_rows, skipped = [], [], []
    by_group = {}
    for c in clover.get("results", []):
        is_model = c.get("op") == "train_step"
        key = (c["name"], c["pass"])
        found = {m: peer_rows.get(key + (m,)) for m in modes}
        # Only comparable peer rows are shown: a time at another shape or a
        # failed run would read as a measurement of this row.
        peers, notes = {}, {}
        ratios = {}
        if c.get("error"):
            skipped.append(f"{c['name']} {c['pass']}: Clover failed: {c['error']}")
        for m, p in found.items():
            if p is None:
                skipped.append(f"{c['name']} {c['pass']} ({m}): no PyTorch result")
                notes[m] = "—"
            elif p.get("error"):
                skipped.append(f"{c['name']} {c['pass']} ({m}): PyTorch failed: {p['error']}")
                notes[m] = "error"
            elif p.get("params") != c.get("params"):
                skipped.append(f"{c['name']} {c['pass']} ({m}): measured at different shapes "
                               f"(Clover {c.get('params')}, PyTorch {p.get('params')})")
                notes[m] = "other shape"
            else:
                peers[m] = p
                if not c.get("error"):
                    ratios[m] = ratio(c, p, is_model)
        group = "model" if is_model else c["name"].split("/")[0]
        for m, r in ratios.items():
            by_group.setdefault((group, c["pass"]), {}).setdefault(m, []).append(r)
        ratio_cells = [fmt(ratios.get(m), "×") for m in modes]
        if is_model:
            strict_peer = next((peers[m] for m in modes if m in peers), None) or {}
            params = c.get("parameters")
            peer_params = strict_peer.get("parameters")
            params_cell = fmt_int(params) if peer_params in (None, params) else f"{fmt_int(params)} / {fmt_int(peer_params)}"
            model_rows.append([c.get("model") or c["name"], c.get("shape", ""), params_cell,
                               "error" if c.get("error") else fmt(c.get("images_per_second"))]
                              + [fmt(peers[m].get("images_per_second")) if m in peers else notes[m] for m in modes]
                              + ratio_cells
                              + [fmt_bytes(c.get("peak_bytes")), fmt_bytes(strict_peer.get("peak_bytes"))])
        else:
            kernel_rows.append([c["name"], c["pass"], c.get("shape", ""),
                                "error" if c.get("error") else fmt_ms(c.get("seconds"))]
                               + [fmt_ms(peers[m].get("seconds")) if m in peers else notes[m] for m in modes]
                               + ratio_cells)

    if by_group:
        rows = []
        for (group, pass_), per_mode in by_group.items():
            count = max(len(v) for v in per_mode.values())
            rows.append([group, pass_, count] + [fmt(geomean(per_mode.get(m, [])), "×") for m in modes])
        out += ["### Summary: geometric mean of the ratios per group", "",
                table(["Group", "Pass", "Rows"] + [f"Clover / {MODE_TITLES[m]}" for m in modes], rows,
                      numeric=set(range(2, 3 + len(modes)))), ""]
    if kernel_rows:
        n = len(modes)
        out += ["### Kernels (milliseconds, median)", "",
                table(["Benchmark", "Pass", "Shape", "Clover ms"] + [f"{MODE_TITLES[m]} ms" for m in modes]
                      + [f"Clover / {MODE_TITLES[m]}" for m in modes], kernel_rows,
                      numeric=set(range(3, 4 + 2 * n))), ""]
    if model_rows:
        n = len(modes)
        out += ["### Models: one training step (images per second; sequences for the OSCAR encoder)", "",
                table(["Model", "Input", "Parameters (Clover / PyTorch if they differ)", "Clover"]
                      + [MODE_TITLES[m] for m in modes] + [f"Clover / {MODE_TITLES[m]}" for m in modes]
                      + ["Clover peak memory", "PyTorch peak memory"], model_rows,
                      numeric=set(range(2, 6 + 2 * n))), ""]
    if skipped:
        out += ["### Not compared", ""] + [f"- {s}" for s in skipped] + [""]
    return "\n".join(out)


def fmt_ms(seconds):
    return fmt(seconds * 1e3) if seconds else "—"


def fmt_int(n):
    return "—" if n is None else f"{n:,}"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("clover", help="clover-bench --json output")
    ap.add_argument("peer", help="pytorch_peer.py --json output")
    ap.add_argument("--out", help="also write the markdown here")
    args = ap.parse_args(argv)
    text = merge(load(args.clover), load(args.peer))
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
