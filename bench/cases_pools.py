"""Whole pools against each other (cases 1-5 of the comparison).

Every measurement builds its pool, warms it, measures and closes it, so the
implementations can be interleaved without holding each other's server
connections; see ``contenders.py`` for what each pool does on return."""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import math
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

from .contenders import CONTENDERS, Contender, Setup, available, in_case
from .harness import Result, contended, interleaved, ns_per_op, paired_ratio
from .report import Table, fmt
from .stubconn import BenchConnection

POOL_SIZE = 10
BASELINE = "psycopg_pool"
CEILING = "dedicated"

# Which contenders run in which case: the ``cases`` column of contenders.CONTENDERS.
CYCLE = in_case("cycle")
E2E = in_case("e2e")
SPIKE = in_case("spike")


def _measured(factory: Callable[[], Contender], measure: Callable[[Contender], tuple[float, dict]]):
    """Build, warm, measure, close: one repeat of one implementation."""
    c = factory()
    try:
        c.warm()
        return measure(c)
    finally:
        c.close()


def _run(names: list[str], setup: Setup, measure, repeats: int) -> dict[str, Result]:
    factories = available(names, setup)
    impls = {n: functools.partial(_measured, f, measure) for n, f in factories.items()}
    return interleaved(impls, repeats)


def _loop(fn: Callable[[], None]) -> Callable[[int], None]:
    def cycle(n: int) -> None:
        for _ in range(n):
            fn()

    return cycle


# -- cells of the extra columns ---------------------------------------------


