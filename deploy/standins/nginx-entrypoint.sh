#!/bin/sh
# The official nginx image's entry point, as far as the compose file relies on
# it: before nginx starts, every file of /docker-entrypoint.d runs in order,
# `*.envsh` sourced (so its exports reach the later ones) and `*.sh` executed,
# each only when executable. The image's own are 15-local-resolvers.envsh and
# 20-envsubst-on-templates.sh (nginx-entrypoint.d/).
set -eu
if [ "$1" = nginx ] || [ "$1" = nginx-debug ]; then
  for f in $(find /docker-entrypoint.d/ -follow -type f | sort -V); do
    case "$f" in
      *.envsh) if [ -x "$f" ]; then echo "$0: sourcing $f"; . "$f"; else echo "$0: ignoring $f, not executable"; fi ;;
      *.sh) if [ -x "$f" ]; then echo "$0: launching $f"; "$f"; else echo "$0: ignoring $f, not executable"; fi ;;
    esac
  done
fi
exec "$@"
