"""Find or start a MariaDB (or MySQL) server for the generic-pool tests.

Order of preference:

1. ``FASTPOOL_TEST_MYSQL``, a URL ``mysql://user[:password]@host[:port]/database``;
2. a server on 127.0.0.1:3306 that lets ``root`` in without a password
   (database ``test``, created if missing);
3. a private throwaway server made with ``mariadb-install-db`` and started
   with ``mariadbd`` on a free port in a temporary directory, removed afterwards.

``FASTPOOL_TEST_MYSQL_PRIVATE=1`` skips 1–2. ``connect_args`` are keyword
arguments every MySQL driver understands (host, port, user, password, database).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Optional
from urllib.parse import unquote, urlsplit

from .postgres import _free_port, _port_open


@dataclass
class MariaDBServer:
    """A reachable server. ``kind`` is "env", "local" or "private"."""

    kind: str
    # Keyword arguments for any MySQL driver's connect(): str and int values, typed
    # Any so that they can be passed on to drivers typing each parameter.
    connect_args: dict[str, Any]
    process: Optional[subprocess.Popen[bytes]] = None
    datadir: Optional[str] = None

    def __repr__(self) -> str:
        args = {k: v for k, v in self.connect_args.items() if k != "password"}
        return f"MariaDBServer(kind={self.kind!r}, {args})"

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.datadir:
            shutil.rmtree(self.datadir, ignore_errors=True)


def _connects(args: dict[str, Any], create_db: bool = False) -> bool:
    import pymysql

    try:
        conn = pymysql.connect(
            **{k: v for k, v in args.items() if k != "database"}, connect_timeout=3
        )
    except pymysql.Error:
        return False
    try:
        with conn.cursor() as cur:
            if create_db:
                cur.execute(f"CREATE DATABASE IF NOT EXISTS `{args['database']}`")
            cur.execute(f"USE `{args['database']}`")
    except pymysql.Error:
        return False
    finally:
        conn.close()
    return True


def _from_url(url: str) -> dict[str, Any]:
    parts = urlsplit(url)
    if parts.scheme not in ("mysql", "mariadb") or not parts.hostname:
        raise ValueError(
            "FASTPOOL_TEST_MYSQL must look like mysql://user[:password]@host[:port]/database"
        )
    return {
        "host": parts.hostname,
        "port": parts.port or 3306,
        "user": unquote(parts.username or "root"),
        "password": unquote(parts.password or ""),
        "database": parts.path.lstrip("/") or "test",
    }


def find_server() -> Optional[MariaDBServer]:
    if os.environ.get("FASTPOOL_TEST_MYSQL_PRIVATE") == "1":
        return None
    url = os.environ.get("FASTPOOL_TEST_MYSQL")
    if url:
        args = _from_url(url)
        if not _connects(args):
            raise RuntimeError(
                f"FASTPOOL_TEST_MYSQL is set but the server doesn't answer: {args['host']}"
            )
        return MariaDBServer("env", args)
    args = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": "", "database": "test"}
    if not _port_open("127.0.0.1", 3306):
        return None
    return MariaDBServer("local", args) if _connects(args, create_db=True) else None


def _binary(*names: str) -> Optional[str]:
    for name in names:
        for path in (shutil.which(name), f"/usr/sbin/{name}", f"/usr/bin/{name}"):
            if path and os.access(path, os.X_OK):
                return path
    return None


def start_private_server(timeout: float = 60.0) -> Optional[MariaDBServer]:
    """A throwaway server, or None when no server binaries are installed."""
    install_db = _binary("mariadb-install-db", "mysql_install_db")
    server = _binary("mariadbd", "mysqld")
    if install_db is None or server is None:
        return None
    datadir = tempfile.mkdtemp(prefix="fastpool-mariadb-")
    user = ["--user=root"] if os.geteuid() == 0 else []
    subprocess.run(
        [
            install_db,
            "--no-defaults",
            f"--datadir={datadir}/data",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            *user,
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    port = _free_port()
    proc = subprocess.Popen(
        [
            server,
            "--no-defaults",
            f"--datadir={datadir}/data",
            f"--port={port}",
            "--bind-address=127.0.0.1",
            f"--socket={datadir}/mysqld.sock",
            f"--pid-file={datadir}/mysqld.pid",
            "--skip-log-bin",
            f"--log-error={datadir}/error.log",
            *user,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    args = {"host": "127.0.0.1", "port": port, "user": "root", "password": "", "database": "test"}
    srv = MariaDBServer("private", args, process=proc, datadir=datadir)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        if _connects(args, create_db=True):
            return srv
        time.sleep(0.2)
    srv.stop()
    raise RuntimeError(f"the private MariaDB server didn't start within {timeout} s")


@contextmanager
def test_server() -> Iterator[Optional[MariaDBServer]]:
    """A reachable server for the duration, or None if there is none to be had."""
    server = find_server() or start_private_server()
    try:
        yield server
    finally:
        if server is not None and server.kind == "private":
            server.stop()


def connect_args_for(driver: str, args: dict[str, Any]) -> dict[str, Any]:
    """``args`` spelled the way ``driver`` ("pymysql", "mysql.connector",
    "mariadb") wants them."""
    out = dict(args)
    if driver == "mariadb" and not out.get("password"):
        out.pop("password", None)
    return out
