#!/usr/bin/env bash
# The first run, measured (BENCHMARKS.md, "The first run"): `clover conformance` with every
# cache empty (XDG_CACHE_HOME pointing at a new, empty folder, so POCL's kernel cache, Clover's
# program cache and CLBlast start cold), once per --jobs value given (default: 1, then the
# default number of jobs), each on its own empty folder, printing the wall time of each.
#
#   bash scripts/cold_conformance.sh            # --jobs 1, then the default
#   bash scripts/cold_conformance.sh 2 4        # --jobs 2, then --jobs 4
#   CLOVER_DEVICE=pocl bash scripts/cold_conformance.sh
#
# Exits non-zero when a sweep fails or an argument is not a positive count.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh
bin=$(clover_release_binary)

runs=("$@")
[ ${#runs[@]} -gt 0 ] || runs=(1 default)
for jobs in "${runs[@]}"; do
    if [ "$jobs" != default ] && ! [[ "$jobs" =~ ^[1-9][0-9]*$ ]]; then
        echo "cold_conformance: '$jobs' is not a positive number of jobs (or 'default')" >&2
        exit 2
    fi
    cache=$(mktemp -d)
    args=()
    [ "$jobs" = default ] || args=(--jobs "$jobs")
    start=$SECONDS
    if ! XDG_CACHE_HOME="$cache" "$bin" conformance "${args[@]}" > "$cache.log" 2>&1; then
        tail -20 "$cache.log" >&2
        echo "cold_conformance: the sweep with --jobs $jobs failed; its log: $cache.log" >&2
        exit 1
    fi
    grep -E '^(warming|programs|compile time|conformance):' "$cache.log" | cut -c1-240
    echo "cold sweep, --jobs $jobs: $((SECONDS - start)) s"
    rm -rf "$cache" "$cache.log"
done
