#!/bin/sh
# Like the official redis image's entry point: its redis-server is built with
# protected mode off (it listens for other containers, not only loopback), and
# runs as the redis user.
if [ "$1" = redis-server ]; then
  shift
  exec setpriv --reuid=redis --regid=redis --init-groups redis-server "$@" --protected-mode no
fi
exec "$@"
