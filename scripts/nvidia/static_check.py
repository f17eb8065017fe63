"""The static NVIDIA check: every GPU-path kernel compiled as NVIDIA's OpenCL
would compile it, with its resources held to budgets.

Input is what `clover gpu-kernels` writes: inventory.json (each program the
GPU path builds, with exactly the build options the runtime passes, and the
work-group sizes its kernels are launched with) and sources/<family>.cl (the
kernel file with its includes resolved, as the runtime hands it to the
driver). Each distinct (source, options) pair is compiled once to PTX by
clang's `nvptx64-nvidia-nvcl` target with libclc's builtins, and the PTX is
assembled by NVIDIA's `ptxas` for every target (sm_80 and sm_90), whose
verbose report gives registers, stack frame, spills and shared memory per
kernel.

Budgets, each a failure when missed:
  - every program compiles for every target and every builtin resolves
    (no `.extern .func` left in the PTX) and no clang-only extension is used;
  - no spill stores or loads and no stack frame in any kernel;
  - shared (local) memory, static plus local-memory arguments, at most
    48 KiB at the launched work-group size;
  - registers x work-group size at most 65,536 (and the register file
    allocated per warp, in units of 256, fits one SM);
  - at least 2 resident work-groups per SM for the implicit-GEMM sets
    (family convgemm), as NVIDIA's occupancy rules give them.

Writes the table (Markdown, and JSON for scripts) and exits 1 when any
budget is missed, listing each miss.

  python3 scripts/nvidia/static_check.py --inventory DIR --ptxas PATH \
      --output NVIDIA_STATIC.md [--json FILE] [--jobs N]
"""

import argparse
import concurrent.futures
import hashlib
import json
import math
import os
import re
import subprocess
import sys
import tempfile

# The resources of one SM, from NVIDIA's CUDA C Programming Guide (table
# "Technical Specifications per Compute Capability") for 8.0 (A100) and 9.0
# (H100/H200). Shared memory is the most a kernel can be given per SM; the
# driver reserves 1 KiB of it for each resident block.
TARGETS = {
    "sm_80": {"registers": 65536, "max_warps": 64, "max_blocks": 32,
              "shared": 164 * 1024, "reserved_shared": 1024},
    "sm_90": {"registers": 65536, "max_warps": 64, "max_blocks": 32,
              "shared": 228 * 1024, "reserved_shared": 1024},
}
# Registers are allocated per warp in units of 256, warps in groups of 4.
REGISTER_UNIT = 256
WARP_GRANULARITY = 4
LOCAL_MEMORY_BUDGET = 48 * 1024
REGISTERS_PER_WORK_GROUP_BUDGET = 65536
MIN_RESIDENT_IMPLICIT_GEMM = 2
IMPLICIT_GEMM_FAMILIES = {"convgemm"}

# Constructs clang accepts in OpenCL C that NVIDIA's OpenCL C 1.2 front end
# does not: an OpenCL C 1.2 compiler rejects them or, worse, reads them
# differently.
CLANG_ONLY = [
    (re.compile(r"__attribute__\s*\(\(\s*overloadable"), "clang's overloadable attribute"),
    (re.compile(r"#\s*pragma\s+clang\b"), "a #pragma clang"),
    (re.compile(r"\b__builtin_(?!nontemporal)\w+"), "a clang __builtin_"),
    # C99 inline without static needs an external definition wherever the call is not
    # inlined; OpenCL C 1.2 programs have none, so the link fails on a compiler that declines.
    (re.compile(r"^\s*inline\b"), "a plain inline function (declare it static inline)"),
    (re.compile(r"__attribute__\s*\(\(\s*(ext_vector_type|always_inline|noinline)"),
     "a clang-only attribute"),
]


