"""Timing that a sceptical reader can trust on a shared, noisy 2-core machine:
implementations are interleaved (order rotated every repeat), each case is
repeated, and we report median, min and max plus per-repeat paired ratios."""
from __future__ import annotations

import statistics
import threading
import time
from dataclasses import dataclass, field
from typing import Callable


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
        return statistics.median(self.runs)


def interleaved(impls: dict[str, Callable[[], tuple[float, dict]]], repeats: int) -> dict[str, Result]:
    """Run each ``impls[name]()`` once per repeat, rotating the order."""
    names = list(impls)
    results: dict[str, Result] = {}
    for r in range(repeats):
        order = names[r % len(names):] + names[: r % len(names)]
        for name in order:
            value, info = impls[name]()
            res = results.setdefault(name, Result(name, info.pop("unit"), info.pop("higher_is_better", False)))
            res.runs.append(value)
            res.extra.append(info)
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
    n = 1000
    while True:  # calibrate
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


def threaded_throughput(
    worker_cycle: Callable[[], bool], threads: int, seconds: float
) -> tuple[float, dict]:
    """``threads`` threads started on a barrier call ``worker_cycle()`` (True = one
    operation done) until ``seconds`` pass. Returns ops/s and fairness figures:
    a thread that completed nothing is "starved"."""
    stop = threading.Event()
    barrier = threading.Barrier(threads + 1)
    counts = [0] * threads

    def run(i: int) -> None:
        barrier.wait()
        done = 0
        while not stop.is_set():
            if worker_cycle():
                done += 1
        counts[i] = done

    ts = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(threads)]
    for t in ts:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for t in ts:
        t.join()
    elapsed = time.perf_counter() - t0
    total = sum(counts)
    return total / elapsed, {
        "unit": "ops/s",
        "higher_is_better": True,
        "threads": threads,
        "min_thread_ops": min(counts),
        "starved": sum(1 for c in counts if c == 0),
    }
