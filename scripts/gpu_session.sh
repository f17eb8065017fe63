#!/usr/bin/env bash
# Everything the GPU machine is needed for, in one go and in priority order, each part under
# its own time limit and all of it inside GPU_TOTAL_SECONDS (default 420 s, well inside the
# 8 minutes a session can spend; the machine's start and the prelude come on top):
#   1. devices      `clover devices`, nvidia-smi, then the full conformance sweep
#                   (`clover conformance --json`);
#   2. steps        `clover models --check-launches --json` at GPU_BATCH, then a few training steps of
#                   every zoo model at its standard input size on synthetic data, smallest
#                   first, at GPU_BATCH (halved where the planned memory does not fit, or after
#                   an allocation failure): step time, warm images/s (steps 2..n), planned and
#                   measured peak memory per model;
#   3. tune         `clover tune` (CLBlast GEMM), `clover tune conv --model resnet50` and
#                   `--model efficientnet-b0` at GPU_BATCH; the saved parameter files go to
#                   tune.tar.gz (and are used by parts 4 and 5); `tune conv` saves only when
#                   it finishes, so one cut short leaves only its log;
#   4. bench        clover-bench and the PyTorch peer (strict FP32 and TF32 in the same run):
#                   models on both sides first (Clover at --precision fp32, then tf32 on its
#                   tensor cores), then kernels on both sides, then the ratio tables
#                   (Benchmarks/merge.py: merged.md for Clover FP32, merged-tf32.md for TF32);
#   5. train        the full ResNet-20 Fashion-MNIST run (≥ 93.5% goal), only if at least
#                   GPU_TRAIN_MIN_SECONDS remain; a run cut short keeps its last epoch's
#                   checkpoint (in bundle.tar.gz: carry it back and --resume next session).
#
# Here, first:   bash scripts/gpu_stage.sh   (static binaries, runtime packages, data in .gpu/)
# There (the device tool: carry .gpu, timeout_s 600):
#   source .gpu/prelude.sh && bash scripts/gpu_session.sh [part ...]
# With no arguments all five parts run, in the order above. A dry run here on POCL:
#   GPU_DEVICE=pocl GPU_BATCH=2 GPU_STEP_FILTER=lenet5,cifar-resnet20 ... OUT=/tmp/gpu-dry \
#     bash scripts/gpu_session.sh                    (see the README's GPU section)
#
# Results, each written as soon as it exists (at most 8 files, each well under 16 MiB):
#   $OUT/session.log       everything printed, with each part's limit, seconds and exit status
#   $OUT/conformance.json  the sweep's report (written when the sweep finishes; a sweep cut
#                          short leaves its per-op lines in session.log)
#   $OUT/steps.json        one row per zoo model, rewritten after each model
#   $OUT/tune.tar.gz       the tuned parameter files and the tuning logs, after each tuning
#   $OUT/clover.json       clover-bench's rows (models, then kernels), after each benchmark
#   $OUT/clover-tf32.json  clover-bench's model rows at --precision tf32
#   $OUT/torch.json        the PyTorch peer's rows, same schema, after each case
#   $OUT/bundle.tar.gz     the rest (devices, clinfo, check-launches, per-model logs, plan,
#                          merged.md, parts.tsv, the ResNet-20 run), rebuilt after every part
#
# Settings (environment): GPU_DEVICE (nvidia), GPU_BIN (.gpu/bin), GPU_BATCH (128),
# GPU_TOTAL_SECONDS (420), GPU_CONFORMANCE_SECONDS (120), GPU_CONFORMANCE_FILTER (none: the
# full sweep), GPU_CHECK_SECONDS (45), GPU_STEPS_SECONDS (100), GPU_MODEL_SECONDS (40 per
# model), GPU_STEPS (4 training steps per model), GPU_STEP_FILTER (comma-separated name
# substrings; none: every model), GPU_MEMORY_GIB (default: 90% of nvidia-smi's total; 0: no
# limit), GPU_TUNE_SECONDS (20 s of CLBlast search), GPU_TUNE_GEMM_SECONDS (40),
# GPU_TUNE_CONV_SECONDS (60 per model), GPU_TUNE_ARGS / GPU_TUNE_CONV_ARGS (extra options,
# e.g. "--size 256 256 256" / "--input 3x32x32"), GPU_BENCH_ARGS ("--no-reference --warmup 2
# --repeat 5"), GPU_BENCH_SECONDS (40 per side and group), GPU_PEER ("python3
# Benchmarks/peers/pytorch_peer.py"), GPU_TRAIN_MIN_SECONDS (60), GPU_EPOCHS (30),
# GPU_TRAIN_ARGS (extra `clover train` options, e.g. "--train-subset 512"), GPU_WORK
# (/tmp/clover-gpu-session).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
out="${OUT:-gpu-results}"
mkdir -p "$out"
out=$(cd "$out" && pwd)
work="${GPU_WORK:-/tmp/clover-gpu-session}"
rm -rf "$work"
mkdir -p "$work"
bin="${GPU_BIN:-.gpu/bin}"
bin=$(cd "$bin" && pwd) || { echo "gpu_session.sh: no binaries in ${GPU_BIN:-.gpu/bin} (bash scripts/gpu_stage.sh)" >&2; exit 2; }
device="${GPU_DEVICE:-nvidia}"
batch="${GPU_BATCH:-128}"
total="${GPU_TOTAL_SECONDS:-420}"
reserve=8                                  # kept back for the last bundle
export XDG_CACHE_HOME="$work/cache"        # compiled programs (shared by all parts) and tunings
mkdir -p "$XDG_CACHE_HOME"
read -r -a bench_args <<< "${GPU_BENCH_ARGS:---no-reference --warmup 2 --repeat 5}"
read -r -a peer <<< "${GPU_PEER:-python3 Benchmarks/peers/pytorch_peer.py}"

