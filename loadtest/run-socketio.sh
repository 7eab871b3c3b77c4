#!/usr/bin/env bash
# Runs a scenario against a Socket.IO 4 cluster with the official Redis adapter
# (loadtest/peers/socketio): redis-server, NODES (default 3) Node processes on
# ports 8091.., then chorus-loadgen with their pids and Redis's. The npm
# dependencies are installed at run time into target/peers/socketio (npm ci,
# versions pinned by package-lock.json), never committed.
#
#   loadtest/run-socketio.sh loadtest/scenarios/big-room.toml [--set rate=200 ...]
#
# Results: target/loadtest/<scenario>-socketio.json and .svg.
set -euo pipefail
cd "$(dirname "$0")/.."
scenario=$1
shift
nodes=${NODES:-3}
name=$(basename "$scenario" .toml)
source loadtest/lib.sh
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "run-socketio: needs nodejs and npm (apt-get install nodejs npm)" >&2
  exit 1
fi
peer=target/peers/socketio
mkdir -p "$peer"
cp loadtest/peers/socketio/{package.json,package-lock.json,server.js} "$peer/"
if ! cmp -s "$peer/package-lock.json" "$peer/node_modules/.package-lock.json" 2>/dev/null \
  || [ ! -d "$peer/node_modules/socket.io" ]; then
  (cd "$peer" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi
cargo build --release -q -p chorus-loadgen --bins
start_redis
pids=()
urls=()
for i in $(seq 1 "$nodes"); do
  port=$((8090 + i))
  PORT=$port REDIS_URL="redis://127.0.0.1:$redis_port" node "$peer/server.js" 2>>"$out/socketio.log" &
  pids+=($!)
  track $!
  urls+=("ws://127.0.0.1:$port/socket.io/?EIO=4&transport=websocket")
done
for i in $(seq 1 "$nodes"); do wait_ready "127.0.0.1:$((8090 + i))/readyz"; done
pid_args=(--pid "$redis_pid")
for pid in "${pids[@]}"; do pid_args+=(--pid "$pid"); done
./target/release/chorus-loadgen run "$scenario" --set target=socketio \
  --set "urls=$(toml_list "${urls[@]}")" "$@" "${pid_args[@]}" --label socketio \
  --out "$out/$name-socketio.json" --chart "$out/$name-socketio.svg"
