"""Print the results as a table, and write them as JSON and a PNG plot."""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .harness import Result, paired_ratio


def _versions(dsn: str | None) -> dict[str, str]:
    from importlib import metadata

    out = {}
    for dist in (
        "psycopg",
        "psycopg-pool",
        "SQLAlchemy",
        "psycopg2-binary",
        "DBUtils",
        "asyncpg",
        "uvloop",
        "gunicorn",
        "uvicorn",
        "httptools",
        "Cython",
    ):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    if dsn:
        try:
            import psycopg

            with psycopg.connect(dsn, autocommit=True) as conn:
                out["PostgreSQL"] = str(conn.execute("SHOW server_version").fetchone()[0]).split()[
                    0
                ]
        except Exception as exc:  # noqa: BLE001 - informational only
            out["PostgreSQL"] = f"unknown ({type(exc).__name__})"
    return out


def machine(dsn: str | None = None) -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import fastpool

    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except OSError:
        commit = ""
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "fastpool_impl": fastpool.__impl__,
        "fastpool_version": fastpool.__version__,
        "commit": commit,
        "versions": _versions(dsn),
    }


def fmt(x: float) -> str:
    if math.isnan(x):
        return "-"
    if x >= 100:
        return f"{x:,.0f}"
    return f"{x:.3g}"


@dataclass
class Table:
    """One printed table: every implementation's repeats for one case."""

    key: str
    title: str
    results: dict[str, Result]
    baselines: list[str] = field(default_factory=list)  # "x vs <name>" columns
    #: extra columns: header -> function of a Result giving the cell text
    columns: dict[str, Callable[[Result], str]] = field(default_factory=dict)
    note: str = ""


def _starved(res: Result) -> str:
    return str(max(e.get("starved", 0) for e in res.extra))


def table(t: Table) -> str:
    """Markdown: median/min/max, paired ratios against the baselines, extra columns."""
    results = t.results
    unit = next(iter(results.values())).unit
    baselines = [b for b in t.baselines if b in results]
    columns = dict(t.columns)
    if "starved threads (max)" not in columns and any(
        "starved" in e for r in results.values() for e in r.extra
    ):
        columns["starved threads (max)"] = _starved
    cols = (
        ["impl", f"median {unit}", "min", "max"] + [f"x vs {b}" for b in baselines] + list(columns)
    )
    lines = [f"### {t.title}", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for name, res in results.items():
        row = [name, fmt(res.median), fmt(res.lowest), fmt(res.highest)]
        row += [fmt(paired_ratio(res, results[b])) for b in baselines]
        row += [cell(res) for cell in columns.values()]
        lines.append("| " + " | ".join(row) + " |")
    if t.note:
        lines += ["", t.note]
    lines.append("")
    return "\n".join(lines)


def write_json(path: Path, meta: dict, cases: dict[str, dict[str, Result]], **more) -> None:
    data = {
        "machine": meta,
        **more,
        "cases": {
            case: {
                name: {
                    "unit": r.unit,
                    "median": r.median,
                    "min": r.lowest,
                    "max": r.highest,
                    "runs": r.runs,
                    "extra": r.extra,
                }
                for name, r in results.items()
            }
            for case, results in cases.items()
        },
    }
    path.write_text(json.dumps(data, indent=1))


def write_plot(path: Path, meta: dict, cases: dict[str, dict[str, Result]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    ncols = min(3, len(cases))
    nrows = (len(cases) + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(6.5 * ncols, 4.2 * nrows), squeeze=False)
    for ax in axes.flat[len(cases) :]:
        ax.set_visible(False)
    for ax, (case, results) in zip(axes.flat, cases.items()):
        names = list(results)
        # an implementation with no run (all flagged) gets an empty bar
        meds = [results[n].median if results[n].runs else 0.0 for n in names]
        lo = [results[n].median - results[n].lowest if results[n].runs else 0.0 for n in names]
        hi = [results[n].highest - results[n].median if results[n].runs else 0.0 for n in names]
        colors = [
            "#d62728"
            if n.startswith("fastpool.c")
            else "#1f77b4"
            if n.startswith("fastpool")
            else "#2ca02c"
            if n.startswith("dedicated")
            else "#7f7f7f"
            for n in names
        ]
        ax.barh(names, meds, xerr=[lo, hi], color=colors, capsize=3)
        unit = results[names[0]].unit
        positive = [m for m in meds if m > 0]
        if positive and max(positive) / min(positive) > 20:  # wide range: log scale
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
            unit += " (log scale)"
        ax.set_xlabel(unit)
        ax.invert_yaxis()
        ax.set_title(case)
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(
        f"fastpool benchmark — {meta['cpu']}, {meta['cores']} cores, Python {meta['python']}, "
        f"{meta['date']} (bars: median, whiskers: min–max)",
        fontsize=9,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.985))  # room for the suptitle
    fig.savefig(path, dpi=110)
    plt.close(fig)
