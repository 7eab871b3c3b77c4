#!/usr/bin/env bash
# Fuzzes the server API (/api/v1/) with schemathesis (PyPI) against a real
# node on a real redis-server, both started here on free loopback ports:
# no answer may be a 5xx, and every answer must match the OpenAPI document
# the node serves (status, content type, headers, body schema), with a
# PostgreSQL archive (initialised here, like the tests') behind search; input the
# document calls invalid must be refused. Not checked: that every
# schema-valid input is accepted (room names, control characters, a
# revocation's time in the future and body sizes set by flags are refused
# by rules the schema does not spell out; docs/api.md lists them).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v schemathesis >/dev/null 2>&1; then
  echo "api_fuzz: installing schemathesis from PyPI"
  python3 -m pip install --quiet 'schemathesis>=4,<5'
fi
cargo build --quiet --locked -p chorus-gateway --bin chorus
chorus=target/debug/chorus

dir=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$dir" "${pg_dir:-}"
}
trap cleanup EXIT
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" \
  >"$dir/redis.log" 2>&1 &
pids+=($!)
# PostgreSQL for the archive (search), as the postgres user when root.
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
pg_dir=$(mktemp -d)
as_pg=()
if [ "$(id -u)" = 0 ]; then
  chown postgres:postgres "$pg_dir"
  as_pg=(setpriv --reuid=postgres --regid=postgres --init-groups --)
fi
"${as_pg[@]}" "$pg_bin/initdb" -U chorus --auth=trust -E UTF8 --no-sync -D "$pg_dir/data" >/dev/null
pg_port=$(free_port)
"${as_pg[@]}" "$pg_bin/postgres" -D "$pg_dir/data" -p "$pg_port" -k "$pg_dir" \
  -c listen_addresses=127.0.0.1 -c fsync=off >"$dir/postgres.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
  "$pg_bin/pg_isready" -q -h 127.0.0.1 -p "$pg_port" && break
  sleep 0.1
done
"$chorus" migrate --database-url "postgres://chorus@127.0.0.1:$pg_port/postgres"

"$chorus" api-key --name fuzz --scopes publish,moderate,presence,history,users,webhooks >"$dir/key.txt"
key=$(sed -n 2p "$dir/key.txt" | cut -c3-)
grep -v '^#' "$dir/key.txt" >"$dir/keys.toml"

port=$(free_port)
CHORUS_JWT_SECRET=api-fuzz-secret-0123456789abcdef0123 "$chorus" \
  --listen "127.0.0.1:$port" --redis-url "redis://127.0.0.1:$redis_port" \
  --api-keys-file "$dir/keys.toml" --api-key-rate 100000/s --public-rooms '*' \
  --database-url "postgres://chorus@127.0.0.1:$pg_port/postgres" \
  --log-format json >"$dir/chorus.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
  if python3 - "$port" <<'PY' 2>/dev/null; then break; fi
import sys, urllib.request
urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/readyz", timeout=1)
PY
  sleep 0.1
done

status=0
# From the temporary directory: schemathesis keeps its cache where it runs.
(cd "$dir" && schemathesis run "http://127.0.0.1:$port/api/v1/openapi.json" \
  --url "http://127.0.0.1:$port" \
  --header "Authorization: Bearer $key" \
  --exclude-checks positive_data_acceptance \
  --max-examples 100 --seed 42 --no-color) || status=$?
if grep -q '"level":"ERROR"' "$dir/chorus.log"; then
  echo "api_fuzz: the node logged errors:" >&2
  grep '"level":"ERROR"' "$dir/chorus.log" | head -20 >&2
  status=1
fi
exit "$status"
