#!/usr/bin/env bash
# Runs a scenario against the gorilla/websocket hub (loadtest/peers/gorilla),
# built with Debian's golang-go and golang-github-gorilla-websocket-dev in
# GOPATH mode (no module download), on port 8090. The hub is one process with
# no rooms: every client gets every message.
#
#   loadtest/run-gorilla.sh loadtest/scenarios/big-room.toml [--set rate=200 ...]
#
# Results: target/loadtest/<scenario>-gorilla.json and .svg.
set -euo pipefail
cd "$(dirname "$0")/.."
scenario=$1
shift
name=$(basename "$scenario" .toml)
source loadtest/lib.sh
if ! command -v go >/dev/null || [ ! -d /usr/share/gocode/src/github.com/gorilla/websocket ]; then
  echo "run-gorilla: needs golang-go and golang-github-gorilla-websocket-dev (apt-get install ...)" >&2
  exit 1
fi
GOPATH=/usr/share/gocode GO111MODULE=off GOFLAGS=-mod=mod GOCACHE="$PWD/target/peers/gocache" \
  go build -o target/peers/gorilla-hub ./loadtest/peers/gorilla
cargo build --release -q -p chorus-loadgen --bins
./target/peers/gorilla-hub -addr 127.0.0.1:8090 2>>"$out/gorilla.log" &
hub=$!
track "$hub"
wait_port 8090
./target/release/chorus-loadgen run "$scenario" --set target=gorilla \
  --set 'urls=["ws://127.0.0.1:8090/ws"]' "$@" --pid "$hub" --label gorilla \
  --out "$out/$name-gorilla.json" --chart "$out/$name-gorilla.svg"
