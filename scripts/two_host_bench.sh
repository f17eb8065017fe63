#!/usr/bin/env bash
# Gradient allreduce between two network hosts against two ranks sharing memory, in one run:
# `clover-bench --distributed` for a model row, (1) with both ranks on this host over Open
# MPI's shared memory, (2) with one rank in each of two network namespaces joined by a veth
# pair, over Open MPI's TCP transport only, started from a hostfile as on two real machines
# (README, "Data-parallel training over Open MPI": the multi-host command). Needs root (ip netns).
#
#   bash scripts/two_host_bench.sh [clover-bench options]    # default: --quick --filter model/cifar-resnet20
#
# Writes .build/two-host/{shm,tcp}.json and prints both runs' tables. CLOVER_BENCH_BIN picks
# the binary (default: the release build); CLOVER_ALLREDUCE_OVERLAP and
# CLOVER_ALLREDUCE_BUCKET_BYTES reach both runs' ranks. The namespaces are removed on exit.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh

bench=${CLOVER_BENCH_BIN:-$(clover_release_binary clover-bench)}
args=("$@")
[ ${#args[@]} -gt 0 ] || args=(--quick --filter model/cifar-resnet20)
work=.build/two-host
mkdir -p "$work"
export POCL_MAX_PTHREAD_COUNT=1 OMPI_MCA_btl_vader_single_copy_mechanism=none

echo "== shared memory: 2 ranks on this host"
mpirun -np 2 --oversubscribe --allow-run-as-root "$bench" --distributed "${args[@]}" --json "$work/shm.json"

a=clvbencha b=clvbenchb subnet=10.98.0.0/24
cleanup() { ip netns del "$a" 2>/dev/null || true; ip netns del "$b" 2>/dev/null || true; }
trap cleanup EXIT
cleanup
ip netns add "$a"
ip netns add "$b"
ip link add "$a" type veth peer name "$b"
ip link set "$a" netns "$a"
ip link set "$b" netns "$b"
ip -n "$a" addr add 10.98.0.1/24 dev "$a"
ip -n "$b" addr add 10.98.0.2/24 dev "$b"
for ns in "$a" "$b"; do ip -n "$ns" link set lo up; ip -n "$ns" link set "$ns" up; done
# The rsh agent mpirun uses to start its daemon on the other host: here `ip netns exec`, on
# real machines ssh.
cat > "$work/netns-rsh" <<AGENT
#!/bin/sh
host=\$1; shift
case "\$host" in 10.98.0.1) ns=$a ;; 10.98.0.2) ns=$b ;; *) echo "netns-rsh: unknown host \$host" >&2; exit 1 ;; esac
exec ip netns exec "\$ns" /bin/sh -c "\$*"
AGENT
chmod +x "$work/netns-rsh"
printf '10.98.0.1 slots=1\n10.98.0.2 slots=1\n' > "$work/hostfile"

# The environment mpirun hands the remote ranks (-x), as it must across real hosts.
forward=(-x POCL_MAX_PTHREAD_COUNT)
for name in CLOVER_ALLREDUCE_OVERLAP CLOVER_ALLREDUCE_BUCKET_BYTES; do
    [ -z "${!name:-}" ] || forward+=(-x "$name")
done

echo "== TCP between two hosts (network namespaces $a, $b over a veth pair)"
ip netns exec "$a" mpirun --allow-run-as-root --hostfile "$work/hostfile" -np 2 \
    --mca plm_rsh_agent "$work/netns-rsh" --mca btl tcp,self \
    --mca btl_tcp_if_include "$subnet" --mca oob_tcp_if_include "$subnet" \
    "${forward[@]}" "$bench" --distributed "${args[@]}" --json "$work/tcp.json"
