#!/usr/bin/env bash
# What `make test` needs beyond python3 and make, installed from Debian's packages where missing and started
# where down, idempotently, saying what it does:
#   - PostgreSQL on 127.0.0.1:5432, user postgres without a password (trust on 127.0.0.1), for the scale-out and
#     DuckLake tests (tests/e2e/test_scale_out.py, tests/store);
#   - Redis on 127.0.0.1:6379, nothing kept on disk, for the scale-out tests (Prefect's messaging on Redis);
#   - Chromium, for the browser test of the Prefect UI (tests/e2e/test_ui.py; browsers cannot be downloaded here).
# Installing needs root (or sudo without a password); without it, the script names what is missing and exits 1.
# The embedded default (`make demo`) needs none of this.
set -euo pipefail

PG_HOST=127.0.0.1 PG_PORT=5432 REDIS_PORT=6379
say() { printf 'test services: %s\n' "$*"; }
die() { printf 'test services: %s\n' "$*" >&2; exit 1; }

can_root() { [ "$(id -u)" -eq 0 ] || { command -v sudo >/dev/null && sudo -n true 2>/dev/null; }; }
as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"
    elif can_root; then sudo -n "$@"
    else die "cannot run '$*': not root and no password-less sudo. Run 'make test' as root, or do it yourself."
    fi
}

updated=""
apt_install() {
    command -v apt-get >/dev/null || die "no apt-get: install $* yourself (Debian package names), then run 'make test' again"
    can_root || die "$* missing: installing needs root or password-less sudo. Run 'make test' as root, or install them yourself (apt-get install $*)."
    say "installing $* from Debian's packages ..."
    if [ -z "$updated" ]; then as_root apt-get update -qq; updated=1; fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
    say "installed $*"
}

pg_ready() { pg_isready -q -h "$PG_HOST" -p "$PG_PORT" 2>/dev/null; }
pg_trusted() { psql -h "$PG_HOST" -p "$PG_PORT" -U postgres -d postgres -w -Atqc 'select 1' >/dev/null 2>&1; }
redis_up() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; }
wait_for() {  # wait_for SECONDS WHAT CHECK...
    local seconds=$1 what=$2; shift 2
    for _ in $(seq "$seconds"); do "$@" && return 0; sleep 1; done
    die "$what did not come up within ${seconds} s"
}

# --- PostgreSQL ---------------------------------------------------------------------------------------------------
if pg_ready && pg_trusted; then
    say "PostgreSQL: running on $PG_HOST:$PG_PORT (user postgres, trust)"
else
    { command -v pg_ctlcluster >/dev/null && ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; } \
        || apt_install postgresql postgresql-client
    version=$(ls /etc/postgresql 2>/dev/null | sort -n | tail -1)
    if [ -z "$version" ]; then  # the server is installed but has no cluster (its package was told not to make one)
        version=$(ls /usr/lib/postgresql | sort -n | tail -1)
        say "PostgreSQL $version: creating the main cluster"
        as_root pg_createcluster "$version" main >/dev/null
    fi
    hba=/etc/postgresql/$version/main/pg_hba.conf
    if ! as_root grep -qE '^host\s+all\s+all\s+127\.0\.0\.1/32\s+trust' "$hba"; then
        say "PostgreSQL $version: trusting connections from 127.0.0.1 ($hba)"
        as_root sed -i -E 's/^(host\s+all\s+all\s+127\.0\.0\.1\/32\s+)\S+/\1trust/' "$hba"
        as_root grep -qE '^host\s+all\s+all\s+127\.0\.0\.1/32\s+trust' "$hba" \
            || printf 'host all all 127.0.0.1/32 trust\n' | as_root tee -a "$hba" >/dev/null
        pg_ready && as_root pg_ctlcluster "$version" main reload
    fi
    if ! pg_ready; then
        say "PostgreSQL $version: starting"
        as_root pg_ctlcluster "$version" main start || as_root service postgresql start
    fi
    wait_for 60 "PostgreSQL on $PG_HOST:$PG_PORT" pg_ready
    wait_for 10 "PostgreSQL (password-less user postgres from $PG_HOST)" pg_trusted
    say "PostgreSQL $version: running on $PG_HOST:$PG_PORT (user postgres, trust)"
fi

# --- Redis --------------------------------------------------------------------------------------------------------
if redis_up; then
    say "Redis: running on 127.0.0.1:$REDIS_PORT"
else
    { command -v redis-server >/dev/null && command -v redis-cli >/dev/null; } || apt_install redis-server redis-tools
    if ! redis_up; then  # (installing may have started it)
        say "Redis: starting on 127.0.0.1:$REDIS_PORT (nothing kept on disk)"
        redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no --daemonize yes >/dev/null
    fi
    wait_for 30 "Redis on 127.0.0.1:$REDIS_PORT" redis_up
    say "Redis: running on 127.0.0.1:$REDIS_PORT"
fi

# --- Chromium -----------------------------------------------------------------------------------------------------
chromium=${FLOWHOOK_CHROMIUM:-/usr/bin/chromium}
[ -x "$chromium" ] || apt_install chromium
say "Chromium: $("$chromium" --version 2>/dev/null || echo "$chromium")"
