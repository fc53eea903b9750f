"""Find or start a PostgreSQL server for fastpool's tests and benchmarks.

Order of preference:

1. ``FASTPOOL_TEST_DSN``, used as given;
2. the libpq environment (``PGHOST``, ``PGPORT``, ``PGUSER``, ``PGDATABASE``,
   ``PGSERVICE``), if any of them is set and it connects;
3. a server on 127.0.0.1:5432 that accepts one of a few usual user/database pairs;
4. a private throwaway cluster made with ``initdb`` and started with ``pg_ctl``
   on a free port in a temporary directory (as the ``postgres`` OS user when
   running as root, since the server refuses to run as root), removed afterwards.

``FASTPOOL_TEST_PRIVATE=1`` skips 1–3. Nothing here ever prints a password.
"""

from __future__ import annotations

import atexit
import getpass
import glob
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator, Optional

LIBPQ_ENV = ("PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "PGSERVICE")
_PASSWORD_RE = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)|(://[^:/@]+:)([^@]*)(@)", re.I)


def mask_password(dsn: str) -> str:
    """The DSN with any password (key/value or URI form) replaced by ``***``."""

    def repl(m: re.Match[str]) -> str:
        if m.group(1):
            return m.group(1) + "***"
        return m.group(3) + "***" + m.group(5)

    return _PASSWORD_RE.sub(repl, dsn)


def can_connect(dsn: str, timeout: float = 3.0) -> bool:
    import psycopg

    try:
        with psycopg.connect(dsn, connect_timeout=max(1, round(timeout)), autocommit=True) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error:
        return False
    return True


@dataclass
class PostgresServer:
    """A reachable server. ``kind`` is "env", "local" or "private"."""

    dsn: str
    kind: str
    datadir: Optional[str] = None
    port: Optional[int] = None
    bindir: Optional[str] = None
    _tmpdir: Optional[str] = field(default=None, repr=False)
    _owner: Optional[str] = field(default=None, repr=False)

    def __repr__(self) -> str:
        return f"PostgresServer(kind={self.kind!r}, dsn={mask_password(self.dsn)!r}, port={self.port!r})"

    # Private clusters only ---------------------------------------------------

    def _pg_ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        if self.kind != "private" or self.bindir is None or self.datadir is None:
            raise RuntimeError(
                "only a private server started by this module can be stopped/started"
            )
        cmd = [os.path.join(self.bindir, "pg_ctl"), "-D", self.datadir, *args]
        return _run_as(self._owner, cmd, check=check)

    def start(self) -> None:
        """(Re)start a private server and wait until it accepts connections."""
        assert self._tmpdir is not None
        log = os.path.join(self._tmpdir, "server.log")
        opts = (
            f"-p {self.port} -k {self._tmpdir} -c listen_addresses=127.0.0.1"
            " -c max_connections=300 -c fsync=off -c synchronous_commit=off"
            " -c full_page_writes=off -c max_prepared_transactions=10"  # for two-phase tests
        )
        self._pg_ctl("-w", "-t", "60", "-l", log, "-o", opts, "start")

    def stop(self) -> None:
        """Stop a private server (fast shutdown: connections are dropped)."""
        self._pg_ctl("-w", "-t", "60", "-m", "fast", "stop", check=False)

    def is_running(self) -> bool:
        return self._pg_ctl("status", check=False).returncode == 0

    def destroy(self) -> None:
        """Stop a private server and remove its files (idempotent)."""
        if self.kind != "private" or self._tmpdir is None:
            return
        if os.path.isdir(self._tmpdir):
            self.stop()
            shutil.rmtree(self._tmpdir, ignore_errors=True)


def _run_as(
    user: Optional[str], cmd: list[str], check: bool = True
) -> subprocess.CompletedProcess[str]:
    if user is not None:
        cmd = ["runuser", "-u", user, "--", *cmd]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(cmd)} failed with exit code {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def find_server(connect_timeout: float = 3.0) -> Optional[PostgresServer]:
    """A server named by the environment or listening on 127.0.0.1:5432; None if neither."""
    dsn = os.environ.get("FASTPOOL_TEST_DSN")
    if dsn is not None:
        return PostgresServer(dsn=dsn, kind="env")
    if any(os.environ.get(k) for k in LIBPQ_ENV) and can_connect("", connect_timeout):
        return PostgresServer(dsn="", kind="env")
    user = getpass.getuser()
    candidates = []
    for u in dict.fromkeys([user, "postgres"]):
        for db in dict.fromkeys(["test", "postgres", u]):
            candidates.append(f"host=127.0.0.1 port=5432 user={u} dbname={db}")
    if not _port_open("127.0.0.1", 5432):
        return None
    for dsn in candidates:
        if can_connect(dsn, connect_timeout):
            return PostgresServer(dsn=dsn, kind="local", port=5432)
    return None


def _port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1.0)
        return s.connect_ex((host, port)) == 0


