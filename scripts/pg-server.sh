#!/usr/bin/env bash
# scripts/pg-server.sh start|stop|restart|url: a throwaway PostgreSQL server
# for the tests (the PostgreSQL store), from the distribution's packages.
#
#   start    install PostgreSQL if missing (apt-get), initdb into $DIR (trust
#            authentication, so only for tests), listen on a Unix socket in
#            $DIR and on 127.0.0.1:$PORT only, and print the URL
#   restart  stop and start the same server (its data kept)
#   stop     stop it and remove $DIR
#   ca       print the path of the test CA's certificate ($DIR/ca.pem): the
#            server also accepts TLS, with a certificate for 127.0.0.1 and
#            localhost signed by a CA made at start (none if `openssl` is
#            missing), so that tests can check `sslmode=require` both ways
#
# Two roles, if a test creates them, must give a password over TCP
# (tests/it/secrets.rs): spoolmq_scram (scram-sha-256) and spoolmq_clear
# (`password`: the server asks for it in clear text, which spoolmq must
# refuse unless TLS with a checked certificate or sslmode=disable).
# Everyone else is trusted.
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
  local ssl=""
  [[ -f $DIR/server.crt ]] && ssl="-c ssl=on -c ssl_cert_file=$DIR/server.crt -c ssl_key_file=$DIR/server.key"
  pgctl -w -t 60 -o "-c listen_addresses=127.0.0.1 -p $PORT -k $DIR -c max_connections=200 $ssl" start
}
# A throwaway CA and a server certificate it signs (for tests only).
make_certs() {
  command -v openssl >/dev/null || { echo "pg-server.sh: no openssl: the server will not offer TLS" >&2; return 0; }
  (
    cd "$DIR"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
      -subj "/CN=spoolmq test CA" -keyout ca.key -out ca.pem 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
      -subj "/CN=localhost" -keyout server.key -out server.csr 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >server.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
      -days 30 -extfile server.ext -out server.crt 2>/dev/null
    rm -f server.csr server.ext ca.key ca.srl
    chmod 600 server.key
    [[ $(id -u) -eq 0 ]] && chown postgres server.key server.crt
    chmod 644 ca.pem
  )
}

case ${1:-} in
  start)
    if [[ -d $DIR/data ]]; then pgctl -m immediate stop 2>/dev/null || true; fi
    rm -rf "$DIR"; mkdir -p "$DIR"; chmod 700 "$DIR"
    [[ $(id -u) -eq 0 ]] && chown postgres "$DIR"
    as_owner "$BIN/initdb" -D "$DIR/data" -A trust -U postgres -E UTF8 >/dev/null
    hba=$DIR/data/pg_hba.conf
    { printf 'host all spoolmq_scram 127.0.0.1/32 scram-sha-256\nhost all spoolmq_clear 127.0.0.1/32 password\n'
      cat "$hba"; } >"$hba.new"
    mv "$hba.new" "$hba"; chmod 600 "$hba"
    [[ $(id -u) -eq 0 ]] && chown postgres "$hba"
    make_certs
    start_server
    echo "$URL" ;;
  restart)
    pgctl -m fast -w stop
    start_server ;;
  stop)
    pgctl -m fast -w stop || true
    rm -rf "$DIR" ;;
  url) echo "$URL" ;;
  ca) [[ -f $DIR/ca.pem ]] && echo "$DIR/ca.pem" ;;
  *) echo "usage: scripts/pg-server.sh start|stop|restart|url|ca" >&2; exit 2 ;;
esac
