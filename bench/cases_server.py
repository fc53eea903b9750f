"""7. The pools inside a real HTTP server (the rest of the comparison times them
in-process, where a checkout's microsecond is all there is to see).

For each server set-up (gunicorn's gthread worker with so many workers and
threads, or uvicorn on asyncio) and each endpoint (``SELECT 1``; a short read
transaction on a small table; no database, the server's own ceiling), every
contender gets a fresh server per run, health-checked and warmed up, loaded by
wrk; runs are interleaved (order rotated per repeat) and repeated. A run with
any error, status >= 400, traceback in the server's log, database session over
the expected count or left behind, or unclean stop is *flagged*: shown in the
table, left out of every median and ratio. With several workers, a run in which
one worker did nearly all the work is re-run on a fresh server, and flagged if
it stays so (runner.run_balanced). See bench/server/ for the parts."""

from __future__ import annotations

import argparse
import functools
import importlib.util
import math
import os
import statistics
from typing import Any, Callable

from .harness import Result, interleaved
from .progress import Progress
from .report import Table, fmt
from .server import async_pools, runner, sessions, sync_pools, wrk

BASELINE = "psycopg_pool"
PSYCOPG2 = "psycopg2 pool+sem"
CEILING = "dedicated"
NODB = "no database"

ENDPOINT_TEXT = {
    "select1": "GET /select1 (`SELECT 1`, autocommit)",
    "txn": "GET /txn (a read transaction: a row by key and a 10-row aggregate, then commit)",
    "nodb": "GET /nodb (no database: the server's own ceiling)",
}

CONTENDERS_NOTE = (
    "Contenders as a web app uses them: fastpool and psycopg_pool `with pool.connection()` "
    "(`async with` under uvicorn); SQLAlchemy `engine.connect()` on the psycopg 3 dialect with "
    "`poolclass=QueuePool` or fastpool's `FastQueuePool` (under uvicorn the asyncio-adapted "
    "pools); psycopg2's `ThreadedConnectionPool` (behind a semaphore, since it fails rather "
    "than waits when exhausted) and fastpool's drop-in for it, on the psycopg2 driver; "
    "dedicated: one connection per server thread (per request in flight under uvicorn), no "
    "pool — the ceiling. Pools hold the pool size per worker, no overflow."
)


def _available(names: list[str], is_async: bool) -> list[str]:
    registry: dict[str, tuple[Any, str]] = (
        async_pools.CONTENDERS if is_async else sync_pools.CONTENDERS
    )
    out = []
    for name in names:
        if name not in registry:
            continue  # e.g. psycopg2's pools under uvicorn: no asyncio version
        needs = registry[name][1]
        if needs and importlib.util.find_spec(needs) is None:
            print(f"note: {name} skipped in the server case: {needs} is not installed")
            continue
        if is_async and name == "sqlalchemy FastQueuePool":
            if not async_pools.has_async_fast_queue_pool():
                continue  # this fastpool has no AsyncAdaptedFastQueuePool yet
        out.append(name)
    return out


def contenders_for(server: runner.ServerSetup, endpoint: str, wanted: list[str]) -> list[str]:
    if endpoint == "nodb":
        return [NODB]
    return _available(wanted, server.is_async)


# -- flagged runs, paired ratios and the table's cells ---------------------------


def _clean(raw: Result) -> Result:
    """The same runs with the flagged ones left out of ``runs`` (so of the median,
    min and max); ``extra`` keeps every run, with its repeat and value."""
    res = Result(raw.impl, raw.unit, raw.higher_is_better)
    for repeat, (value, info) in enumerate(zip(raw.runs, raw.extra)):
        res.extra.append({**info, "repeat": repeat, "value": value})
        if not info["flagged"]:
            res.runs.append(value)
    return res


def _clean_by_repeat(res: Result, key: str = "value") -> dict[int, float]:
    return {e["repeat"]: e[key] for e in res.extra if not e["flagged"] and key in e}


