"""Run a throwaway PgBouncer in front of a PostgreSQL server, for tests.

``pgbouncer_in_front_of(dsn)`` writes a config to a temporary directory,
starts ``pgbouncer`` on a free 127.0.0.1 port (as the ``postgres`` OS user
when running as root: PgBouncer refuses to run as root), yields the DSN that
goes through it, and stops it afterwards. Clients need no password
(``auth_type = any``); the server login of the given DSN is used for the
server side, password included. Transaction pooling by default.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from contextlib import contextmanager
from typing import Callable, Iterator, Optional

from .postgres import _ensure_os_user, _free_port, can_connect

# The login of PgBouncer's admin console (``auth_type = any``: no password), where
# ``SHOW SERVERS`` lists this bouncer's own server connections.
ADMIN_USER = "pgbouncer"


def find_pgbouncer() -> Optional[str]:
    return shutil.which("pgbouncer") or next(
        (p for p in ("/usr/sbin/pgbouncer", "/usr/local/bin/pgbouncer") if os.path.exists(p)), None
    )


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


@contextmanager
def pgbouncer_in_front_of(
    dsn: str, *, pool_mode: str = "transaction", pool_size: int = 5
) -> Iterator[str]:
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    binary = find_pgbouncer()
    if binary is None:
        raise RuntimeError("pgbouncer is not installed (Debian: apt-get install pgbouncer)")
    params = conninfo_to_dict(dsn)
    dbname = str(params.get("dbname") or params.get("user") or "postgres")
    server = {
        k: str(v) for k, v in params.items() if k in ("host", "port", "user", "password", "dbname")
    }
    server.setdefault("host", "127.0.0.1")
    tmp = tempfile.mkdtemp(prefix="fastpool-pgbouncer-")
    owner = None
    if os.geteuid() == 0:
        owner = "postgres"
        _ensure_os_user(owner)
        shutil.chown(tmp, user=owner)
    os.chmod(tmp, 0o700)
    port = _free_port()
    ini = os.path.join(tmp, "pgbouncer.ini")
    with open(ini, "w") as f:
        f.write(
            "[databases]\n"
            f"{dbname} = " + " ".join(f"{k}={_quote(v)}" for k, v in server.items()) + "\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
            f"auth_type = any\npool_mode = {pool_mode}\ndefault_pool_size = {pool_size}\n"
            "max_client_conn = 1000\nignore_startup_parameters = extra_float_digits,options\n"
            f"admin_users = {ADMIN_USER}\n"
            f"logfile = {tmp}/pgbouncer.log\npidfile = {tmp}/pgbouncer.pid\n"
        )
    if owner is not None:
        shutil.chown(ini, user=owner)
    os.chmod(ini, 0o600)
    cmd = [binary, "-d", ini]
    if owner is not None:
        cmd = ["runuser", "-u", owner, "--", *cmd]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise RuntimeError(f"pgbouncer failed to start:\n{proc.stdout}\n{proc.stderr}")
    client: dict[str, str | int] = {"host": "127.0.0.1", "port": port, "dbname": dbname}
    if server.get("user"):
        client["user"] = server["user"]
    client_dsn = make_conninfo("", **client)
    try:
        deadline = time.monotonic() + 30
        while not can_connect(client_dsn, 2.0):
            if time.monotonic() > deadline:
                log = open(os.path.join(tmp, "pgbouncer.log")).read()[-2000:]
                raise RuntimeError(f"pgbouncer on port {port} did not accept connections:\n{log}")
            time.sleep(0.1)
        yield client_dsn
    finally:
        try:
            with open(os.path.join(tmp, "pgbouncer.pid")) as f:
                os.kill(int(f.read().strip()), signal.SIGTERM)
        except (OSError, ValueError):
            pass
        shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def server_connection_counter(client_dsn: str) -> Iterator[Callable[[], int]]:
    """A function counting the server connections of the PgBouncer behind
    ``client_dsn`` (its admin console's ``SHOW SERVERS``): only its own,
    whatever else is connected to the same server."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = conninfo_to_dict(client_dsn)
    params.update(dbname="pgbouncer", user=ADMIN_USER)
    with psycopg.connect(make_conninfo("", **params), autocommit=True) as console:
        # The console speaks only the simple query protocol: a client-side cursor.
        cursor = psycopg.ClientCursor(console)

        def count() -> int:
            cursor.execute("SHOW SERVERS")
            return len(cursor.fetchall())

        yield count
