#!/bin/sh
# Like the official postgres image's entry point: the first start initialises
# $PGDATA with POSTGRES_USER (password POSTGRES_PASSWORD, asked of every
# connection from another host) and creates POSTGRES_DB; every start runs
# postgres as the postgres user, listening on every address.
set -e
if [ "$1" = postgres ]; then
  shift
  bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  as_postgres="setpriv --reuid=postgres --regid=postgres --init-groups"
  user=${POSTGRES_USER:-postgres}
  mkdir -p "$PGDATA" /run/postgresql
  chown -R postgres:postgres "$PGDATA" /run/postgresql
  chmod 700 "$PGDATA"
  if [ ! -s "$PGDATA/PG_VERSION" ]; then
    : "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}"
    password=$(mktemp)
    printf '%s' "$POSTGRES_PASSWORD" >"$password"
    chown postgres "$password"
    $as_postgres "$bin/initdb" -D "$PGDATA" -U "$user" --pwfile="$password" -E UTF8 \
      --auth-local=trust --auth-host=scram-sha-256 >/dev/null
    rm -f "$password"
    echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
    if [ -n "${POSTGRES_DB:-}" ] && [ "$POSTGRES_DB" != postgres ]; then
      echo "CREATE DATABASE \"$POSTGRES_DB\" OWNER \"$user\";" \
        | $as_postgres "$bin/postgres" --single -D "$PGDATA" postgres >/dev/null
    fi
  fi
  exec $as_postgres "$bin/postgres" -D "$PGDATA" -c listen_addresses='*' "$@"
fi
exec "$@"