def paired(a: Result, b: Result, key: str = "value") -> float:
    """Median over the repeats where neither run is flagged of a / b."""
    xs, ys = _clean_by_repeat(a, key), _clean_by_repeat(b, key)
    ratios = [xs[r] / ys[r] for r in xs if r in ys and ys[r]]
    return statistics.median(ratios) if ratios else math.nan


def _median_cell(key: str) -> Callable[[Result], str]:
    def cell(res: Result) -> str:
        vals = list(_clean_by_repeat(res, key).values())
        return fmt(statistics.median(vals)) if vals else "-"

    return cell


def _worst_cell(key: str) -> Callable[[Result], str]:
    def cell(res: Result) -> str:
        vals = list(_clean_by_repeat(res, key).values())
        return fmt(max(vals)) if vals else "-"

    return cell


def _ratio_cell(
    results: dict[str, Result], other: str, percent: bool = False
) -> Callable[[Result], str]:
    def cell(res: Result) -> str:
        if other not in results:
            return "-"
        r = paired(res, results[other])
        if math.isnan(r):
            return "-"
        return f"{r * 100:.0f}%" if percent else fmt(r)

    return cell


def _sessions_cell(res: Result) -> str:
    seen = max((e.get("sessions_max", 0) for e in res.extra), default=0)
    return f"{seen} (≤ {res.extra[0]['sessions_allowed']})" if res.extra else "-"


def _flagged_cell(res: Result) -> str:
    bad = [e for e in res.extra if e["flagged"]]
    if not bad:
        return "0"
    return f"**{len(bad)}/{len(res.extra)}**: {'; '.join(bad[0]['flagged'])[:120]}"


def _busiest_cell(res: Result) -> str:
    shares = [e.get("busiest_process_cpu_share", math.nan) for e in res.extra]
    return " ".join("-" if math.isnan(v) else f"{v * 100:.0f}%" for v in shares) or "-"


def _reruns_cell(res: Result) -> str:
    shares = [share for e in res.extra for share in e.get("unbalanced_reruns", [])]
    if not shares:
        return "0"
    return f"{len(shares)} ({' '.join(f'{v * 100:.0f}%' for v in shares)})"


def _balance_note(results: dict[str, Result]) -> str:
    """How many runs were re-run, or flagged, for one worker doing the work."""
    runs = [e for res in results.values() for e in res.extra]
    rerun = [e for e in runs if e.get("unbalanced_reruns")]
    attempts = sum(len(e["unbalanced_reruns"]) for e in rerun)
    flagged = sum(any(r.startswith("unbalanced") for r in e["flagged"]) for e in runs)
    limit = f"{runner.UNBALANCED_SHARE:.0%}"
    return (
        f"Worker balance: a run whose busiest worker used more than {limit} of the server's "
        f"CPU is re-run on a fresh server (at most {runner.BALANCE_RERUNS} times) and flagged "
        f"if it stays so; here {len(rerun)} of {len(runs)} runs were re-run ({attempts} "
        f"attempts set aside, in no figure), {flagged} flagged."
    )


