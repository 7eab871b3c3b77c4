#!/usr/bin/env bash
# Redis CPU per stored message of the publish script alone, without a node:
# the calls are written as raw protocol and piped in (`redis-cli --pipe`, so
# they arrive pipelined, as a node's do), and the figure is the redis-server's
# CPU time divided by the messages stored. One subscriber (a psubscribe to
# everything) receives every PUBLISH, as a node would.
#
#   loadtest/publish-script.sh ROOMS PER_ROOM   # calls of ROOMS x PER_ROOM messages
#   SCRIPT=<old publish.lua> loadtest/publish-script.sh single ROOMS
#       # the one-message script from before batching (for example
#       # `git show de532c4:crates/backplane/src/redis/publish.lua`),
#       # one call per message, the rooms taken in turn
#
# MESSAGES (default 200000) sets how many messages are stored.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
scripts=$here/crates/backplane/src/redis
port=${PORT:-6398}
work=$(mktemp -d)
redis= subscriber=
stop() {
    kill $subscriber 2>/dev/null || true
    [ -z "$redis" ] || { redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true; wait "$redis" 2>/dev/null || true; }
    rm -rf "$work"
}
trap stop EXIT
redis-server --port "$port" --save "" --appendonly no --daemonize no >/dev/null &
redis=$!
until redis-cli -p "$port" ping >/dev/null 2>&1; do sleep 0.05; done
redis-cli -p "$port" psubscribe '*' >/dev/null &
subscriber=$!
body=${SCRIPT:-$scripts/publish.lua}
{ printf '#!lua\n'; cat "$scripts/epoch.lua"; echo; cat "$scripts/trim.lua"; echo; cat "$body"; } >"$work/script.lua"
sha=$(redis-cli -p "$port" -x script load <"$work/script.lua")
python3 - "$sha" "${MESSAGES:-200000}" "$@" >"$work/calls" <<'PY'
import sys
sha, messages, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
envelope = '{"t":"message","room":"r","body":"%s","id":"0190b2f0-0000-7000-8000-000000000000"}' % ('x' * 200)
bounds = ['100000', '604800000', '2592000000', '300000']
out = sys.stdout.buffer
def call(words):
    out.write(b'*%d\r\n' % len(words))
    for word in words:
        data = word.encode()
        out.write(b'$%d\r\n%s\r\n' % (len(data), data))
def keys(r):
    return ['p:room:{r%d}:%s' % (r, s) for s in ('state', 'log', 'overlays', 'changes')]
if mode == 'single':
    rooms = int(sys.argv[4])
    for n in range(messages):
        r = n % rooms
        call(['EVALSHA', sha, '4'] + keys(r) + ['p:room:{r%d}' % r, envelope, '1733300000000',
             'id-%d' % n] + bounds + ['', 'user-%d' % r])
else:
    rooms, per_room = int(sys.argv[3]), int(sys.argv[4])
    batch = rooms * per_room
    for c in range(messages // batch):
        ks, args = [], bounds + [str(rooms)]
        for r in range(rooms):
            ks += keys(r)
            args.append('p:room:{r%d}' % r)
        for m in range(per_room):
            for r in range(rooms):
                args += [str(r + 1), '0', envelope, '1733300000000', 'id-%d-%d' % (c, m), '', 'user-%d' % r]
        call(['EVALSHA', sha, str(len(ks))] + ks + args)
PY
cpu() { awk '{print $14 + $15}' "/proc/$redis/stat"; }
before=$(cpu)
redis-cli -p "$port" --pipe <"$work/calls" >"$work/pipe.out"
after=$(cpu)
grep -q "errors: 0," "$work/pipe.out" || { cat "$work/pipe.out" >&2; exit 1; }
stored=0
for key in $(redis-cli -p "$port" --scan --pattern 'p:room:*:state'); do
    stored=$((stored + $(redis-cli -p "$port" hget "$key" seq)))
done
python3 -c "print('$*: %.2f µs of Redis CPU per message (%d stored)' % (($after - $before) / $(getconf CLK_TCK) * 1e6 / $stored, $stored))"