def parse_ptxas(text):
    """Per-kernel resources from `ptxas -v` output.

    Returns {function: {"registers", "stack", "spill_stores", "spill_loads",
    "shared", "entry"}}. Non-entry functions (helpers ptxas compiled as real
    calls) are reported too, with entry False.
    """
    functions = {}
    entries = set()
    current = None
    for line in text.splitlines():
        match = re.search(r"Compiling entry function '([^']+)'", line)
        if match:
            entries.add(match.group(1))
            current = functions.setdefault(match.group(1), _blank())
            continue
        match = re.search(r"Function properties for (\S+)", line)
        if match:
            current = functions.setdefault(match.group(1), _blank())
            continue
        match = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, "
                          r"(\d+) bytes spill loads", line)
        if match and current is not None:
            current["stack"] = int(match.group(1))
            current["spill_stores"] = int(match.group(2))
            current["spill_loads"] = int(match.group(3))
            continue
        match = re.search(r"Used (\d+) registers", line)
        if match and current is not None:
            current["registers"] = int(match.group(1))
            shared = re.search(r"(\d+) bytes smem", line)
            current["shared"] = int(shared.group(1)) if shared else 0
    for name, row in functions.items():
        row["entry"] = name in entries
    return functions


def _blank():
    return {"registers": 0, "stack": 0, "spill_stores": 0, "spill_loads": 0,
            "shared": 0, "entry": False}


