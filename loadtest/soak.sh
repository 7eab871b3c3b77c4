#!/usr/bin/env bash
# The soak run: chorus-cluster with 3 nodes (node 3 restarted, draining, every
# RESTART_EVERY), the soak scenario against the three nodes, and every 15 s a
# sample of nodes 1 and 2 (RSS, open files, runtime tasks, connections) and of
# Redis's memory. At the end: the load generator's summary (lost, duplicated)
# and the slope of every sampled figure after the warm-up. Rooms keep 200
# messages (--history-max-len), so Redis reaches its steady state within the
# warm-up (a room gets 0.5 messages/s) instead of growing toward the default
# 10,000 for hours, as it should.
#
#   loadtest/soak.sh                       # 35 minutes
#   DURATION=2m WARMUP=30s loadtest/soak.sh --set clients=600
#   CHORUS=path/to/wrapper loadtest/soak.sh   # nodes started through a wrapper (heaptrack, perf)
#
# Results: target/loadtest/soak.json, soak-samples.csv, soak-slopes.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
source loadtest/lib.sh
duration=${DURATION:-35m}
warmup=${WARMUP:-10m}
restart_every=${RESTART_EVERY:-5m}
cargo build --release -q -p chorus-gateway -p chorus-localcluster -p chorus-loadgen --bins
log="$out/soak-cluster.log"
./target/release/chorus-cluster --nodes 3 --port 0 ${CHORUS:+--chorus "$CHORUS"} --restart-every "$restart_every" --restart-node 2 -- \
  --max-connections 200000 --send-rate 1000/s:1000 --user-send-rate 1000/s:1000 \
  --join-rate 1000/s:1000 --user-join-rate 1000/s:1000 --history-max-len 200 >"$log" 2>&1 &
cluster=$!
# chorus-cluster stops its processes on SIGTERM (a SIGKILL would orphan them).
trap 'kill -TERM $cluster 2>/dev/null; wait $cluster 2>/dev/null; stop_all' EXIT
for _ in $(seq 300); do grep -aq "ctrl-c stops everything" "$log" && break; sleep 0.1; done
grep -aq "ctrl-c stops everything" "$log" || { cat "$log"; exit 1; }
mapfile -t nodes < <(grep -aE '^  local-[0-9]' "$log")
addr() { echo "${nodes[$1]}" | awk '{print $2}' | sed 's#http://##'; }
admin() { echo "${nodes[$1]}" | awk '{print $4}' | sed 's#http://##'; }
pid() { echo "${nodes[$1]}" | awk '{print $6}'; }
redis=$(grep -aE '^  redis ' "$log" | awk '{print $2}')
redis_port=${redis##*:}
redis_pid=$(pgrep -f "redis-server 127.0.0.1:$redis_port" | head -1)
urls=$(toml_list "ws://$(addr 0)/ws" "ws://$(addr 1)/ws" "ws://$(addr 2)/ws")

samples="$out/soak-samples.csv"
echo "seconds,rss_kib_1,rss_kib_2,files_1,files_2,tasks_1,tasks_2,connections_1,connections_2,redis_used_kib" >"$samples"
metric() { curl -fsS "http://$1/metrics" | awk -v m="$2" '$1 == m {print $2}'; }
rss() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
files() { ls "/proc/$1/fd" | wc -l; }
sample() {
  local started=$SECONDS
  while sleep 15; do
    local used
    used=$(redis-cli -p "$redis_port" info memory | awk -F: '/^used_memory:/ {print int($2 / 1024)}')
    echo "$((SECONDS - started)),$(rss "$(pid 0)"),$(rss "$(pid 1)"),$(files "$(pid 0)"),$(files "$(pid 1)"),$(metric "$(admin 0)" chorus_runtime_tasks),$(metric "$(admin 1)" chorus_runtime_tasks),$(metric "$(admin 0)" chorus_connections_open),$(metric "$(admin 1)" chorus_connections_open),$used" >>"$samples"
  done
}
sample &
track $!

./target/release/chorus-loadgen run loadtest/scenarios/soak.toml --set "urls=$urls" \
  --set "duration=\"$duration\"" "$@" \
  --pid "$(pid 0)" --pid "$(pid 1)" --pid "$redis_pid" --label soak \
  --out "$out/soak.json" --chart "$out/soak.svg"
grep -aE '^restarting|back, pid' "$log" | tail -20 || true
python3 loadtest/slopes.py "$samples" "$warmup" | tee "$out/soak-slopes.txt"