def find_bindir() -> Optional[str]:
    """Directory holding initdb and pg_ctl: PATH first, then the usual Debian/source places."""
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return os.path.dirname(os.path.realpath(initdb))

    def version(path: str) -> float:
        m = re.search(r"/(\d+(?:\.\d+)?)/bin$", path)
        return float(m.group(1)) if m else 0.0

    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True)
    dirs += ["/usr/local/pgsql/bin"]
    for d in dirs:
        if os.path.exists(os.path.join(d, "initdb")) and os.path.exists(os.path.join(d, "pg_ctl")):
            return d
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # type: ignore[no-any-return]  # typeshed: the address is Any


def _ensure_os_user(name: str) -> None:
    import pwd

    try:
        pwd.getpwnam(name)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", name],
            check=True,
            capture_output=True,
            timeout=60,
        )


def start_private_server() -> PostgresServer:
    """initdb + pg_ctl start a throwaway cluster on a free 127.0.0.1 port."""
    bindir = find_bindir()
    if bindir is None:
        raise RuntimeError(
            "no PostgreSQL server reachable and no server binaries (initdb, pg_ctl) found; "
            "install them with `apt-get install postgresql` (scripts/test does this as root)"
        )
    owner = None
    tmpdir = tempfile.mkdtemp(prefix="fastpool-pg-")
    if os.geteuid() == 0:
        # The server refuses to run as root: the cluster belongs to "postgres".
        owner = "postgres"
        _ensure_os_user(owner)
        shutil.chown(tmpdir, user=owner)
    os.chmod(tmpdir, 0o755)
    datadir = os.path.join(tmpdir, "data")
    try:
        _run_as(
            owner,
            [
                os.path.join(bindir, "initdb"),
                "-D",
                datadir,
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        )
        port = _free_port()
        server = PostgresServer(
            dsn=f"host=127.0.0.1 port={port} user=postgres dbname=postgres",
            kind="private",
            datadir=datadir,
            port=port,
            bindir=bindir,
            _tmpdir=tmpdir,
            _owner=owner,
        )
        server.start()
    except BaseException:
        shutil.rmtree(tmpdir, ignore_errors=True)
        raise
    atexit.register(server.destroy)  # in case the caller never cleans up
    deadline = time.monotonic() + 30
    while not can_connect(server.dsn, 2.0):
        if time.monotonic() > deadline:
            server.destroy()
            raise RuntimeError(f"private PostgreSQL at port {port} did not accept connections")
        time.sleep(0.1)
    return server


@contextmanager
def test_server() -> Iterator[PostgresServer]:
    """A server for the duration of the block: found, or private and removed after."""
    server = None if os.environ.get("FASTPOOL_TEST_PRIVATE") == "1" else find_server()
    if server is not None:
        yield server
        return
    server = start_private_server()
    try:
        yield server
    finally:
        server.destroy()


test_server.__test__ = False  # type: ignore[attr-defined]  # not a pytest test
