# Shared set-up for scripts/test and scripts/bench (sourced, not run).
# Creates .venv, builds and installs fastpool with the given extras, and makes
# sure a PostgreSQL is reachable or can be started from server binaries.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
VENV="${FASTPOOL_VENV:-$ROOT/.venv}"

say() { printf '==> %s\n' "$*"; }

setup_venv() {  # $1: a dependency group of pyproject.toml, e.g. "test" or "bench"
    if [ ! -x "$VENV/bin/python" ]; then
        say "creating virtualenv $VENV"
        "$PYTHON" -m venv "$VENV"
    fi
    # shellcheck disable=SC1091
    . "$VENV/bin/activate"
    python -m pip install -q --disable-pip-version-check --upgrade pip "setuptools>=77" wheel "Cython>=3.1"
    say "building fastpool (compiled core required) and installing the '$1' dependency group"
    FASTPOOL_REQUIRE_EXTENSIONS=1 python -m pip install -q --disable-pip-version-check \
        --no-build-isolation --group "$1" -e .
}

apt_install() {  # $@: Debian packages; only as root, quietly; returns non-zero on failure
    [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 || return 1
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null 2>&1 && return 0
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null 2>&1 || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null 2>&1
}

pg_binaries_present() {
    command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1 && return 0
    ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1
}

ensure_postgres() {
    # A server the tests can reach (env, 127.0.0.1:5432) is enough; otherwise
    # the tests start a private cluster, which needs the server binaries.
    if python -c 'import sys; from tests.support.postgres import find_server; sys.exit(0 if find_server() else 1)'; then
        say "PostgreSQL: using $(python -c 'from tests.support.postgres import find_server; print(repr(find_server()))')"
        return
    fi
    if ! pg_binaries_present; then
        say "no PostgreSQL found: installing Debian's postgresql package"
        if ! apt_install postgresql; then
            echo "error: no PostgreSQL reachable and no server binaries; install PostgreSQL" \
                 "(e.g. apt-get install postgresql) or set FASTPOOL_TEST_DSN" >&2
            exit 1
        fi
    fi
    say "PostgreSQL: no server found, a private throwaway cluster will be started"
}

ensure_tool() {  # $1: command, $2: Debian package, $3: what needs it, $4: what happens without it
    if command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; then
        return
    fi
    say "installing Debian's $2 package ($3)"
    apt_install "$2" || say "could not install $2 (needs root and apt-get): $4"
}

# The PgBouncer tests start their own pgbouncer.
ensure_pgbouncer() { ensure_tool pgbouncer pgbouncer "for the PgBouncer tests" "the PgBouncer tests will be skipped"; }
# The benchmark's server case loads its HTTP servers with wrk (its smoke tests skip without it).
ensure_wrk() { ensure_tool wrk wrk "the HTTP load generator of the server benchmark" "the server benchmark cannot run"; }
# The benchmark's instruction-count case (bench/callgrind.py) runs the pools under callgrind.
ensure_valgrind() { ensure_tool valgrind valgrind "for the benchmark's instruction counts" "the instruction-count case will be skipped"; }

ensure_mariadb() {
    # The generic-pool tests use a MariaDB on 127.0.0.1:3306 or start a private
    # one from the server binaries; MariaDB Connector/Python needs the C library.
    if ! python -c 'import socket; socket.create_connection(("127.0.0.1", 3306), 1).close()' 2>/dev/null \
       && ! command -v mariadbd >/dev/null 2>&1 && [ ! -x /usr/sbin/mariadbd ]; then
        say "no MariaDB found: installing Debian's mariadb-server (the tests start a private one)"
        apt_install mariadb-server || say "could not install mariadb-server: the MariaDB tests will be skipped"
    fi
    if python -c 'import mariadb' 2>/dev/null; then
        return
    fi
    if ! command -v mariadb_config >/dev/null 2>&1; then
        say "installing Debian's libmariadb-dev (to build MariaDB Connector/Python)"
        apt_install libmariadb-dev || true
    fi
    python -m pip install -q --disable-pip-version-check "mariadb>=1.1" \
        || say "could not install MariaDB Connector/Python: its tests will be skipped"
}