parts=("$@")
[ ${#parts[@]} -gt 0 ] || parts=(devices steps tune bench train)
for part in "${parts[@]}"; do
    case "$part" in devices|steps|tune|bench|train) ;;
        *) echo "gpu_session.sh: unknown part '$part' (devices, steps, tune, bench or train)" >&2; exit 2 ;;
    esac
done

start=$SECONDS
deadline=$((start + total))
status=0

# The seconds a command may take: what it asks for, or what the session has left.
limit() {
    local left=$((deadline - SECONDS - reserve))
    if [ "$left" -lt "$1" ]; then echo "$left"; else echo "$1"; fi
}

# step NAME SECONDS COMMAND...: run under `timeout` (TERM, then KILL 5 s later), record it.
step() {
    local name=$1 want=$2; shift 2
    local secs rc t0
    secs=$(limit "$want")
    if [ "$secs" -lt 3 ]; then
        echo "== $name: skipped, the session's $total s are spent" >&3
        printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$want" 0 - skipped >> "$work/parts.tsv"
        return 0
    fi
    echo "== $name (limit ${secs}s, at $((SECONDS - start))s): $*" >&3
    t0=$SECONDS
    timeout -k 5 "$secs" "$@"
    rc=$?
    local verdict=ok
    case $rc in 0) ;; 124|137) verdict="cut at ${secs}s" ;; *) verdict="failed ($rc)" ;; esac
    [ "$rc" -eq 0 ] || status=1
    echo "== $name: $verdict after $((SECONDS - t0))s" >&3
    printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$secs" "$((SECONDS - t0))" "$rc" "$verdict" >> "$work/parts.tsv"
    return 0
}

