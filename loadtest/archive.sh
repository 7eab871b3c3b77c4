#!/usr/bin/env bash
# The archive under load (docs/benchmarks.md, "Archive"): one release node
# with Redis and a PostgreSQL initialised here, small-rooms traffic from the
# load generator.
#
# 1. Throughput: PostgreSQL stopped while BACKLOG_SECONDS of traffic is sent,
#    then started: messages per second into PostgreSQL while it catches up
#    with nothing else running.
# 2. Outage under load: traffic for 150 s at the same rate; PostgreSQL
#    stopped from 30 s to 90 s; how long after it is back the archive has
#    caught up (its lag under a second), and whether every message is there.
#
#   loadtest/archive.sh                 # 1,000 clients in rooms of 10, 1 msg/s each
#   CLIENTS=2000 loadtest/archive.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source loadtest/lib.sh
clients=${CLIENTS:-1000}
rate=${RATE:-1}
backlog_seconds=${BACKLOG_SECONDS:-60}
cargo build --release -q -p chorus-gateway -p chorus-loadgen --bins
chorus=./target/release/chorus

# PostgreSQL in a temporary directory, as the postgres user when root.
pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
pg_dir=$(mktemp -d)
as_pg=()
if [ "$(id -u)" = 0 ]; then
  chown postgres:postgres "$pg_dir"
  as_pg=(setpriv --reuid=postgres --regid=postgres --init-groups --)
fi
pg_port=5499
"${as_pg[@]}" "$pg_bin/initdb" -U chorus --auth=trust -E UTF8 --no-sync -D "$pg_dir/data" >/dev/null
pg() { "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$pg_dir/data" -w -l "$pg_dir/log" "$@" >/dev/null; }
pg_start() { pg -o "-p $pg_port -k $pg_dir -c listen_addresses=127.0.0.1" start; }
pg_stop() { pg -m fast stop; }
count() { "$pg_bin/psql" -h 127.0.0.1 -p $pg_port -U chorus -d postgres -Atc 'SELECT count(*) FROM chorus_messages' 2>/dev/null || echo -1; }
trap 'pg -m immediate stop 2>/dev/null || true; stop_all; rm -rf "$pg_dir"' EXIT
pg_start

start_redis
RUST_LOG=warn "$chorus" --listen 127.0.0.1:8081 --node-id archive-1 \
  --redis-url "redis://127.0.0.1:$redis_port" --database-url "postgres://chorus@127.0.0.1:$pg_port/postgres" \
  --max-connections 200000 --send-rate 100000/s:100000 --user-send-rate 100000/s:100000 \
  --join-rate 100000/s:100000 --user-join-rate 100000/s:100000 \
  >/dev/null 2>>"$out/archive-node.log" &
node=$!
track $node
wait_ready 127.0.0.1:8081/readyz
until [ "$(count)" = 0 ]; do sleep 0.2; done
lag() { curl -s http://127.0.0.1:8081/metrics | awk '/^chorus_archive_lag_seconds/ {if ($2 > m) m = $2} END {print m + 0}'; }
stored() { redis-cli -p $redis_port --scan --pattern '*:state' | while read -r key; do redis-cli -p $redis_port hget "$key" seq; done | awk '{s += $1} END {print s + 0}'; }
load() { # duration
  ./target/release/chorus-loadgen run loadtest/scenarios/small-rooms.toml \
    --set 'urls=["ws://127.0.0.1:8081/ws"]' --set "clients=$clients" --set room_size=10 \
    --set "rate=$rate" --set "duration=$1" --set settle=2s --set workers=2 --label archive \
    --out "$out/archive-load.json" >"$out/archive-load.txt" 2>&1
}

echo "1. throughput: $backlog_seconds s of $((clients * rate)) msg/s with PostgreSQL stopped, then started"
pg_stop
load "${backlog_seconds}s"
backlog=$(stored)
start=$(date +%s.%N)
pg_start
until [ "$(count)" -ge "$backlog" ]; do sleep 0.1; done
end=$(date +%s.%N)
awk -v n="$backlog" -v s="$start" -v e="$end" \
  'BEGIN { printf "   %d messages archived in %.1f s after the start: %.0f messages/s into PostgreSQL\n", n, e - s, n / (e - s) }'

echo "2. outage under load: 150 s at $((clients * rate)) msg/s, PostgreSQL stopped from 30 s to 90 s"
load 150s &
loader=$!
sleep 30
pg_stop
echo "   PostgreSQL stopped; lag while it is down:"
sleep 60
echo "   lag before the restart: $(lag) s"
back=$(date +%s.%N)
pg_start
sleep 1
until awk -v l="$(lag)" 'BEGIN { exit !(l < 1) }'; do sleep 0.2; done
caught=$(date +%s.%N)
awk -v s="$back" -v e="$caught" 'BEGIN { printf "   caught up (lag under 1 s) %.1f s after PostgreSQL was back\n", e - s }'
wait $loader
sleep 3
total=$(stored)
archived=$(count)
lost=$(curl -s http://127.0.0.1:8081/metrics | awk '/^chorus_archive_entries_total\{outcome="lost"\}/ {print $2}')
echo "   stored in Redis (messages and changes): $total; rows in PostgreSQL: $archived; counted lost: ${lost:-0}"
grep -E "sent|delivered|p99" "$out/archive-load.txt" | head -5 | sed 's/^/   load: /'
