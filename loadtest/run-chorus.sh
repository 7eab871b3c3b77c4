#!/usr/bin/env bash
# Runs a scenario against a fresh Chorus cluster on this machine: redis-server,
# NODES release `chorus` nodes on ports 8081.. (rates raised for load), then
# chorus-loadgen with their pids, then stops everything.
#
#   loadtest/run-chorus.sh loadtest/scenarios/big-room.toml [--set rate=200 ...]
#   NODES=6 loadtest/run-chorus.sh loadtest/scenarios/idle.toml --set clients=100000 --set workers=6
#
# Results: target/loadtest/<scenario>-chorus.json and .svg.
set -euo pipefail
cd "$(dirname "$0")/.."
scenario=$1
shift
nodes=${NODES:-2}
name=$(basename "$scenario" .toml)
out=target/loadtest
mkdir -p "$out"
cargo build --release -q -p chorus-gateway -p chorus-loadgen --bins
export CHORUS_JWT_SECRET=${CHORUS_JWT_SECRET:-loadtest-secret-0123456789abcdef0123}
redis_port=6399
redis-server --port $redis_port --save "" --appendonly no --daemonize yes \
  --pidfile "$PWD/$out/redis.pid" --logfile "$PWD/$out/redis.log" >/dev/null
pids=()
urls=()
cleanup() {
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  redis-cli -p $redis_port shutdown nosave >/dev/null 2>&1 || true
}
trap cleanup EXIT
for i in $(seq 1 "$nodes"); do
  port=$((8080 + i))
  RUST_LOG=warn ./target/release/chorus --listen "127.0.0.1:$port" --node-id "bench-$i" \
    --redis-url "redis://127.0.0.1:$redis_port" --max-connections 200000 \
    --send-rate 100000/s:100000 --user-send-rate 100000/s:100000 \
    --join-rate 100000/s:100000 --user-join-rate 100000/s:100000 \
    >/dev/null 2>>"$out/nodes.log" &
  pids+=($!)
  urls+=("\"ws://127.0.0.1:$port/ws\"")
done
for i in $(seq 1 "$nodes"); do
  until curl -fsS "127.0.0.1:$((8080 + i))/readyz" >/dev/null 2>&1; do sleep 0.1; done
done
url_list=$(IFS=,; echo "${urls[*]}")
# Redis is part of Chorus's cost: measure it too.
pid_args=(--pid "$(cat "$out/redis.pid")")
for pid in "${pids[@]}"; do pid_args+=(--pid "$pid"); done
./target/release/chorus-loadgen run "$scenario" --set "urls=[$url_list]" "$@" \
  "${pid_args[@]}" --label chorus --out "$out/$name-chorus.json" --chart "$out/$name-chorus.svg"
