#!/usr/bin/env bash
# Runs a scenario against the floor (loadtest/peers/floor): the smallest
# broadcast server this machine can run (one thread, epoll, one pre-built
# frame shared by every client, one writev per client per loop turn), on port
# 8091. Its CPU per delivery is what the kernel alone costs on loopback; the
# load generator speaks to it as to the gorilla hub (no rooms: every client
# gets every message).
#
#   loadtest/run-floor.sh loadtest/scenarios/big-room.toml [--set rate=200 ...]
#
# Results: target/loadtest/<scenario>-floor.json and .svg.
set -euo pipefail
cd "$(dirname "$0")/.."
scenario=$1
shift
name=$(basename "$scenario" .toml)
source loadtest/lib.sh
cargo build --release -q -p chorus-floor -p chorus-loadgen --bins
./target/release/chorus-floor --addr 127.0.0.1:8091 2>>"$out/floor.log" &
floor=$!
track "$floor"
wait_port 8091
./target/release/chorus-loadgen run "$scenario" --set target=gorilla \
  --set 'urls=["ws://127.0.0.1:8091/ws"]' "$@" --pid "$floor" --label floor \
  --out "$out/$name-floor.json" --chart "$out/$name-floor.svg"
