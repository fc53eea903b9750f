"""Print the results as a table, and write them as JSON and a PNG plot."""
from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from .harness import Result, paired_ratio


def machine() -> dict:
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
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=10).stdout.strip()
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
    }


def _fmt(x: float) -> str:
    if math.isnan(x):
        return "-"
    if x >= 100:
        return f"{x:,.0f}"
    return f"{x:.3g}"


def table(title: str, results: dict[str, Result], baselines: list[str]) -> str:
    """Markdown table: median/min/max and paired ratios against ``baselines``."""
    any_res = next(iter(results.values()))
    unit = any_res.unit
    cols = ["impl", f"median {unit}", "min", "max"] + [f"x vs {b}" for b in baselines if b in results]
    has_starved = any("starved" in e for r in results.values() for e in r.extra)
    if has_starved:
        cols.append("starved threads (max)")
    lines = [f"### {title}", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for name, res in results.items():
        row = [name, _fmt(res.median), _fmt(min(res.runs)), _fmt(max(res.runs))]
        row += [_fmt(paired_ratio(res, results[b])) for b in baselines if b in results]
        if has_starved:
            row.append(str(max(e.get("starved", 0) for e in res.extra)))
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    return "\n".join(lines)


def write_json(path: Path, meta: dict, cases: dict[str, dict[str, Result]]) -> None:
    data = {
        "machine": meta,
        "cases": {
            case: {
                name: {"unit": r.unit, "median": r.median, "min": min(r.runs), "max": max(r.runs),
                       "runs": r.runs, "extra": r.extra}
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

    ncols = min(3, len(cases))
    nrows = (len(cases) + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(6.5 * ncols, 4.2 * nrows), squeeze=False)
    for ax in axes.flat[len(cases):]:
        ax.set_visible(False)
    for ax, (case, results) in zip(axes.flat, cases.items()):
        names = list(results)
        meds = [results[n].median for n in names]
        lo = [results[n].median - min(results[n].runs) for n in names]
        hi = [max(results[n].runs) - results[n].median for n in names]
        colors = ["#d62728" if n.startswith("fastpool.c") else "#1f77b4" if n.startswith("fastpool") else "#7f7f7f"
                  for n in names]
        ax.barh(names, meds, xerr=[lo, hi], color=colors, capsize=3)
        unit = results[names[0]].unit
        ax.set_xlabel(unit + " (log scale)")
        ax.set_xscale("log")
        ax.invert_yaxis()
        ax.set_title(case)
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(
        f"fastpool benchmark — {meta['cpu']}, {meta['cores']} cores, Python {meta['python']}, "
        f"{meta['date']} (bars: median, whiskers: min–max)",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