# The small outputs, in one tarball (never the checkpoints of part 2 or the compiled programs).
bundle() {
    (cd "$work" && tar --exclude='./cache' --exclude='./steps/*/*' -czf "$out/.bundle.tmp" . 2>/dev/null) &&
        mv "$out/.bundle.tmp" "$out/bundle.tar.gz"
}
tune_bundle() {
    (cd "$work" && tar -czf "$out/.tune.tmp" tune $(cd "$work" && ls -d cache/clover/*.json 2>/dev/null)) &&
        mv "$out/.tune.tmp" "$out/tune.tar.gz"
}

part_devices() {
    step clinfo 15 bash -c 'command -v clinfo >/dev/null && clinfo -l' > "$work/clinfo.txt" 2>&1
    command -v nvidia-smi >/dev/null &&
        nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$work/gpu.txt" 2>&1
    step devices 20 "$bin/clover" devices --all-extensions 2>&1 | tee "$work/devices.txt"
    local filter=()
    [ -n "${GPU_CONFORMANCE_FILTER:-}" ] && filter=(--filter "$GPU_CONFORMANCE_FILTER")
    step conformance "${GPU_CONFORMANCE_SECONDS:-120}" "$bin/clover" conformance --device "$device" \
        --json "$out/conformance.json" "${filter[@]}" 2>&1
}

part_steps() {
    # The JSON report goes to check-launches.json (read by the steps below); failures and any other
    # message to check-launches.txt, whose first lines are shown here.
    step check-launches "${GPU_CHECK_SECONDS:-45}" "$bin/clover" models --check-launches --json --batch "$batch" \
        --device "$device" > "$work/check-launches.json" 2> "$work/check-launches.txt"
    head -20 "$work/check-launches.txt"
    mkdir -p "$work/steps"
    local secs
    secs=$(limit "${GPU_STEPS_SECONDS:-100}")
    step steps "$secs" python3 - "$bin/clover" "$device" "$batch" "$work" "$out/steps.json" \
        "${GPU_STEPS:-4}" "${GPU_MODEL_SECONDS:-40}" "$secs" "${GPU_STEP_FILTER:-}" \
        "${GPU_MEMORY_GIB:-}" <<'PY'
# One row per zoo model: a few SGD steps on synthetic data at the model's standard input size.
import json, os, re, shutil, signal, subprocess, sys, threading, time
clover, device, batch, work, out_json, steps, per_model, part_seconds, filt, memory_gib = sys.argv[1:]
batch, steps, per_model = int(batch), max(1, int(steps)), float(per_model)
t_end = time.monotonic() + float(part_seconds) - 3   # `timeout` ends the part; finish before it

models = []   # (name, input, multiply-adds in G), smallest first: `clover models --json`
listing = subprocess.run([clover, "models", "--json"], capture_output=True, text=True)
try:
    for m in json.loads(listing.stdout)["models"]:
        models.append((m["name"], m["input"], round(m["multiply_adds"] / 1e9, 3)))
except (ValueError, KeyError, TypeError) as e:
    print(f"steps: `clover models --json` gave no listing ({e}): {listing.stderr.strip()[-300:]}", flush=True)
    sys.exit(1)   # no model to run is a failure, not "0/0 ok"
wanted = [s for s in filt.split(",") if s]
models = [m for m in models if not wanted or any(s in m[0] for s in wanted)]
models.sort(key=lambda m: m[2])

planned = {}  # name → (planned peak bytes at `batch` or None, "ok" or the error), from check-launches
try:
    with open(os.path.join(work, "check-launches.json")) as f:
        for m in json.load(f)["models"]:
            planned[m["name"]] = (m["planned_peak_bytes"], "ok" if m["error"] is None else m["error"][-300:])
except (OSError, ValueError, KeyError, TypeError):
    pass   # a check cut short or failed to start: no plan, every model at `batch`

def nvidia_smi(*query):
    try:
        return subprocess.run(["nvidia-smi", *query], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return ""

total_mib = nvidia_smi("--query-gpu=memory.total", "--format=csv,noheader,nounits").split()
if memory_gib:
    limit_bytes = float(memory_gib) * 2**30
else:
    limit_bytes = 0.9 * float(total_mib[0]) * 2**20 if total_mib else 0
gpu_sampling = bool(total_mib)

class Sampler:
    """The GPU's memory in use, every 100 ms, while a model runs (nvidia-smi; none on POCL)."""
    def __init__(self):
        self.peak, self.proc = None, None
        if not gpu_sampling:
            return
        self.base = int(nvidia_smi("--query-gpu=memory.used", "--format=csv,noheader,nounits").split()[0])
        self.proc = subprocess.Popen(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits",
                                      "-lms", "100"], stdout=subprocess.PIPE, text=True)
        self.thread = threading.Thread(target=self.read, daemon=True)
        self.thread.start()
    def read(self):
        for line in self.proc.stdout:
            try:
                self.peak = max(self.peak or 0, int(line.split()[0]) - self.base)
            except (ValueError, IndexError):
                pass
    def stop(self):
        if self.proc:
            self.proc.terminate()
            self.proc.wait()
        return None if self.peak is None else self.peak * 2**20

def run(name, b, seconds):
    log = os.path.join(work, "steps", f"{name}.log")
    run_dir = os.path.join(work, "steps", name)
    cmd = [clover, "train", "--model", name, "--dataset", "synthetic", "--train-subset", str(steps * b),
           "--test-subset", str(b), "--batch-size", str(b), "--epochs", "1", "--lr", "0.01", "--no-augment",
           "--log-every", "1", "--device", device, "--out", run_dir]
    sampler = Sampler()
    t0 = time.monotonic()
    global child
    marks = {}   # step → when its progress line arrived (it is printed after the loss is read back)
    with open(log, "wb") as f:
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        child = p.pid
        def pump():
            pending = b""
            for chunk in iter(lambda: os.read(p.stdout.fileno(), 65536), b""):
                now = time.monotonic()
                f.write(chunk)
                pending += chunk
                *done, pending = re.split(rb"[\r\n]", pending)
                for line in done:
                    m = re.search(rb"step (\d+)/\d+ loss", line)
                    if m:
                        marks[int(m.group(1))] = now
        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        rc, usage, killed = None, None, None
        while rc is None:
            pid, st, usage = os.wait4(p.pid, os.WNOHANG)
            if pid:
                rc = os.waitstatus_to_exitcode(st)
                break
            now = time.monotonic()
            if now - t0 > seconds and killed is None:
                os.killpg(p.pid, signal.SIGTERM)
                killed = now
            elif killed is not None and now - killed > 5:
                os.killpg(p.pid, signal.SIGKILL)
            time.sleep(0.05)
        child = None
        reader.join(timeout=5)
    wall = time.monotonic() - t0
    peak = sampler.stop()
    shutil.rmtree(run_dir, ignore_errors=True)   # checkpoints: up to 1 GiB for a VGG
    text = open(log, errors="replace").read()
    row = {"model": name, "batch": b, "steps": steps, "seconds_wall": round(wall, 2), "exit": rc,
           "max_rss_bytes": usage.ru_maxrss * 1024 if usage else None, "gpu_memory_peak_bytes": peak}
    # With --log-every 1 each step's progress line comes after the loss is read back (the device
    # has finished the step): the lines' arrival times time steps 2..n; step 1 compiles too.
    prog = re.findall(r"step (\d+)/\d+ loss (\S+)", text)
    if prog:
        row["train_loss"] = prog[-1][1]
    if 1 in marks:
        row["first_step_seconds"] = round(marks[1] - t0, 4)
        n = max(marks)
        if n >= 2 and marks[n] > marks[1]:
            row["step_seconds"] = round((marks[n] - marks[1]) / (n - 1), 4)
            row["images_per_second"] = round((n - 1) * b / (marks[n] - marks[1]), 1)
    m = re.search(r"test loss (\S+) test accuracy", text)
    if m:
        row["test_loss"] = m.group(1)
    if killed is not None:
        row["status"] = f"cut at {seconds:.0f}s"
    elif rc == 0:
        row["status"] = "ok"
    else:
        lines = [l for l in text.replace("\r", "\n").splitlines() if l.strip()]
        row["status"] = "failed"
        row["error"] = lines[-1][-300:] if lines else f"exit {rc}"
    return row, text

# The model runs in its own session (so that it can be killed with its children): when
# `timeout` ends this part, end the model too.
child = None
def terminate(signum, frame):
    if child:
        try:
            os.killpg(child, signal.SIGKILL)
        except OSError:
            pass
    sys.exit(124)
signal.signal(signal.SIGTERM, terminate)

rows = []
def save():
    report = {"tool": "gpu_session.sh steps", "device": device, "batch": batch, "steps": steps,
              "memory_limit_bytes": limit_bytes or None, "models": len(models), "rows": rows,
              "note": "images_per_second and step_seconds from steps 2..n, timed by their progress lines (step 1 "
                      "compiles and allocates: first_step_seconds, from the process's start); "
                      "planned_peak_bytes from `clover models --check-launches` scaled to the batch; "
                      "gpu_memory_peak_bytes from nvidia-smi every 100 ms (whole GPU, minus the idle level); "
                      "max_rss_bytes is host memory (the device's, on POCL)"}
    with open(out_json + ".tmp", "w") as f:
        json.dump(report, f, indent=1)
    os.replace(out_json + ".tmp", out_json)

for name, shape, madds in models:
    left = t_end - time.monotonic()
    row = {"model": name, "input": shape, "gmacs": madds}
    if left < 3:
        row.update(status="not run (the part's time limit)")
        rows.append(row)
        continue
    b = batch
    plan = planned.get(name)
    if plan and plan[0] is not None and limit_bytes:
        while b > 1 and plan[0] * b / batch > limit_bytes:
            b //= 2
    result, text = run(name, b, min(per_model, left))
    # An allocation failure at this batch: once more at half of it, if there is time.
    if (result["status"] == "failed" and b > 1 and t_end - time.monotonic() > 5 and
            re.search(r"alloc|memory|OUT_OF_RESOURCES", text, re.I)):
        first = result
        result, text = run(name, b // 2, min(per_model, t_end - time.monotonic()))
        result["first_try"] = {k: first.get(k) for k in ("batch", "status", "error")}
    row.update(result)
    if plan:
        if plan[0] is not None:
            row["planned_peak_bytes"] = round(plan[0] * row["batch"] / batch)
        row["check_launches"] = plan[1]
    rows.append(row)
    ips = row.get("images_per_second")
    print(f"{name:24s} batch {row['batch']:4d}  {row['status']:10s}  "
          f"{'' if ips is None else f'{ips:.1f} img/s'}  {row['seconds_wall']:.1f}s", flush=True)
    save()
save()
ok = sum(1 for r in rows if r.get("status") == "ok")
print(f"steps: {ok}/{len(models)} models ok")
sys.exit(0 if ok == len(models) else 1)
PY
}

part_tune() {
    mkdir -p "$work/tune"
    local extra=()
    read -r -a extra <<< "${GPU_TUNE_ARGS:-}"
    step tune-gemm "${GPU_TUNE_GEMM_SECONDS:-40}" "$bin/clover" tune --device "$device" \
        --seconds "${GPU_TUNE_SECONDS:-20}" "${extra[@]}" 2>&1 | tee "$work/tune/gemm.log"
    tune_bundle
    read -r -a extra <<< "${GPU_TUNE_CONV_ARGS:-}"
    for model in resnet50 efficientnet-b0; do
        step "tune-conv-$model" "${GPU_TUNE_CONV_SECONDS:-60}" "$bin/clover" tune conv --model "$model" \
            --batch-size "$batch" --device "$device" "${extra[@]}" 2>&1 | tee "$work/tune/conv-$model.log"
        tune_bundle
    done
}

# Rows of several clover-bench (or peer) JSON files, in order, into one file of the same schema.
combine() {
    python3 - "$@" <<'PY'
import json, os, sys
target, sources = sys.argv[1], [s for s in sys.argv[2:] if os.path.exists(s)]
if not sources:
    sys.exit(0)
report = None
for s in sources:
    try:
        part = json.load(open(s))
    except (OSError, ValueError):
        continue
    if report is None:
        report = dict(part, results=[])
    report["results"] += part.get("results", [])
if report is not None:
    with open(target + ".tmp", "w") as f:
        json.dump(report, f, indent=1, sort_keys=True)
    os.replace(target + ".tmp", target)
PY
}

part_bench() {
    local b="$work/bench"
    mkdir -p "$b"
    "$bin/clover-bench" --list --json "$b/plan.json" "${bench_args[@]}" > "$b/plan.txt" 2> "$b/plan.err" || status=1
    # The kernel groups: every name prefix but model/, each a filter (clover-bench ORs them).
    local kernels=() peer_kernels=() prefix
    for prefix in $(awk '{split($1, a, "/"); if (a[1] != "model") print a[1] "/"}' "$b/plan.txt" | sort -u); do
        kernels+=(--filter "$prefix")
    done
    local secs="${GPU_BENCH_SECONDS:-40}"
    step bench-clover-models "$secs" "$bin/clover-bench" --device "$device" --filter model/ \
        --precision fp32 --json "$b/clover-models.json" "${bench_args[@]}" 2>&1 | tee "$b/clover-models.md"
    combine "$out/clover.json" "$b/clover-models.json"
    step bench-torch-models "$secs" "${peer[@]}" --cases "$b/plan.json" --filter model/ \
        --json "$b/torch-models.json" 2>&1
    combine "$out/torch.json" "$b/torch-models.json"
    # The same models on Clover's TF32 tensor cores, beside PyTorch's TF32 column (merged-tf32.md).
    step bench-clover-models-tf32 "$secs" "$bin/clover-bench" --device "$device" --filter model/ \
        --precision tf32 --json "$b/clover-models-tf32.json" "${bench_args[@]}" 2>&1 | tee "$b/clover-models-tf32.md"
    combine "$out/clover-tf32.json" "$b/clover-models-tf32.json"
    step bench-clover-kernels "$secs" "$bin/clover-bench" --device "$device" "${kernels[@]}" \
        --precision fp32 --json "$b/clover-kernels.json" "${bench_args[@]}" 2>&1 | tee "$b/clover-kernels.md"
    combine "$out/clover.json" "$b/clover-models.json" "$b/clover-kernels.json"
    step bench-torch-kernels "$secs" "${peer[@]}" --cases "$b/plan.json" "${kernels[@]}" \
        --json "$b/torch-kernels.json" 2>&1
    combine "$out/torch.json" "$b/torch-models.json" "$b/torch-kernels.json"
    if [ -f "$out/clover.json" ] && [ -f "$out/torch.json" ]; then
        python3 Benchmarks/merge.py "$out/clover.json" "$out/torch.json" --out "$b/merged.md" > /dev/null ||
            status=1
        head -40 "$b/merged.md"
        if [ -f "$out/clover-tf32.json" ]; then
            python3 Benchmarks/merge.py "$out/clover-tf32.json" "$out/torch.json" --out "$b/merged-tf32.md" \
                > /dev/null || status=1
            head -30 "$b/merged-tf32.md"
        fi
    else
        echo "bench: nothing to merge (clover.json or torch.json missing)"
        status=1
    fi
}

part_train() {
    local want=$((deadline - SECONDS - reserve))
    if [ "$want" -lt "${GPU_TRAIN_MIN_SECONDS:-60}" ]; then
        echo "== train: skipped, ${want}s left (< GPU_TRAIN_MIN_SECONDS=${GPU_TRAIN_MIN_SECONDS:-60}); next session"
        printf '%s\t%s\t%s\t%s\t%s\n' train "$want" 0 - "skipped (time)" >> "$work/parts.tsv"
        return 0
    fi
    local data="${GPU_DATA:-$root/.gpu/data}"
    if ! ls "$data"/train-images-idx3-ubyte.gz > /dev/null 2>&1; then
        echo "== train: skipped, no Fashion-MNIST in $data (carry .gpu/data: see scripts/gpu_stage.sh)"
        printf '%s\t%s\t%s\t%s\t%s\n' train "$want" 0 - "skipped (no data)" >> "$work/parts.tsv"
        return 0
    fi
    local extra=()
    read -r -a extra <<< "${GPU_TRAIN_ARGS:-}"
    step train "$want" "$bin/clover" train --model cifar-resnet20 --dataset fashion-mnist \
        --data-dir "$data" --epochs "${GPU_EPOCHS:-30}" --batch-size 128 --lr 0.1 --schedule cosine \
        --weight-decay 5e-4 --seed 0 --log-every 100 --device "$device" --out "$work/resnet20-full" \
        "${extra[@]}" 2>&1 | tr '\r' '\n' | tee "$work/resnet20-full.log" | grep -E '^epoch [0-9]+:|final|error'
}

main() {
    exec 3>&1
    echo "gpu_session.sh: device '$device', batch $batch, parts ${parts[*]}, ${total}s in all, out $out"
    echo "binaries: $bin ($("$bin/clover" --version 2>/dev/null)); work: $work; $(date -u +%FT%TZ)"
    printf 'part\tlimit_s\tseconds\texit\tverdict\n' > "$work/parts.tsv"
    for part in "${parts[@]}"; do
        "part_$part"
        bundle
    done
    echo
    echo "parts (total $((SECONDS - start))s of ${total}s):"
    column -t -s $'\t' "$work/parts.tsv" 2>/dev/null || cat "$work/parts.tsv"
    grep -qv -e '	ok$' -e '^part' "$work/parts.tsv" && status=1
    bundle
    echo "files in $out:"
    ls -l "$out" | tail -n +2
    return "$status"
}

main 2>&1 | tee "$out/session.log"
exit "${PIPESTATUS[0]}"