def _median_of(key: str) -> Callable[[Result], str]:
    def cell(res: Result) -> str:
        vals = sorted(e[key] for e in res.extra if e.get(key) is not None)
        return fmt(vals[len(vals) // 2]) if vals else "-"

    return cell


def _max_of(key: str) -> Callable[[Result], str]:
    return lambda res: fmt(max(e.get(key, 0) for e in res.extra))


def _min_of(key: str) -> Callable[[Result], str]:
    return lambda res: str(min(e.get(key, 0) for e in res.extra))


def _sum_of(key: str) -> Callable[[Result], str]:
    def cell(res: Result) -> str:
        total = sum(e.get(key, 0) for e in res.extra)
        first = next((e["first_error"] for e in res.extra if e.get("first_error")), "")
        return f"{total} ({first[:60]})" if total else "0"

    return cell


def _share_of(results: dict[str, Result], ceiling: str) -> Callable[[Result], str]:
    def cell(res: Result) -> str:
        if ceiling not in results:
            return "-"
        return f"{paired_ratio(res, results[ceiling]) * 100:.0f}%"

    return cell


WAIT_COLUMNS: dict[str, Callable[[Result], str]] = {
    "wait p50 ms": _median_of("wait_p50_ms"),
    "wait p99 ms": _median_of("wait_p99_ms"),
    "wait max ms (worst run)": _max_of("wait_max_ms"),
    "fewest ops by a thread": _min_of("min_thread_ops"),
    "starved threads (max)": _max_of("starved"),
    "errors": _sum_of("errors"),
}


CONTENDED_NOTE = (
    "Waits are timed around the checkout call, so they include time spent waiting for the GIL: "
    "a thread preempted inside that window waits its turn among all CPU-bound threads. "
    '"queued in the pool" is the pool\'s own count (fastpool and psycopg_pool keep one) of '
    "checkouts that found no idle connection; where it is 0 and the max wait is still high, "
    "the wait was the interpreter's scheduling, not the pool."
)


# -- the cases -----------------------------------------------------------------


def case_cycle_1t(args: argparse.Namespace) -> list[Table]:
    """1. One checkout + return, no query, one thread: stub and real connections."""
    tables = []
    for stub in (True, False):
        setup = Setup(None if stub else args.dsn, size=POOL_SIZE)
        names = CYCLE if stub else CYCLE + ["no pool"]
        results = _run(
            names, setup, lambda c: ns_per_op(_loop(c.cycle), args.seconds), args.repeats
        )
        kind = (
            "stub connections (the pool's own cost)"
            if stub
            else "real psycopg connections, autocommit"
        )
        tables.append(
            Table(
                f"pool_cycle_1t_{'stub' if stub else 'pg'}",
                f"1. checkout + return, no query, 1 thread, {kind} (ns/op, lower is better)",
                results,
                [BASELINE],
            )
        )
    return tables


def case_contended(args: argparse.Namespace) -> list[Table]:
    """2. Contended cycle on a pool of 10: throughput, waits, starvation."""
    setup = Setup(args.dsn, size=POOL_SIZE)
    tables = []
    for threads in args.pool_threads:

        def measure(c: Contender, t=threads) -> tuple[float, dict]:
            value, info = contended(functools.partial(c.op, False), t, args.seconds, c.thread_setup)
            info["queued"] = c.queued_since_warm()
            return value, info

        tables.append(
            Table(
                f"pool_contended_{threads}",
                f"2. contended checkout + return (no query), {threads} threads on a pool of "
                f"{POOL_SIZE}, real connections (ops/s, higher is better)",
                _run(CYCLE, setup, measure, args.repeats),
                [BASELINE],
                {**WAIT_COLUMNS, "queued in the pool (median)": _median_of("queued")},
                note=CONTENDED_NOTE,
            )
        )
    return tables


def case_e2e(args: argparse.Namespace) -> list[Table]:
    """3. ``SELECT 1`` end to end, autocommit and transaction mode."""
    tables = []
    for autocommit in (True, False):
        mode = "autocommit" if autocommit else "transaction"
        setup = Setup(args.dsn, size=POOL_SIZE, autocommit=autocommit)
        for threads in args.e2e_threads:

            def measure(c: Contender, t=threads) -> tuple[float, dict]:
                return contended(functools.partial(c.op, True), t, args.seconds, c.thread_setup)

            results = _run(E2E, setup, measure, args.repeats)
            columns = {"% of dedicated": _share_of(results, CEILING), **WAIT_COLUMNS}
            tables.append(
                Table(
                    f"pool_select1_{mode}_{threads}",
                    f"3. SELECT 1 end to end, {mode}, {threads} threads, pool of {POOL_SIZE} "
                    f"(dedicated: one connection per thread, no pool) (ops/s, higher is better)",
                    results,
                    [BASELINE],
                    columns,
                )
            )
    return tables


def spike_once(c: Contender, callers: int, hold: float) -> tuple[float, dict]:
    """``callers`` threads ask at once; each holds its connection ``hold`` s.
    Returns the time until the last caller got a connection."""
    barrier = threading.Barrier(callers)
    waited = [math.nan] * callers
    errors: list[str] = []
    made_before = BenchConnection.connects

    def caller(i: int) -> None:
        barrier.wait()
        t0 = time.perf_counter()
        try:
            conn = c.get()
        except Exception as exc:  # noqa: BLE001 - reported in the table
            errors.append(f"{type(exc).__name__}: {exc}")
            return
        waited[i] = time.perf_counter() - t0
        time.sleep(hold)
        c.put(conn)

    ts = [threading.Thread(target=caller, args=(i,), daemon=True) for i in range(callers)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    served = sorted(w for w in waited if not math.isnan(w))
    return (max(served) * 1e3 if served else math.nan), {
        "unit": "ms to serve all",
        "p50_ms": served[len(served) // 2] * 1e3 if served else math.nan,
        "created": BenchConnection.connects - made_before,
        "errors": len(errors),
        "first_error": errors[0] if errors else "",
    }


def case_spike(args: argparse.Namespace) -> list[Table]:
    """4. 50 callers at once on 5 idle connections, slow connect."""
    setup = Setup(None, size=args.spike_max, min_size=args.spike_idle)
    BenchConnection.connect_delay = args.spike_connect
    try:
        results = _run(
            SPIKE, setup, lambda c: spike_once(c, args.spike_callers, args.spike_hold), args.repeats
        )
    finally:
        BenchConnection.connect_delay = 0.0
    return [
        Table(
            "pool_spike",
            f"4. spike: {args.spike_callers} callers at once, {args.spike_idle} idle connections, "
            f"max {args.spike_max}, connect takes {args.spike_connect * 1e3:.0f} ms, each caller "
            f"holds its connection {args.spike_hold * 1e3:.0f} ms (stub connections) "
            "(ms until the last caller is served, lower is better)",
            results,
            [BASELINE],
            {
                "p50 ms to a connection": _median_of("p50_ms"),
                "connections made (median)": _median_of("created"),
                "errors": _sum_of("errors"),
            },
        )
    ]


# The bare drivers' rows (the same connections held in a list) come first in
# each driver's group: a pool's own cost is its row minus its driver's.
_PSYCOPG2_POOLS = [n for n in in_case("memory") if CONTENDERS[n].cls.requires == "psycopg2"]
MEMORY = [
    "psycopg (no pool)",
    *(n for n in in_case("memory") if n not in _PSYCOPG2_POOLS),
    "psycopg2 (no pool)",
    *_PSYCOPG2_POOLS,
]
DRIVER_OF = dict.fromkeys([*_PSYCOPG2_POOLS, "psycopg2 (no pool)"], "psycopg2 (no pool)")


def _probe(name: str, n: int, dsn: str) -> float:
    """RSS growth in KiB of a fresh interpreter holding ``n`` warm connections."""
    # One malloc arena: otherwise connections made in a pool's worker threads land in
    # a fresh per-thread arena while bare connections reuse the main heap's free space,
    # and the comparison measures glibc, not the pools.
    env = dict(os.environ, MALLOC_ARENA_MAX="1")
    proc = subprocess.run(
        [sys.executable, "-m", "bench.memory_probe", name, str(n), dsn],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=Path(__file__).resolve().parents[1],
    )
    if proc.returncode != 0:
        raise RuntimeError(f"memory probe for {name} failed:\n{proc.stderr}")
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    return (data["after"] - data["before"]) / 1024


def _marginal(name: str, small: int, large: int, dsn: str) -> tuple[float, dict]:
    """KiB per extra connection between a pool of ``small`` and one of ``large``
    (the slope, free of fixed costs such as worker threads)."""
    grow_small, grow_large = _probe(name, small, dsn), _probe(name, large, dsn)
    per_conn = (grow_large - grow_small) / (large - small)
    return per_conn, {
        "unit": "KiB per connection",
        f"rss_growth_kib_{small}": grow_small,
        f"rss_growth_kib_{large}": grow_large,
    }


def case_memory(args: argparse.Namespace) -> list[Table]:
    """5. Client RSS per pooled connection, each pool in a fresh interpreter."""
    small, large = args.memory_conns
    impls = {}
    for name in MEMORY:
        if name.endswith("(no pool)"):
            if importlib.util.find_spec(name.split()[0]) is None:
                continue
        elif name not in available([name], Setup(args.dsn)):
            continue
        impls[name] = functools.partial(_marginal, name, small, large, args.dsn)
    results = interleaved(impls, args.repeats)

    def overhead(res: Result) -> str:
        driver = results.get(DRIVER_OF.get(res.impl, "psycopg (no pool)"))
        if driver is None or res.impl.endswith("(no pool)"):
            return "-"
        return f"{res.median - driver.median:+.1f}"

    return [
        Table(
            "pool_memory",
            f"5. client RSS per connection: growth from {small} to {large} warm connections, "
            "each pool in a fresh interpreter (KiB per connection, lower is better)",
            results,
            [],
            {
                "pool's own KiB/conn (minus the bare driver)": overhead,
                f"RSS growth KiB with {small} conns": _median_of(f"rss_growth_kib_{small}"),
                f"RSS growth KiB with {large} conns": _median_of(f"rss_growth_kib_{large}"),
            },
            note="The bare-driver rows hold the same connections in a list; the difference is what "
            "the pool adds per connection. The per-connection figure is the slope between the "
            "two sizes, so fixed costs (worker threads, structures sized at creation) and the "
            "first connections that fit in already-free heap cancel out; the growth columns "
            "show both. RSS is read from /proc after gc, with MALLOC_ARENA_MAX=1 so every pool "
            "allocates from the same heap; expect a KiB or two of noise per connection.",
        )
    ]
