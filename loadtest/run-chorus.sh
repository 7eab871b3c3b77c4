#!/usr/bin/env bash
# Runs a scenario against a fresh Chorus cluster on this machine: redis-server,
# NODES release `chorus` nodes on ports 8081.. (rates raised for load), then
# chorus-loadgen with their pids (and Redis's: it is part of Chorus's cost),
# then stops everything. A reconnect storm kills the first node.
#
#   loadtest/run-chorus.sh loadtest/scenarios/big-room.toml [--set rate=200 ...]
#   NODES=6 loadtest/run-chorus.sh loadtest/scenarios/idle.toml --set clients=100000 --set workers=6
#   CHORUS=/path/to/other/chorus LABEL=before loadtest/run-chorus.sh ...   (compare two builds)
#
# Results: target/loadtest/<scenario>-<label>.json and .svg (label: chorus unless LABEL says).
set -euo pipefail
cd "$(dirname "$0")/.."
scenario=$1
shift
nodes=${NODES:-2}
name=$(basename "$scenario" .toml)
source loadtest/lib.sh
cargo build --release -q -p chorus-gateway -p chorus-loadgen --bins
chorus=${CHORUS:-./target/release/chorus}
label=${LABEL:-chorus}
start_redis
pids=()
urls=()
for i in $(seq 1 "$nodes"); do
  port=$((8080 + i))
  RUST_LOG=warn "$chorus" --listen "127.0.0.1:$port" --node-id "bench-$i" \
    --redis-url "redis://127.0.0.1:$redis_port" --max-connections 200000 \
    --send-rate 100000/s:100000 --user-send-rate 100000/s:100000 \
    --join-rate 100000/s:100000 --user-join-rate 100000/s:100000 \
    >/dev/null 2>>"$out/nodes.log" &
  pids+=($!)
  track $!
  urls+=("ws://127.0.0.1:$port/ws")
done
for i in $(seq 1 "$nodes"); do wait_ready "127.0.0.1:$((8080 + i))/readyz"; done
pid_args=(--pid "$redis_pid")
for pid in "${pids[@]}"; do pid_args+=(--pid "$pid"); done
./target/release/chorus-loadgen run "$scenario" --set "urls=$(toml_list "${urls[@]}")" "$@" \
  "${pid_args[@]}" --kill-pid "${pids[0]}" --label "$label" \
  --out "$out/$name-$label.json" --chart "$out/$name-$label.svg"