def _columns(
    results: dict[str, Result], nodb: bool, workers: int = 1
) -> dict[str, Callable[[Result], str]]:
    cols: dict[str, Callable[[Result], str]] = {}
    if not nodb:
        cols[f"x vs {BASELINE}"] = _ratio_cell(results, BASELINE)
        if PSYCOPG2 in results:
            cols[f"x vs {PSYCOPG2}"] = _ratio_cell(results, PSYCOPG2)
        cols["% of dedicated"] = _ratio_cell(results, CEILING, percent=True)
    cols["p50 ms"] = _median_cell("p50_ms")
    cols["p99 ms"] = _median_cell("p99_ms")
    if not nodb:
        cols["p99 ÷ psycopg_pool's"] = lambda res: (
            fmt(paired(res, results[BASELINE], "p99_ms")) if BASELINE in results else "-"
        )
    cols["max ms (worst run)"] = _worst_cell("max_ms")
    if any("wait_p99_ms" in e for res in results.values() for e in res.extra):
        # measured inside the server (bench/server/trace.py), psycopg pools only
        cols["in server: conn wait p99 ms"] = _median_cell("wait_p99_ms")
        cols["conn hold p50 / p99 ms"] = lambda res: (
            f"{_median_cell('hold_p50_ms')(res)} / {_median_cell('hold_p99_ms')(res)}"
        )
    cols["server CPU µs/req"] = _median_cell("cpu_us_per_req")
    if workers > 1:
        # one run per repeat: the worker holding most wrk connections decides
        # its throughput (see runner.run_once)
        cols["busiest worker's CPU share, by run"] = _busiest_cell
        cols["unbalanced attempts re-run (their share)"] = _reruns_cell
    cols["DB sessions max (allowed)"] = _sessions_cell
    cols["flagged runs"] = _flagged_cell
    return cols


# -- the case --------------------------------------------------------------------


def _runs_planned(plan: list[tuple[runner.ServerSetup, str, list[str]]], repeats: int) -> int:
    return sum(len(names) for _, _, names in plan) * repeats


def case_server(args: argparse.Namespace) -> list[Table]:
    wrk.wrk_path()  # no wrk: stop here with how to install it, not once per run
    plan = []
    for server in args.server_setups:
        for endpoint in args.server_endpoints:
            names = contenders_for(server, endpoint, args.server_contenders)
            if names:
                plan.append((server, endpoint, names))
    table_name = sessions.create_table(args.dsn)
    tables = []
    try:
        with Progress(_runs_planned(plan, args.server_repeats)) as bar:
            for server, endpoint, names in plan:
                impls = {
                    name: functools.partial(
                        runner.run_balanced,
                        runner.Run(
                            server=server,
                            endpoint=endpoint,
                            contender=name,
                            dsn=args.dsn,
                            table=table_name,
                            pool_size=args.server_pool_size,
                            seconds=args.server_seconds,
                            warmup=args.server_warmup,
                            connections=args.server_connections,
                        ),
                    )
                    for name in names
                }
                raw = interleaved(impls, args.server_repeats, bar, f"{server.key} /{endpoint}")
                results = {name: _clean(res) for name, res in raw.items()}
                tables.append(_table(args, server, endpoint, results))
    finally:
        sessions.drop_table(args.dsn, table_name)
    return tables


def _table(
    args: argparse.Namespace,
    server: runner.ServerSetup,
    endpoint: str,
    results: dict[str, Result],
) -> Table:
    nodb = endpoint == "nodb"
    pool = "" if nodb else f", pool of {args.server_pool_size} per worker"
    return Table(
        f"server_{server.key}_{endpoint}",
        f"7. server: {server.describe()}, {ENDPOINT_TEXT[endpoint]}{pool}; wrk "
        f"{args.server_connections} connections × {args.server_seconds} s "
        "(requests/s, higher is better)",
        results,
        [],  # the ratio columns pair clean runs only: see _columns
        _columns(results, nodb, server.workers),
        note=_note(results, nodb, server.workers),
    )


def _note(results: dict[str, Result], nodb: bool, workers: int = 1) -> str:
    loads = [e["loadavg_1min"] for r in results.values() for e in r.extra if "loadavg_1min" in e]
    load = (
        f"Machine load (1-minute average) at the end of these runs: {min(loads):.1f}–"
        f"{max(loads):.1f} on {os.cpu_count()} cores, this run's own server, wrk and "
        "PostgreSQL included."
        if loads
        else ""
    )
    balance = _balance_note(results) + " " if workers > 1 else ""
    if nodb:
        return (balance + load).strip()
    return (
        "Ratios are medians of per-repeat ratios over the repeats where neither run is "
        "flagged; flagged runs are left out of every figure but the last "
        f"{'four' if workers > 1 else 'two'} columns. " + balance + load
    ).strip()
