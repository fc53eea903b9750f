"""The benchmark comparison: ``python -m bench [--quick] [--cases a,b]``.

Each case is a function returning a list of ``(key, title, results, baselines)``
tables; add new cases (whole pools against each other, real queries) to ``CASES``."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

from . import cases_core, report
from .harness import interleaved, ns_per_op, threaded_throughput


def case_core_cycle_1t(args: argparse.Namespace):
    impls = {
        name: (lambda c=cycle: ns_per_op(c, args.seconds))
        for name, cycle in cases_core.single_thread_cycles().items()
    }
    results = interleaved(impls, args.repeats)
    return [("core_ns_per_op", "core: acquire+release, 1 thread (ns/op, lower is better)", results,
             ["fastpool.python", "collections.deque"])]


def case_core_cycle_threads(args: argparse.Namespace):
    tables = []
    for threads in args.threads:
        cycles = cases_core.threaded_cycles()
        impls = {
            name: (lambda c=cycle, t=threads: threaded_throughput(c, t, args.seconds))
            for name, cycle in cycles.items()
        }
        tables.append((
            f"core_threads_{threads}",
            f"core: acquire+release from {threads} thread{'s' if threads > 1 else ''} (ops/s, higher is better)",
            interleaved(impls, args.repeats),
            ["fastpool.python", "collections.deque"],
        ))
    return tables


CASES: dict[str, Callable] = {
    "core_cycle_1t": case_core_cycle_1t,
    "core_cycle_threads": case_core_cycle_threads,
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--quick", action="store_true", help="seconds-long smoke run (CI)")
    p.add_argument("--repeats", type=int, help="repeats per case (default 7, quick 2)")
    p.add_argument("--seconds", type=float, help="seconds per measurement (default 0.5, quick 0.05)")
    p.add_argument("--threads", help="comma-separated thread counts (default 1,4,16,64)")
    p.add_argument("--cases", help=f"comma-separated subset of: {', '.join(CASES)}")
    p.add_argument("--out", type=Path, default=None,
                   help="directory for latest.json and latest.png (default bench/results, "
                        "or bench/results/quick with --quick, so a smoke run never replaces "
                        "the published full results)")
    args = p.parse_args(argv)
    if args.out is None:
        args.out = Path(__file__).parent / "results" / ("quick" if args.quick else "")
    args.repeats = args.repeats or (2 if args.quick else 7)
    args.seconds = args.seconds or (0.05 if args.quick else 0.5)
    threads = args.threads or ("1,8" if args.quick else "1,4,16,64")
    args.threads = [int(t) for t in threads.split(",")]
    names = args.cases.split(",") if args.cases else list(CASES)
    unknown = [n for n in names if n not in CASES]
    if unknown:
        p.error(f"unknown case(s) {unknown}; choose from {list(CASES)}")
    if args.repeats < 1 or args.seconds <= 0 or min(args.threads) < 1:
        p.error("--repeats, --seconds and --threads must be positive")
    args.cases = names
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    meta = report.machine()
    print(f"# fastpool benchmark ({'quick' if args.quick else 'full'})")
    print(f"{meta['date']} · {meta['cpu']} · {meta['cores']} cores · Python {meta['python']} · "
          f"fastpool {meta['fastpool_version']} ({meta['fastpool_impl']} core) {meta['commit']}")
    print(f"{args.repeats} repeats, implementations interleaved; paired ratios are medians of "
          "per-repeat ratios\n")
    all_results = {}
    for name in args.cases:
        for key, title, results, baselines in CASES[name](args):
            all_results[key] = results
            print(report.table(title, results, baselines))
            sys.stdout.flush()
    args.out.mkdir(parents=True, exist_ok=True)
    report.write_json(args.out / "latest.json", meta, all_results)
    report.write_plot(args.out / "latest.png", meta, all_results)
    print(f"wrote {args.out / 'latest.json'} and {args.out / 'latest.png'}")
    return 0
