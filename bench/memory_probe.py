"""Run in a fresh interpreter by the memory case: RSS before and after one pool
(or one list of bare connections) holding ``n`` warm connections.

``python -m bench.memory_probe NAME N DSN`` prints ``{"before": bytes, "after": bytes}``.
Every library is imported and one connection of each driver is opened and
used *before* the first reading, so import and driver start-up costs are
not counted as the pool's."""

from __future__ import annotations

import gc
import json
import os
import sys

RAW = {"psycopg (no pool)", "psycopg2 (no pool)"}


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _warm_drivers(dsn: str) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT 1").fetchone()
    try:
        import psycopg2
    except ImportError:
        return
    conn2 = psycopg2.connect(dsn)
    conn2.cursor().execute("SELECT 1")
    conn2.close()


def main(name: str, n: int, dsn: str) -> dict:
    from .contenders import CONTENDERS, Setup, fastpool_module

    for lib in (
        "psycopg_pool",
        "sqlalchemy",
        "sqlalchemy.pool",
        "psycopg2.pool",
        "dbutils.pooled_db",
    ):
        try:
            __import__(lib)
        except ImportError:
            pass
    for impl in ("c", "python"):
        try:
            fastpool_module(impl)
        except ImportError:
            pass
    _warm_drivers(dsn)
    setup = Setup(dsn, size=n)
    gc.collect()
    before = rss()
    if name == "psycopg (no pool)":
        import psycopg

        held: object = [psycopg.connect(dsn, autocommit=True) for _ in range(n)]
    elif name == "psycopg2 (no pool)":
        import psycopg2

        held = [psycopg2.connect(dsn) for _ in range(n)]
    else:
        held = CONTENDERS[name].factory(setup)
        held.warm()  # type: ignore[attr-defined]
    gc.collect()
    after = rss()
    return {"before": before, "after": after, "held": repr(type(held))}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], int(sys.argv[2]), sys.argv[3])))
