#!/bin/sh
# A Redis Cluster of three primaries with a replica each, in one container:
# six redis-server processes on ports 7000-7005 (AOF, fsync always), joined
# by `redis-cli --cluster create` on the first start (their nodes.conf in
# /data keeps the cluster across restarts). They announce the container's
# service name (REDIS_CLUSTER_HOSTNAME, default redis-cluster), so that
# clients on the project's network reach every node: the gateways use
#   REDIS_URL=redis://redis-cluster:7000,redis-cluster:7001,redis-cluster:7002
#   CHORUS_REDIS_MODE=cluster
# A demonstration topology for `docker compose`: in production each node
# runs on a machine of its own (see README.md, Kubernetes).
set -eu
host=${REDIS_CLUSTER_HOSTNAME:-redis-cluster}
ports="7000 7001 7002 7003 7004 7005"
pids=""
for port in $ports; do
  mkdir -p "/data/$port"
  chown redis:redis "/data/$port" 2>/dev/null || true
  setpriv --reuid=redis --regid=redis --init-groups redis-server \
    --port "$port" --protected-mode no --dir "/data/$port" \
    --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 2000 \
    --cluster-announce-hostname "$host" --cluster-preferred-endpoint-type hostname \
    --appendonly yes --appendfsync always --save "" --repl-diskless-sync-delay 0 &
  pids="$pids $!"
done
trap 'kill $pids; wait' TERM INT
for port in $ports; do
  until redis-cli -p "$port" ping >/dev/null 2>&1; do sleep 0.2; done
done
if ! redis-cli -p 7000 cluster info | grep -q cluster_known_nodes:6; then
  addresses=""
  for port in $ports; do addresses="$addresses 127.0.0.1:$port"; done
  # shellcheck disable=SC2086
  redis-cli --cluster create $addresses --cluster-replicas 1 --cluster-yes
fi
wait
