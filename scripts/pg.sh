# Sourced by the other scripts: finds or starts a PostgreSQL server.
#
#   ensure_postgres DIR PORT   sets PG_URL to a superuser URL of a reachable server: the one at
#                              $PG_URL if given, else 127.0.0.1:5432, else a throwaway cluster
#                              created under DIR (initdb/pg_ctl, trust auth, ssl on) and stopped
#                              when the calling script exits.
#   start_cluster DIR PORT     creates (once) and starts a cluster under DIR; prints its data dir.
#   stop_cluster DATA_DIR      stops it (fast shutdown).

pg_bin() {
  # Finds a PostgreSQL server binary; installs Debian's postgresql if there is none.
  local name=$1 dir
  for dir in "$(pg_config --bindir 2>/dev/null)" /usr/lib/postgresql/*/bin; do
    [ -x "$dir/$name" ] && { echo "$dir/$name"; return; }
  done
  echo "installing PostgreSQL from Debian's packages" >&2
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; } >&2
  for dir in /usr/lib/postgresql/*/bin; do
    [ -x "$dir/$name" ] && { echo "$dir/$name"; return; }
  done
  echo "cannot find or install PostgreSQL's $name" >&2
  return 1
}

reachable() {
  local isready
  isready=$(pg_bin pg_isready) || return 1
  "$isready" -q -d "$1" -t 2
}

# Runs a command as the owner of the cluster (initdb and postgres refuse to run as root).
as_pg_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start_cluster() {
  local dir=$1 port=$2 initdb pg_ctl
  initdb=$(pg_bin initdb) && pg_ctl=$(pg_bin pg_ctl) || return 1
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  if [ "$(id -u)" = 0 ]; then
    chown postgres: "$dir"
    # The postgres user may not be able to reach a checkout under a private home directory.
    if ! runuser -u postgres -- test -w "$dir"; then
      dir=/tmp/todo-api-$(basename "$dir")-$port
      mkdir -p "$dir" && chown postgres: "$dir"
    fi
  fi
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    as_pg_owner "$initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
      { cat "$dir/initdb.log" >&2; return 1; }
    # A self-signed certificate, so that sslmode=require can be tested here.
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj /CN=localhost \
      -keyout "$dir/data/server.key" -out "$dir/data/server.crt" >/dev/null 2>&1
    chmod 600 "$dir/data/server.key"
    [ "$(id -u)" = 0 ] && chown postgres: "$dir/data/server.key" "$dir/data/server.crt"
  fi
  as_pg_owner "$pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
    -o "-p $port -c listen_addresses=127.0.0.1 -k $dir -c ssl=on -c max_connections=300 -c fsync=off" start >/dev/null ||
    { cat "$dir/server.log" >&2; return 1; }
  echo "$dir/data"
}

stop_cluster() {
  as_pg_owner "$(pg_bin pg_ctl)" -D "$1" -m fast -w stop >/dev/null 2>&1 || true
}

ensure_postgres() {
  local dir=$1 port=$2
  if [ -n "${PG_URL:-}" ] && reachable "$PG_URL"; then return; fi
  PG_URL=postgres://postgres@127.0.0.1:5432/postgres
  if reachable "$PG_URL"; then export PG_URL; return; fi
  PG_URL=postgres://postgres@127.0.0.1:$port/postgres
  if ! reachable "$PG_URL"; then
    echo "no PostgreSQL on 127.0.0.1:5432: starting a throwaway cluster in $dir on port $port" >&2
    PG_CLUSTER_DATA=$(start_cluster "$dir" "$port")
    trap 'stop_cluster "$PG_CLUSTER_DATA"' EXIT
  fi
  export PG_URL
}
