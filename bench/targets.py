"""The issue's targets, checked against the numbers of the same run.

Ratios are paired (median over repeats of fastpool.c / psycopg_pool in the same
repeat). A target that is not met is printed as "short": the README says so."""

from __future__ import annotations

import math

from .harness import paired_ratio
from .report import Table, fmt

OURS, THEIRS, CEILING = "fastpool.c", "psycopg_pool", "dedicated"


def _ratio(tables: dict[str, Table], key: str, a: str = OURS, b: str = THEIRS) -> float:
    t = tables.get(key)
    if t is None or a not in t.results or b not in t.results:
        return math.nan
    return paired_ratio(t.results[a], t.results[b])


def _worst(tables: dict[str, Table], key: str, impl: str, field: str) -> float:
    t = tables.get(key)
    if t is None or impl not in t.results:
        return math.nan
    return max(e.get(field, math.nan) for e in t.results[impl].extra)


def _median(tables: dict[str, Table], key: str, impl: str = OURS) -> float:
    t = tables.get(key)
    if t is None or impl not in t.results:
        return math.nan
    return t.results[impl].median


def check(tables: dict[str, Table]) -> list[dict]:
    rows: list[dict] = []

    def add(what: str, value: float, goal: float, at_most: bool = False, unit: str = "x") -> None:
        if math.isnan(value):
            return  # the case did not run
        met = value <= goal if at_most else value >= goal
        rows.append({"target": what, "measured": value, "goal": goal, "unit": unit, "met": met})

    add(
        "`with pool.connection()`, 1 thread, real connections: ≥ 12x psycopg_pool",
        _ratio(tables, "pool_cycle_1t_pg"),
        12,
    )
    for mode in ("autocommit", "transaction"):
        add(
            f"instructions per `with pool.connection()` cycle, {mode} (callgrind): ≤ 2,000",
            _median(tables, f"pool_instructions_{mode}"),
            2000,
            at_most=True,
            unit=" instructions",
        )
    for threads in (16, 64):
        key = f"pool_contended_{threads}"
        add(f"contended cycle, {threads} threads: ≥ 25x psycopg_pool", _ratio(tables, key), 25)
        add(
            f"contended cycle, {threads} threads: zero starved threads",
            _worst(tables, key, OURS, "starved"),
            0,
            at_most=True,
            unit=" threads",
        )
        ours, theirs = (
            _worst(tables, key, OURS, "wait_max_ms"),
            _worst(tables, key, THEIRS, "wait_max_ms"),
        )
        add(
            f"contended cycle, {threads} threads: max wait ≤ psycopg_pool's ({fmt(theirs)} ms)",
            ours,
            theirs,
            at_most=True,
            unit=" ms",
        )
    for mode in ("autocommit", "transaction"):
        key = f"pool_select1_{mode}_10"
        add(f"SELECT 1, {mode}, threads = pool size: ≥ 2.5x psycopg_pool", _ratio(tables, key), 2.5)
        add(
            f"SELECT 1, {mode}, threads = pool size: ≥ 95% of dedicated connections",
            _ratio(tables, key, OURS, CEILING) * 100,
            95,
            unit="%",
        )
        add(
            f"SELECT 1, {mode}, 64 threads: ≥ 1.5x psycopg_pool",
            _ratio(tables, f"pool_select1_{mode}_64"),
            1.5,
        )
    for key, lifo, ceiling, who in (
        ("lifo_select1_thread", "fastpool.c lifo", CEILING, "1 thread"),
        ("lifo_select1_async", "fastpool.c async lifo", "dedicated async", "1 asyncio task"),
    ):
        add(
            f"SELECT 1, {who}, pool of 10, use_lifo=True: ≥ 95% of one dedicated connection",
            _ratio(tables, key, lifo, ceiling) * 100,
            95,
            unit="%",
        )
    return rows


def table(rows: list[dict]) -> str:
    lines = [
        "### Targets (fastpool.c against the others in this run)",
        "",
        "| target | measured | met |",
        "|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['target']} | {fmt(r['measured'])}{r['unit']} | "
            f"{'yes' if r['met'] else '**short**'} |"
        )
    return "\n".join(lines) + "\n"
