"""The threaded server's app (gunicorn ``bench.server.wsgi:app``): one pool per
worker process, made here at import, which gunicorn does in each worker after
the fork (no ``--preload``), so no pool crosses a fork."""

from __future__ import annotations

import atexit
import json
import os
import threading
from collections.abc import Iterable
from typing import Any, Callable

from . import sync_pools
from .settings import SELFTEST, Settings

SETTINGS = Settings.from_env()
POOL = sync_pools.make(SETTINGS)
atexit.register(POOL.close)

_kept: list[Any] = []  # the self-test's deliberately leaked connection (one per worker)
_kept_lock = threading.Lock()


def _selftest_fail() -> object:
    with _kept_lock:
        if not _kept:
            import psycopg

            _kept.append(psycopg.connect(SETTINGS.dsn))
    raise RuntimeError("the self-test endpoint fails on purpose")


ROUTES: dict[str, Callable[[], object]] = {
    # the pid: the runner waits until every worker has answered
    "/health": lambda: {"run_id": SETTINGS.run_id, "pid": os.getpid()},
    "/nodb": lambda: "ok",
    "/select1": POOL.select1,
    "/txn": POOL.txn,
    "/" + SELFTEST: _selftest_fail,
}


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    handler = ROUTES.get(environ.get("PATH_INFO", ""))
    if handler is None:
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found\n"]
    # An exception propagates: gunicorn logs its traceback and answers 500,
    # and the runner flags the run on both.
    body = json.dumps(handler(), default=str).encode()
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]