def resident_work_groups(target, registers, work_group_size, shared_bytes):
    """Work-groups of this kernel one SM holds at once, and what limits it.

    NVIDIA's occupancy rules: warps per block rounded up; registers per
    warp rounded up to the allocation unit, warps per SM by registers
    rounded down to the warp granularity; shared memory per block plus the
    driver's reserve; and the SM's block and warp limits.
    """
    limits = TARGETS[target]
    warps = math.ceil(work_group_size / 32)
    by_warps = limits["max_warps"] // warps
    if registers > 0:
        per_warp = math.ceil(registers * 32 / REGISTER_UNIT) * REGISTER_UNIT
        warps_by_registers = (limits["registers"] // per_warp) // WARP_GRANULARITY * WARP_GRANULARITY
        by_registers = warps_by_registers // warps
    else:
        by_registers = limits["max_blocks"]
    if shared_bytes > 0:
        by_shared = limits["shared"] // (shared_bytes + limits["reserved_shared"])
    else:
        by_shared = limits["max_blocks"]
    candidates = [(limits["max_blocks"], "blocks"), (by_warps, "threads"),
                  (by_registers, "registers"), (by_shared, "shared memory")]
    return min(candidates, key=lambda pair: pair[0])


def clang_only_uses(source):
    """(line number, what) for every clang-only construct in a source."""
    found = []
    for number, line in enumerate(source.splitlines(), 1):
        code = line.split("//", 1)[0]
        for pattern, what in CLANG_ONLY:
            if pattern.search(code):
                found.append((number, what))
    return found


def unresolved_functions(ptx):
    """Functions the PTX declares but does not define: unresolved builtins."""
    return sorted(set(re.findall(r"^\s*\.extern\s+\.func\s+(?:\([^)]*\)\s*)?(\w+)", ptx, re.M)))


def split_options(options, register_limit=None):
    """The build options as clang takes them, and the flags NVIDIA's driver hands its assembler.

    `-cl-nv-maxrregcount=N` (cl_nv_compiler_options) is the driver's, passed on to ptxas as
    `--maxrregcount N`; a register limit recorded on the program (the planning device takes no
    such option) is passed on the same way. `-DMMA_EMULATE=1` (tensor-core instructions emulated
    on a device without them) is dropped: the check compiles what a device with them builds.
    """
    front, assembler = [], []
    for option in options.split():
        match = re.fullmatch(r"-cl-nv-maxrregcount=(\d+)", option)
        if match:
            register_limit = int(match.group(1))
        elif option == "-DMMA_EMULATE=1":
            # The runtime emulates the tensor-core instructions on a device without them, as the
            # planning device is; an NVIDIA device of compute capability 8.0 or later gets the
            # program without this define, the real mma.sync, which is what is checked here.
            continue
        elif option.startswith("-cl-nv-"):
            raise ValueError(f"unknown NVIDIA build option {option}")
        else:
            front.append(option)
    if register_limit is not None:
        assembler += ["--maxrregcount", str(register_limit)]
    return front, assembler


def is_tensor_core(options):
    """Whether a program's options ask for the tensor-core instructions."""
    flags = options.split()
    return "-DMMA=1" in flags or "-DMMA_EMULATE=1" in flags


def compile_program(job):
    """clang → PTX once, then ptxas for every target. Returns a result dict."""
    family, options, register_limit, source_path, tools, work = job
    result = {"family": family, "options": options, "register_limit": register_limit,
              "errors": [], "targets": {}}
    digest = hashlib.sha1((source_path + "\0" + options + str(register_limit)).encode()).hexdigest()[:16]
    ptx = os.path.join(work, f"{family}-{digest}.ptx")
    front, assembler = split_options(options, register_limit)
    command = [tools["clang"], "-x", "cl", *front,
               "-target", "nvptx64-nvidia-nvcl",
               "-Xclang", "-target-cpu", "-Xclang", "sm_80", "-O3",
               "-Xclang", "-finclude-default-header",
               "-Xclang", "-mlink-builtin-bitcode", "-Xclang", tools["libclc"],
               "-Werror=implicit-function-declaration", "-Wno-linker-warnings",
               "-S", "-o", ptx, source_path]
    run = subprocess.run(command, capture_output=True, text=True)
    if run.returncode != 0:
        result["errors"].append(f"clang failed: {run.stderr.strip()[-2000:]}")
        return result
    with open(ptx) as handle:
        text = handle.read()
    for name in unresolved_functions(text):
        result["errors"].append(f"unresolved function {name} (a builtin libclc does not define)")
    # A tensor-core program (MMA=1, or emulated on the planning device: matmul.cl is tensor-core
    # only and takes no MMA macro) must reach the tensor cores: its PTX holds the instruction itself.
    if is_tensor_core(options) and "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32" not in text:
        result["errors"].append("a tensor-core program, but the PTX has no mma.sync.aligned.m16n8k8 TF32 instruction")
    for target in TARGETS:
        cubin = ptx[:-4] + f".{target}.cubin"
        run = subprocess.run([tools["ptxas"], f"-arch={target}", "-v", *assembler, ptx, "-o", cubin],
                             capture_output=True, text=True)
        if run.returncode != 0:
            result["errors"].append(f"ptxas -arch={target} failed: {(run.stdout + run.stderr).strip()[-2000:]}")
            continue
        result["targets"][target] = parse_ptxas(run.stdout + run.stderr)
    return result


def short_set(options, register_limit=None):
    """The options without the language standard, for the table (`maxrreg=N`: a register limit)."""
    parts = [o[2:] if o.startswith("-D") else o for o in options.split()
             if not o.startswith("-cl-std") and not o.startswith("-cl-nv-maxrregcount")
             and o != "-DMMA_EMULATE=1"]
    front, assembler = split_options(options, register_limit)
    if assembler:
        parts.append(f"maxrreg={assembler[1]}")
    return " ".join(parts)


def evaluate(inventory, results):
    """Table rows and budget failures from the compiled programs."""
    rows, failures = [], []
    launched = {}
    for program in inventory["programs"]:
        for kernel in program["kernels"]:
            launched[(program["family"], program["options"], kernel["name"])] = kernel
    for result in results:
        family, options = result["family"], result["options"]
        label = f"{family} [{short_set(options, result['register_limit'])}]"
        for error in result["errors"]:
            failures.append(f"{label}: {error}")
        for target, functions in sorted(result["targets"].items()):
            for name, info in sorted(functions.items()):
                if not info["entry"]:
                    failures.append(f"{label} {target}: helper {name} compiled as a call, not inlined "
                                    "(declare it static inline)")
                    continue
                kernel = launched.get((family, options, name))
                sizes = [math.prod(size) for size in kernel["localSizes"]] if kernel else []
                dynamic = kernel["localArgumentBytes"] if kernel else 0
                local = info["shared"] + dynamic
                work_group = max(sizes) if sizes else None
                resident = None
                if work_group is not None:
                    resident = min((resident_work_groups(target, info["registers"], size, local)
                                    for size in sizes), key=lambda pair: pair[0])
                row = {"kernel": name, "family": family, "set": short_set(options, result["register_limit"]),
                       "target": target,
                       "registers": info["registers"],
                       "spill_bytes": info["spill_stores"] + info["spill_loads"],
                       "stack": info["stack"], "local_memory": local,
                       "work_group": work_group, "resident": resident[0] if resident else None,
                       "limited_by": resident[1] if resident else None,
                       "launched": kernel is not None}
                rows.append(row)
                where = f"{label} {name} {target}"
                if row["spill_bytes"]:
                    failures.append(f"{where}: {info['spill_stores']} bytes spill stores, "
                                    f"{info['spill_loads']} bytes spill loads")
                if row["stack"]:
                    failures.append(f"{where}: {row['stack']} bytes stack frame")
                if work_group is None:
                    continue
                if kernel and kernel.get("driverChosenLocal"):
                    failures.append(f"{where}: launched with a driver-chosen work-group size; "
                                    "the budget needs the size the runtime launches")
                if local > LOCAL_MEMORY_BUDGET:
                    failures.append(f"{where}: {local} bytes local memory exceed {LOCAL_MEMORY_BUDGET}")
                if info["registers"] * work_group > REGISTERS_PER_WORK_GROUP_BUDGET:
                    failures.append(f"{where}: {info['registers']} registers x {work_group} work-items "
                                    f"exceed {REGISTERS_PER_WORK_GROUP_BUDGET}")
                if resident[0] < 1:
                    failures.append(f"{where}: does not fit one SM ({resident[1]})")
                elif family in IMPLICIT_GEMM_FAMILIES and resident[0] < MIN_RESIDENT_IMPLICIT_GEMM:
                    failures.append(f"{where}: {resident[0]} resident work-group per SM "
                                    f"(limited by {resident[1]}), below {MIN_RESIDENT_IMPLICIT_GEMM}")
    return rows, failures


def markdown(rows, failures, inventory, tool_versions):
    """The table file: a header saying what was checked, then one row per kernel, set and target."""
    lines = [
        "# The static NVIDIA check",
        "",
        "Every kernel of every GPU-path parameter set, compiled with the build options the runtime",
        "passes on an NVIDIA device (from `clover gpu-kernels`, the runtime's own planning of every",
        "zoo model at batches " + ", ".join(str(b) for b in sorted(set(inventory["batches"].values()),
                                                                   reverse=True)) +
        " and of every convolution tuning candidate), through clang's `nvptx64-nvidia-nvcl`",
        "target with libclc and NVIDIA's `ptxas` for sm_80 and sm_90. Written by",
        "`bash scripts/nvidia_static.sh` (run by `scripts/test.sh`); do not edit by hand.",
        "",
        "Tools: " + "; ".join(tool_versions) + ".",
        "",
        "Budgets: no spills, no stack frame; local memory at most 48 KiB; registers x work-group size",
        "at most 65,536; at least 2 resident work-groups per SM for implicit-GEMM (convgemm) sets.",
        "`maxrreg=N` in a set: the program's register limit, which NVIDIA's driver is given as",
        "`-cl-nv-maxrregcount=N` and hands its assembler as `--maxrregcount N`, as this check does.",
        "`MMA=1`: a TF32 tensor-core set, compiled as a device with tensor cores gets it (the real",
        "`mma.sync`, whose presence in the PTX is checked; the planning device's `MMA_EMULATE=1` is dropped).",
        "Resident work-groups follow NVIDIA's occupancy rules (registers per warp in units of 256,",
        "1 KiB of shared memory reserved per block, 32 blocks and 64 warps per SM; shared memory",
        "164 KiB per SM on sm_80, 228 KiB on sm_90). A kernel with no work-group size was compiled",
        "but is not launched by any planned step (only its spill and stack budgets apply).",
        "",
        f"Programs: {len({(r['family'], r['set']) for r in rows})}; kernels x sets x targets: {len(rows)}; "
        f"budget misses: {len(failures)}.",
        "",
    ]
    if failures:
        lines += ["## Budget misses", ""] + [f"- {f}" for f in failures] + [""]
    lines += ["## By family", "",
              "| family | programs | kernels x sets x targets | most registers | most local memory | "
              "fewest resident WGs/SM |",
              "|---|---:|---:|---:|---:|---:|"]
    for family in sorted({r["family"] for r in rows}):
        mine = [r for r in rows if r["family"] == family]
        resident = [r["resident"] for r in mine if r["resident"] is not None]
        lines.append(f"| {family} | {len({r['set'] for r in mine})} | {len(mine)} | "
                     f"{max(r['registers'] for r in mine)} | {max(r['local_memory'] for r in mine)} | "
                     f"{min(resident) if resident else '—'} |")
    lines += ["", "## Kernels", "",
              "| kernel | family | set | target | registers | spill bytes | stack | local memory | "
              "work-group | resident WGs/SM (limit) |",
              "|---|---|---|---|---:|---:|---:|---:|---:|---|"]
    for row in sorted(rows, key=lambda r: (r["family"], r["kernel"], r["set"], r["target"])):
        resident = f"{row['resident']} ({row['limited_by']})" if row["resident"] is not None else "—"
        work_group = row["work_group"] if row["work_group"] is not None else "—"
        lines.append(f"| {row['kernel']} | {row['family']} | `{row['set']}` | {row['target']} | "
                     f"{row['registers']} | {row['spill_bytes']} | {row['stack']} | {row['local_memory']} | "
                     f"{work_group} | {resident} |")
    return "\n".join(lines) + "\n"


def tool_version(path, flag="--version"):
    try:
        out = subprocess.run([path, flag], capture_output=True, text=True).stdout
    except OSError:
        return os.path.basename(path)
    lines = [l.strip() for l in out.splitlines() if l.strip()]
    release = [l for l in lines if "compilation tools" in l]
    if release:   # ptxas: "Cuda compilation tools, release 12.9, V12.9.86"
        return "ptxas " + release[0].split(",")[-1].strip().lstrip("V")
    return lines[0] if lines else os.path.basename(path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inventory", required=True, help="folder written by clover gpu-kernels")
    parser.add_argument("--ptxas", required=True)
    parser.add_argument("--clang", default="clang-15")
    parser.add_argument("--libclc", default="/usr/lib/clc/nvptx64--nvidiacl.bc")
    parser.add_argument("--kernels", help="the kernel folder whose .cl and .h files are checked for "
                                           "clang-only constructs (Kernels)")
    parser.add_argument("--output", required=True, help="the Markdown table to write")
    parser.add_argument("--json", help="also write the rows and misses as JSON")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args(argv)

    inventory_file = os.path.join(args.inventory, "inventory.json")
    try:
        with open(inventory_file) as handle:
            inventory = json.load(handle)
    except (OSError, ValueError) as error:
        print(f"error: cannot read the inventory {inventory_file}: {error}", file=sys.stderr)
        return 2
    for tool, path in (("ptxas", args.ptxas), ("libclc", args.libclc)):
        if not os.path.exists(path):
            print(f"error: {tool} not found at {path}", file=sys.stderr)
            return 2

    failures = []
    for program in inventory["programs"]:
        path = os.path.join(args.inventory, "sources", program["family"] + ".cl")
        if not os.path.isfile(path):
            print(f"error: the inventory has no source {path}", file=sys.stderr)
            return 2
    # Every kernel file and header, GPU path or not, is held to OpenCL C 1.2.
    linted = 0
    if args.kernels:
        for folder, _, names in sorted(os.walk(args.kernels)):
            for name in sorted(names):
                if not name.endswith((".cl", ".h")):
                    continue
                path = os.path.join(folder, name)
                with open(path) as handle:
                    text = handle.read()
                linted += 1
                for number, what in clang_only_uses(text):
                    failures.append(f"{os.path.relpath(path)}:{number}: {what}")

    tools = {"clang": args.clang, "ptxas": args.ptxas, "libclc": args.libclc}
    seen, jobs = set(), []
    with tempfile.TemporaryDirectory(prefix="clover-nvidia-") as work:
        for program in inventory["programs"]:
            key = (program["family"], program["options"], program.get("registerLimit"))
            if key in seen:
                continue
            seen.add(key)
            path = os.path.join(args.inventory, "sources", program["family"] + ".cl")
            jobs.append((program["family"], program["options"], program.get("registerLimit"), path, tools, work))
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            results = list(pool.map(compile_program, jobs))
    rows, misses = evaluate(inventory, results)
    failures += misses
    versions = [tool_version(args.clang).replace("Debian ", ""), tool_version(args.ptxas),
                f"libclc {os.path.basename(args.libclc)}"]
    with open(args.output, "w") as handle:
        handle.write(markdown(rows, failures, inventory, versions))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"rows": rows, "failures": failures}, handle, indent=1)
    print(f"nvidia-static: {len(jobs)} programs, {len(rows)} kernel rows over {', '.join(TARGETS)}, "
          f"{linted} kernel sources checked for clang-only constructs; table in {args.output}")
    if failures:
        print(f"nvidia-static: {len(failures)} budget misses:", file=sys.stderr)
        for failure in failures:
            print(f"  {failure}", file=sys.stderr)
        return 1
    print("nvidia-static: every budget holds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
