"""What the runner tells a server, through its environment, and the work each
endpoint does. Shared by the apps (which read it) and the runner (which writes it)."""

from __future__ import annotations

import os
import random
from dataclasses import dataclass

PREFIX = "FASTPOOL_BENCH_SERVER_"

# The endpoints a run measures. "nodb" touches no database: the server's own ceiling.
ENDPOINTS = ("select1", "txn", "nodb")
# Not measured: the test suite calls it to check that a failing run is flagged.
# It raises (a 500 and a traceback) and leaves a database session open.
SELFTEST = "selftest-fail"

SELECT1 = "SELECT 1"
# The short read transaction: one row by key, then a small aggregate, then commit.
ITEM = "SELECT name, price FROM {table} WHERE id = %(id)s"
RANGE = "SELECT count(*), sum(price) FROM {table} WHERE id BETWEEN %(lo)s AND %(hi)s"
ROWS = 1000


def txn_params() -> tuple[dict[str, int], dict[str, int]]:
    """Parameters of one transaction: a random row, and the ten rows after it."""
    key = random.randrange(1, ROWS - 10)
    return {"id": key}, {"lo": key, "hi": key + 10}


@dataclass(frozen=True)
class Settings:
    """One run's server: which pool, on which database, in which mode."""

    contender: str
    dsn: str  # carries this run's application_name, so its sessions can be counted
    pool_size: int
    autocommit: bool  # False for the transaction endpoint: the request commits
    table: str  # the small table of the transaction endpoint
    run_id: str  # /health answers it, so the runner knows the server is its own
    trace_dir: str = ""  # where each worker writes its per-request times (trace.py); '': nowhere

    def to_env(self) -> dict[str, str]:
        return {
            PREFIX + "CONTENDER": self.contender,
            PREFIX + "DSN": self.dsn,
            PREFIX + "POOL_SIZE": str(self.pool_size),
            PREFIX + "AUTOCOMMIT": "1" if self.autocommit else "0",
            PREFIX + "TABLE": self.table,
            PREFIX + "RUN_ID": self.run_id,
            PREFIX + "TRACE_DIR": self.trace_dir,
        }

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        try:
            return cls(
                contender=env[PREFIX + "CONTENDER"],
                dsn=env[PREFIX + "DSN"],
                pool_size=int(env[PREFIX + "POOL_SIZE"]),
                autocommit=env[PREFIX + "AUTOCOMMIT"] == "1",
                table=env[PREFIX + "TABLE"],
                run_id=env[PREFIX + "RUN_ID"],
                trace_dir=env.get(PREFIX + "TRACE_DIR", ""),
            )
        except KeyError as exc:
            raise RuntimeError(
                f"{exc.args[0]} is not set: the benchmark servers are started by "
                "bench/server/runner.py, which sets the FASTPOOL_BENCH_SERVER_* variables"
            ) from None
