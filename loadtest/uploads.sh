#!/usr/bin/env bash
# Upload throughput and memory per concurrent upload (docs/benchmarks.md, "Files").
# Posts a 20 MiB file of random bytes 1, 8 and 32 times at once to URL and
# reports the time, MiB/s and the node's peak RSS (VmHWM) over its RSS
# before the run, divided by the uploads at once.
#
#   CHORUS_JWT_SECRET=... loadtest/uploads.sh http://127.0.0.1:8095 <node pid>
#
# The node needs --upload-rate high enough (e.g. 100000/s:100000).
set -euo pipefail
url=${1:?usage: uploads.sh URL NODE_PID}
pid=${2:?usage: uploads.sh URL NODE_PID}
chorus=${CHORUS_BIN:-$(dirname "$0")/../target/release/chorus}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
head -c $((20 * 1024 * 1024)) /dev/urandom > "$work/blob.bin"
token=$("$chorus" token --sub bench --join '*' --post '*')
kib() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$pid/status"; }
idle=$(kib VmRSS)
for n in 1 8 32; do
  start=$(date +%s.%N)
  for i in $(seq "$n"); do
    curl -s -o /dev/null -w '%{http_code}\n' -X POST \
      "$url/api/v1/rooms/bench/files?name=b$i.bin" \
      -H "Authorization: Bearer $token" --data-binary @"$work/blob.bin" > "$work/code.$i" &
  done
  wait
  end=$(date +%s.%N)
  codes=$(cat "$work"/code.* | sort | uniq -c | xargs)
  rm -f "$work"/code.*
  awk -v n="$n" -v start="$start" -v end="$end" -v hwm="$(kib VmHWM)" -v idle="$idle" -v codes="$codes" \
    'BEGIN { t = end - start; printf "%d at once: %.3f s, %.0f MiB/s, peak over idle per upload %.1f MiB (HTTP: %s)\n", n, t, 20 * n / t, (hwm - idle) / 1024 / n, codes }'
done
