"""The asyncio server's app (uvicorn ``bench.server.asgi:app``): a bare ASGI
callable, no framework, so the numbers are the server's and the pool's. The
pool opens in the lifespan startup (uvicorn serves nothing before it ends)
and closes at shutdown."""

from __future__ import annotations

import json
import os
import traceback
from collections.abc import Awaitable
from typing import Any, Callable

from . import async_pools
from .settings import SELFTEST, Settings

SETTINGS = Settings.from_env()
POOL = async_pools.make(SETTINGS)

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

_kept: list[Any] = []  # the self-test's deliberately leaked connection (one per worker)


async def _health() -> object:
    # the pid: the runner waits until every worker has answered
    return {"run_id": SETTINGS.run_id, "pid": os.getpid()}


async def _nodb() -> object:
    return "ok"


async def _selftest_fail() -> object:
    if not _kept:
        import psycopg

        _kept.append(None)  # taken before the await, so a concurrent request skips it
        _kept[0] = await psycopg.AsyncConnection.connect(SETTINGS.dsn)
    raise RuntimeError("the self-test endpoint fails on purpose")


ROUTES: dict[str, Callable[[], Awaitable[object]]] = {
    "/health": _health,
    "/nodb": _nodb,
    "/select1": POOL.select1,
    "/txn": POOL.txn,
    "/" + SELFTEST: _selftest_fail,
}


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            try:
                await POOL.open()
            except Exception:
                traceback.print_exc()
                await send({"type": "lifespan.startup.failed", "message": "pool did not open"})
                return
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await POOL.close()
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _respond(send: Send, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    if scope["type"] != "http":
        return
    handler = ROUTES.get(scope["path"])
    if handler is None:
        await _respond(send, 404, b'"not found"')
        return
    # An exception propagates: uvicorn logs its traceback and answers 500, and
    # the runner flags the run on both.
    result = await handler()
    await _respond(send, 200, json.dumps(result, default=str).encode())
