"""Timing that a sceptical reader can trust on a shared, noisy 2-core machine:
implementations are interleaved (order rotated every repeat), each case is
repeated, and we report median, min and max plus per-repeat paired ratios."""

from __future__ import annotations

import math
import statistics
import threading
import time
from array import array
from dataclasses import dataclass, field
from typing import Callable

from .progress import Progress


@dataclass
class Result:
    """All repeats of one implementation in one case (lower is better unless ``higher_is_better``)."""

    impl: str
    unit: str
    higher_is_better: bool = False
    runs: list[float] = field(default_factory=list)
    extra: list[dict] = field(default_factory=list)

    @property
    def median(self) -> float:
        # no runs: every run of it was flagged (the server case leaves those out)
        return statistics.median(self.runs) if self.runs else math.nan

    @property
    def lowest(self) -> float:
        return min(self.runs) if self.runs else math.nan

    @property
    def highest(self) -> float:
        return max(self.runs) if self.runs else math.nan


def interleaved(
    impls: dict[str, Callable[[], tuple[float, dict]]],
    repeats: int,
    progress: Progress | None = None,
    label: str = "",
) -> dict[str, Result]:
    """Run each ``impls[name]()`` once per repeat, rotating the order. Progress
    is shown on ``progress`` (a bar of its own if None), each run named
    ``label · name · repeat r/n``."""
    names = list(impls)
    results: dict[str, Result] = {}
    own = progress is None
    bar = Progress(len(names) * repeats) if progress is None else progress
    try:
        for r in range(repeats):
            order = names[r % len(names) :] + names[: r % len(names)]
            for name in order:
                bar.start(f"{label + ' · ' if label else ''}{name} · repeat {r + 1}/{repeats}")
                value, info = impls[name]()
                bar.done()
                res = results.setdefault(
                    name, Result(name, info.pop("unit"), info.pop("higher_is_better", False))
                )
                res.runs.append(value)
                res.extra.append(info)
    finally:
        if own:
            bar.close()
    return {n: results[n] for n in names}


def paired_ratio(a: Result, b: Result) -> float:
    """Median over repeats of how many times better ``a`` is than ``b`` (same repeat)."""
    if a.higher_is_better:
        ratios = [x / y for x, y in zip(a.runs, b.runs) if y]
    else:
        ratios = [y / x for x, y in zip(a.runs, b.runs) if x]
    return statistics.median(ratios) if ratios else float("nan")


def ns_per_op(cycle: Callable[[int], None], seconds: float) -> tuple[float, dict]:
    """Time ``cycle(n)`` (n operations) for about ``seconds``; ns per operation."""
    n = 1
    while True:  # calibrate: from 1, so a 2 ms connect is not run a thousand times
        t0 = time.perf_counter()
        cycle(n)
        dt = time.perf_counter() - t0
        if dt > 0.02:
            break
        n *= 4
    n = max(1, int(n * seconds / dt))
    t0 = time.perf_counter()
    cycle(n)
    dt = time.perf_counter() - t0
    return dt / n * 1e9, {"unit": "ns/op", "ops": n}


def _run_for(
    run: Callable[[int, threading.Barrier, threading.Event], None], threads: int, seconds: float
) -> float:
    """Start ``run(i, start, stop)`` in ``threads`` threads; they wait on
    ``start`` (so set-up is not timed), run until ``stop`` is set ``seconds``
    later, and are joined. Returns the measured elapsed time."""
    start, stop = threading.Barrier(threads + 1), threading.Event()
    ts = [threading.Thread(target=run, args=(i, start, stop), daemon=True) for i in range(threads)]
    for t in ts:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for t in ts:
        t.join()
    return time.perf_counter() - t0


def threaded_throughput(
    worker_cycle: Callable[[], bool], threads: int, seconds: float
) -> tuple[float, dict]:
    """``threads`` threads started on a barrier call ``worker_cycle()`` (True = one
    operation done) until ``seconds`` pass. Returns ops/s and fairness figures:
    a thread that completed nothing is "starved"."""
    counts = [0] * threads

    def run(i: int, start: threading.Barrier, stop: threading.Event) -> None:
        start.wait()
        done = 0
        while not stop.is_set():
            if worker_cycle():
                done += 1
        counts[i] = done

    elapsed = _run_for(run, threads, seconds)
    total = sum(counts)
    return total / elapsed, {
        "unit": "ops/s",
        "higher_is_better": True,
        "threads": threads,
        "min_thread_ops": min(counts),
        "starved": sum(1 for c in counts if c == 0),
    }


def contended(
    op: Callable[[], float],
    threads: int,
    seconds: float,
    thread_setup: Callable[[], None] | None = None,
) -> tuple[float, dict]:
    """``threads`` threads started on a barrier call ``op()`` (one checkout and
    return; it returns how long the checkout waited) until ``seconds`` pass.

    Returns ops/s and the figures that show fairness: wait percentiles over
    every checkout, the fewest operations any thread completed, and the number
    of "starved" threads that completed none. Exceptions are counted, not
    raised, so a pool that fails under load shows it in the table."""
    import numpy as np

    counts = [0] * threads
    waits: list[array] = [array("d")] * threads
    errors: list[str] = []

    def run(i: int, start: threading.Barrier, stop: threading.Event) -> None:
        if thread_setup is not None:
            thread_setup()
        mine = array("d")
        record, done = mine.append, stop.is_set
        start.wait()
        n = 0
        while not done():
            try:
                record(op())
            except Exception as exc:  # noqa: BLE001 - reported in the table
                errors.append(f"{type(exc).__name__}: {exc}")
                continue
            n += 1
        counts[i], waits[i] = n, mine

    elapsed = _run_for(run, threads, seconds)
    all_waits = (
        np.concatenate([np.frombuffer(w, dtype=np.float64) for w in waits if len(w)])
        if any(counts)
        else np.zeros(1)
    )
    p50, p99 = np.percentile(all_waits, [50, 99])
    return sum(counts) / elapsed, {
        "unit": "ops/s",
        "higher_is_better": True,
        "threads": threads,
        "wait_p50_ms": float(p50) * 1e3,
        "wait_p99_ms": float(p99) * 1e3,
        "wait_max_ms": float(all_waits.max()) * 1e3,
        "min_thread_ops": min(counts),
        "starved": sum(1 for c in counts if c == 0),
        "errors": len(errors),
        "first_error": errors[0] if errors else "",
    }
