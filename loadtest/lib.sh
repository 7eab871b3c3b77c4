# Shared by the run-*.sh scripts: where results go, the Redis they share, and
# stopping everything they started. Source it from the repository root.
out=${LOADTEST_OUT:-target/loadtest}
# Absolute, since Redis and the nodes are given paths inside it.
case $out in /*) ;; *) out=$PWD/$out ;; esac
mkdir -p "$out" target/peers
export CHORUS_JWT_SECRET=${CHORUS_JWT_SECRET:-loadtest-secret-0123456789abcdef0123}
redis_port=6399
# Pids to SIGKILL on exit.
started=()

# Remembers a background process to stop on exit, and disowns it so that its
# death (a reconnect storm kills one on purpose) is not reported as an error.
track() {
  started+=("$1")
  disown "$1"
}

stop_all() {
  for pid in "${started[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  redis-cli -p $redis_port shutdown nosave >/dev/null 2>&1 || true
}
trap stop_all EXIT

# A fresh, memory-only redis-server on $redis_port; sets redis_pid.
start_redis() {
  redis-cli -p $redis_port shutdown nosave >/dev/null 2>&1 || true
  redis-server --port $redis_port --save "" --appendonly no --daemonize yes \
    --pidfile "$out/redis.pid" --logfile "$out/redis.log" >/dev/null
  until redis-cli -p $redis_port ping >/dev/null 2>&1; do sleep 0.1; done
  redis_pid=$(cat "$out/redis.pid")
}

# Waits (up to 30 s) until http://$1 answers 200.
wait_ready() {
  for _ in $(seq 300); do
    curl -fsS "http://$1" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "$1 did not become ready" >&2
  exit 1
}

# Waits (up to 30 s) until something listens on 127.0.0.1:$1.
wait_port() {
  for _ in $(seq 300); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on port $1" >&2
  exit 1
}

# Joins its arguments as a TOML array of strings.
toml_list() {
  local IFS=,
  local quoted=()
  for item in "$@"; do quoted+=("\"$item\""); done
  echo "[${quoted[*]}]"
}
