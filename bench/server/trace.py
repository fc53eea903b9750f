"""Per-request times inside the server: how long a request waited for a
connection and how long it then held it, so a latency gap between two pools
in wrk's figures can be split into queueing for a connection and using one.

A server worker records three ``time.monotonic()`` readings per request (before
the checkout, with the connection in hand, after it went back) and writes them
to ``<dir>/trace-<pid>.bin`` when it exits. ``time.monotonic()`` is the
system-wide CLOCK_MONOTONIC on Linux, so the runner keeps the requests that
started inside the measured wrk run, whichever process served them. Each
record costs the request two clock readings and one append (well under a
microsecond), the same for every pool traced."""

from __future__ import annotations

import math
import os
from array import array
from pathlib import Path
from time import monotonic

__all__ = ["RequestTrace", "monotonic", "summarize"]

_PREFIX = "trace-"


class RequestTrace:
    """The requests one server worker served. ``directory`` '' traces nothing."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self._times = array("d")

    def record(self, asked: float, got: float, returned: float) -> None:
        """One request: when it asked for a connection, got it, gave it back."""
        # One C call: threads of one worker append whole records (the GIL
        # makes array.extend atomic on the interpreters this benchmark runs).
        self._times.extend((asked, got, returned))

    def write(self) -> None:
        """Write what was recorded (at the worker's exit)."""
        if not self.directory:
            return
        path = Path(self.directory) / f"{_PREFIX}{os.getpid()}.bin"
        with open(path, "wb") as f:
            self._times.tofile(f)


def _percentile(sorted_values: list[float], q: float) -> float:
    """The nearest-rank ``q`` percentile (0 < q <= 100) of sorted values."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def summarize(directory: str | Path, start: float, end: float) -> dict[str, float]:
    """Percentiles (ms) of the connection wait and hold of the requests that
    asked for a connection between ``start`` and ``end`` (monotonic seconds),
    over every worker's file in ``directory``; {} if none was written."""
    waits: list[float] = []
    holds: list[float] = []
    for path in sorted(Path(directory).glob(f"{_PREFIX}*.bin")):
        times = array("d")
        times.frombytes(path.read_bytes())
        for i in range(0, len(times) - 2, 3):
            asked, got, returned = times[i], times[i + 1], times[i + 2]
            if start <= asked <= end:
                waits.append((got - asked) * 1000)
                holds.append((returned - got) * 1000)
    if not waits:
        return {}
    waits.sort()
    holds.sort()
    return {
        "traced_requests": float(len(waits)),
        "wait_p50_ms": _percentile(waits, 50),
        "wait_p99_ms": _percentile(waits, 99),
        "hold_p50_ms": _percentile(holds, 50),
        "hold_p99_ms": _percentile(holds, 99),
    }
