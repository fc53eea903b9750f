"""Run under callgrind by the instruction-count case (``bench/callgrind.py``):
``N`` and ``2N`` cycles of ``with pool.connection() as conn: pass`` on real
connections, for each named pool and each transaction mode.

``python -m bench.callgrind_probe DSN N NAME[,NAME...]`` prints one JSON line:
the labels of the measured regions, in the order callgrind dumps them.

Each region is bracketed by two system calls nothing else in the process
makes: ``os.getppid()`` (callgrind zeroes its counters on entering
``getppid``) before it and ``os.getpgrp()`` (callgrind dumps them on entering
``getpgrp``) after it. A dump therefore holds the region plus the constant
cost of the two brackets, which the difference between ``2N`` and ``N``
cycles removes, together with anything else paid once per region."""

from __future__ import annotations

import itertools
import json
import os
import sys
from typing import Any

from .contenders import CONTENDERS, Setup

MODES = {"autocommit": True, "transaction": False}
POOL_SIZE = 10


def cycles(pool: Any, n: int) -> None:
    """The measured loop, written as a user writes it. (Over repeat(), not
    range(): from 257 on, range() makes an int per step, which would count.)"""
    for _ in itertools.repeat(None, n):
        with pool.connection() as conn:  # noqa: F841 - as in user code
            pass


def region(pool: Any, n: int) -> None:
    os.getppid()  # callgrind: zero the counters
    cycles(pool, n)
    os.getpgrp()  # callgrind: dump them


def main(dsn: str, n: int, names: list[str]) -> list[dict]:
    labels: list[dict] = []
    for name in names:
        factory = CONTENDERS[name].factory
        for mode, autocommit in MODES.items():
            c: Any = factory(Setup(dsn, size=POOL_SIZE, autocommit=autocommit))
            try:
                c.warm()
                cycles(c.pool, 200)  # every code path taken and every cache filled
                # An empty region first: the first dump also holds what other
                # threads (the pool's workers making its connections) ran before.
                region(c.pool, 0)
                labels.append({"impl": name, "mode": mode, "cycles": 0})
                # Two (N, 2N) pairs: two estimates, which must agree.
                for k in (n, 2 * n, n, 2 * n):
                    region(c.pool, k)
                    labels.append({"impl": name, "mode": mode, "cycles": k})
            finally:
                c.close()
    return labels


if __name__ == "__main__":
    out = main(sys.argv[1], int(sys.argv[2]), sys.argv[3].split(","))
    print(json.dumps(out))
