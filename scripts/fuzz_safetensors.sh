#!/usr/bin/env bash
# Coverage-guided fuzzing of the safetensors parser with libFuzzer (Swift's
# -sanitize=fuzzer,address), for a bounded time.
#
#   bash scripts/fuzz_safetensors.sh [SECONDS]     (default 60)
#
# Builds Sources/CloverData/SafeTensors.swift (the format alone) with the entry
# point in scripts/fuzz/, seeds the corpus with valid files, and runs. Exits
# non-zero on a crash; the crashing input is left in .build-fuzz/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[ -d /opt/swift/usr/bin ] && export PATH=/opt/swift/usr/bin:$PATH
seconds=${1:-60}
case "$seconds" in ''|*[!0-9]*) echo "usage: bash scripts/fuzz_safetensors.sh [SECONDS]" >&2; exit 2 ;; esac
out=.build-fuzz
mkdir -p "$out/corpus"
swiftc -O -parse-as-library -sanitize=fuzzer,address -module-name SafeTensorsFuzz \
    Sources/CloverData/SafeTensors.swift scripts/fuzz/safetensors_fuzz_main.swift -o "$out/safetensors-fuzz"
python3 - "$out/corpus" <<'PY'
import json, struct, sys, os
def write(name, tensors):
    header, data = {}, b""
    for key, (dtype, shape, raw) in tensors.items():
        header[key] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    h = json.dumps(header, separators=(",", ":")).encode()
    open(os.path.join(sys.argv[1], name), "wb").write(struct.pack("<Q", len(h)) + h + data)
write("f32", {"w": ("F32", [2, 2], struct.pack("<4f", 1, 2, 3, 4))})
write("mixed", {"a": ("F32", [1, 2], struct.pack("<2f", 1, 2)), "n": ("I64", [], struct.pack("<q", 7)),
                "h": ("F16", [2], b"\x00\x3c\x00\xc0"), "b": ("BF16", [1], b"\x80\x3f")})
PY
cd "$out"
./safetensors-fuzz -max_total_time="$seconds" -max_len=4096 -print_final_stats=1 corpus
