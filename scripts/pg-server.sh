#!/usr/bin/env bash
# scripts/pg-server.sh start|stop|restart|url: a throwaway PostgreSQL server
# for the tests (the PostgreSQL store), from the distribution's packages.
#
#   start    install PostgreSQL if missing (apt-get), initdb into $DIR (trust
#            authentication, so only for tests), listen on a Unix socket in
#            $DIR and on 127.0.0.1:$PORT only, and print the URL
#   restart  stop and start the same server (its data kept)
#   stop     stop it and remove $DIR
#
# DIR defaults to /tmp/spoolmq-pg and PORT to 54329 (SPOOLMQ_PG_DIR,
# SPOOLMQ_PG_PORT). As root the server runs as the `postgres` user.
set -euo pipefail
DIR=${SPOOLMQ_PG_DIR:-/tmp/spoolmq-pg}
PORT=${SPOOLMQ_PG_PORT:-54329}
URL="postgresql://postgres@127.0.0.1:$PORT/postgres"

pgbin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }
if [[ -z $(pgbin) && ${1:-} == start ]]; then
  command -v apt-get >/dev/null || { echo "pg-server.sh: no PostgreSQL and no apt-get" >&2; exit 1; }
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo -n"
  echo "pg-server.sh: installing postgresql (apt-get)" >&2
  ($SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql) >&2
fi
BIN=$(pgbin)
[[ -n $BIN ]] || { echo "pg-server.sh: PostgreSQL is not installed" >&2; exit 1; }
as_owner() {
  if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}
pgctl() { as_owner "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/log" "$@" >/dev/null; }
start_server() {
  pgctl -w -t 60 -o "-c listen_addresses=127.0.0.1 -p $PORT -k $DIR -c max_connections=200" start
}

case ${1:-} in
  start)
    if [[ -d $DIR/data ]]; then pgctl -m immediate stop 2>/dev/null || true; fi
    rm -rf "$DIR"; mkdir -p "$DIR"; chmod 700 "$DIR"
    [[ $(id -u) -eq 0 ]] && chown postgres "$DIR"
    as_owner "$BIN/initdb" -D "$DIR/data" -A trust -U postgres -E UTF8 >/dev/null
    start_server
    echo "$URL" ;;
  restart)
    pgctl -m fast -w stop
    start_server ;;
  stop)
    pgctl -m fast -w stop || true
    rm -rf "$DIR" ;;
  url) echo "$URL" ;;
  *) echo "usage: scripts/pg-server.sh start|stop|restart|url" >&2; exit 2 ;;
esac
