#!/usr/bin/env bash
# Runs one scenario against Chorus, the gorilla/websocket hub, the Socket.IO
# cluster and the floor (the smallest broadcast server: what the kernel alone
# costs) in turn, on this machine, at the same offered load, then prints one
# table, the ratios to Chorus (peer ÷ Chorus: server CPU per delivery, RSS per
# connection, p99 latency), every target's ratio to the floor, and one chart.
#
#   loadtest/compare.sh loadtest/scenarios/big-room.toml [--set rate=200 ...]
#   TARGETS="chorus socketio" NODES=2 loadtest/compare.sh ...
#
# NODES (default 3) is the node count of both clusters. The hub and the floor
# are one process each with no rooms, so they only run the big_room, idle and
# connect_storm kinds.
# Results: target/loadtest/<scenario>-{chorus,gorilla,socketio,floor}.json, the
# chart <scenario>-compare.svg and the table <scenario>-compare.md.
set -euo pipefail
cd "$(dirname "$0")/.."
scenario=$1
name=$(basename "$scenario" .toml)
out=target/loadtest
export NODES=${NODES:-3}
targets=${TARGETS:-chorus gorilla socketio floor}
results=()
for target in $targets; do
  if { [ "$target" = gorilla ] || [ "$target" = floor ]; } && grep -Eq '^kind *= *"(small_rooms|reconnect_storm)"' "$scenario"; then
    echo "== $target: skipped (no rooms)" >&2
    continue
  fi
  echo "== $target" >&2
  "loadtest/run-$target.sh" "$@"
  results+=("$out/$name-$target.json")
done
./target/release/chorus-loadgen compare "${results[@]}" --chart "$out/$name-compare.svg" \
  | tee "$out/$name-compare.md"
