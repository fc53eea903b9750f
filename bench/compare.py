"""The benchmark comparison: ``python -m bench [--quick] [--cases a,b]``.

Each case is a function of the parsed arguments returning ``report.Table``s;
all implementations of a table are interleaved and repeated (see harness.py).
Cases marked as needing PostgreSQL get ``args.dsn``: ``--dsn``, else the test
helper's server (FASTPOOL_TEST_DSN, libpq environment, 127.0.0.1:5432, or a
private throwaway cluster started for the run)."""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from typing import Callable

from . import (
    callgrind,
    cases_async,
    cases_core,
    cases_lifo,
    cases_pools,
    cases_server,
    contenders,
    progress,
    report,
    targets,
)
from .harness import interleaved, ns_per_op, threaded_throughput
from .report import Table
from .server import sync_pools
from .server.runner import ServerSetup
from .server.settings import ENDPOINTS


def case_core_cycle_1t(args: argparse.Namespace) -> list[Table]:
    impls = {
        name: (lambda c=cycle: ns_per_op(c, args.seconds))
        for name, cycle in cases_core.single_thread_cycles().items()
    }
    return [
        Table(
            "core_ns_per_op",
            "core: acquire+release, 1 thread (ns/op, lower is better)",
            interleaved(impls, args.repeats),
            ["fastpool.python", "collections.deque"],
        )
    ]


def case_core_cycle_threads(args: argparse.Namespace) -> list[Table]:
    tables = []
    for threads in args.threads:
        cycles = cases_core.threaded_cycles()
        impls = {
            name: (lambda c=cycle, t=threads: threaded_throughput(c, t, args.seconds))
            for name, cycle in cycles.items()
        }
        tables.append(
            Table(
                f"core_threads_{threads}",
                f"core: acquire+release from {threads} thread{'s' if threads > 1 else ''} (ops/s, higher is better)",
                interleaved(impls, args.repeats),
                ["fastpool.python", "collections.deque"],
            )
        )
    return tables


# name -> (case, needs PostgreSQL)
CASES: dict[str, tuple[Callable[[argparse.Namespace], list[Table]], bool]] = {
    "core_cycle_1t": (case_core_cycle_1t, False),
    "core_cycle_threads": (case_core_cycle_threads, False),
    "pool_cycle_1t": (cases_pools.case_cycle_1t, True),
    "pool_contended": (cases_pools.case_contended, True),
    "pool_select1": (cases_pools.case_e2e, True),
    "pool_spike": (cases_pools.case_spike, False),
    "pool_memory": (cases_pools.case_memory, True),
    "pool_async": (cases_async.case_async, True),
    "pool_lifo": (cases_lifo.case_low_concurrency, True),
    "server": (cases_server.case_server, True),
    "pool_instructions": (callgrind.case_instructions, True),
}

SERVER_SETUPS = "gthread:1x16,gthread:1x64,gthread:2x16,uvicorn:1"


def _ints(text: str) -> list[int]:
    return [int(t) for t in text.split(",")]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--quick", action="store_true", help="seconds-long smoke run (CI)")
    p.add_argument("--repeats", type=int, help="repeats per case (default 5, quick 2)")
    p.add_argument("--seconds", type=float, help="seconds per measurement (default 1, quick 0.05)")
    p.add_argument("--threads", help="core cases: thread counts (default 1,4,16,64)")
    p.add_argument("--pool-threads", help="contended case: thread counts (default 10,16,20,64)")
    p.add_argument("--e2e-threads", help="SELECT 1 case: thread counts (default 1,10,64)")
    p.add_argument("--async-tasks", help="async case: task counts (default 1,10,64)")
    p.add_argument(
        "--loop",
        choices=["asyncio", "uvloop"],
        default="asyncio",
        help="event loop of the async cases (default asyncio)",
    )
    p.add_argument(
        "--memory-conns", help="memory case: the two pool sizes compared (default 10,60)"
    )
    server = p.add_argument_group("the server case (7)")
    server.add_argument(
        "--server-setups",
        help=f"gthread:WORKERSxTHREADS and uvicorn:WORKERS, comma-separated "
        f"(default {SERVER_SETUPS}; quick gthread:1x16,uvicorn:1)",
    )
    server.add_argument(
        "--server-endpoints",
        help=f"subset of {','.join(ENDPOINTS)} (default all; quick select1,nodb)",
    )
    server.add_argument(
        "--server-contenders",
        help="subset of: "
        + ", ".join(n for n in sync_pools.CONTENDERS if n != "no database")
        + " (default all; quick fastpool,psycopg_pool)",
    )
    server.add_argument("--server-repeats", type=int, help="default 3, quick 1")
    server.add_argument("--server-seconds", type=int, help="measured wrk run (default 5, quick 1)")
    server.add_argument("--server-warmup", type=int, help="wrk run before it (default 2, quick 1)")
    server.add_argument(
        "--server-connections", type=int, help="wrk connections (default 64, quick 16)"
    )
    server.add_argument("--server-pool-size", type=int, default=10, help="per worker (default 10)")
    p.add_argument(
        "--callgrind-cycles",
        type=int,
        help="instruction-count case: N of its N and 2N cycle regions (default 2000, quick 500)",
    )
    p.add_argument(
        "--callgrind-seeds",
        type=int,
        help="instruction-count case: interpreters (hash seeds 0, 1, ...) (default 3, quick 1)",
    )
    p.add_argument("--cases", help=f"comma-separated subset of: {', '.join(CASES)}")
    p.add_argument("--dsn", help="PostgreSQL to use (default: found or started, as for the tests)")
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="directory for latest.json, latest.md and latest.png (default bench/results, "
        "or bench/results/quick with --quick, so a smoke run never replaces "
        "the published full results)",
    )
    args = p.parse_args(argv)
    q = args.quick
    if args.out is None:
        args.out = Path(__file__).parent / "results" / ("quick" if q else "")
    args.repeats = args.repeats or (2 if q else 5)
    args.seconds = args.seconds or (0.05 if q else 1.0)
    args.threads = _ints(args.threads or ("1,8" if q else "1,4,16,64"))
    args.pool_threads = _ints(args.pool_threads or ("10,64" if q else "10,16,20,64"))
    args.e2e_threads = _ints(args.e2e_threads or ("1,10" if q else "1,10,64"))
    args.memory_conns = _ints(args.memory_conns or ("2,6" if q else "10,60"))
    args.callgrind_cycles = args.callgrind_cycles or (500 if q else 2000)
    args.callgrind_seeds = args.callgrind_seeds or (1 if q else 3)
    args.async_tasks = _ints(args.async_tasks or ("10" if q else "1,10,64"))
    # the spike: 50 callers, 5 idle connections, max 20, slow connect
    args.spike_callers, args.spike_idle, args.spike_max = 50, 5, 20
    args.spike_connect, args.spike_hold = (0.02, 0.005) if q else (0.1, 0.02)
    _server_args(p, args)
    names = args.cases.split(",") if args.cases else list(CASES)
    unknown = [n for n in names if n not in CASES]
    if unknown:
        p.error(f"unknown case(s) {unknown}; choose from {list(CASES)}")
    counts = (
        args.threads + args.pool_threads + args.e2e_threads + args.memory_conns + args.async_tasks
    )
    if (
        args.repeats < 1
        or args.seconds <= 0
        or min(counts) < 1
        or min(args.callgrind_cycles, args.callgrind_seeds) < 1
    ):
        p.error(
            "--repeats, --seconds, thread counts, --memory-conns and --callgrind-* must be positive"
        )
    if len(args.memory_conns) != 2 or args.memory_conns[0] >= args.memory_conns[1]:
        p.error("--memory-conns takes two sizes, smaller first, e.g. 10,60")
    args.cases = names
    return args


def _server_args(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    q = args.quick
    try:
        args.server_setups = [
            ServerSetup.parse(t)
            for t in (
                args.server_setups or ("gthread:1x16,uvicorn:1" if q else SERVER_SETUPS)
            ).split(",")
        ]
    except ValueError as exc:
        p.error(str(exc))
    args.server_endpoints = (
        args.server_endpoints or ("select1,nodb" if q else ",".join(ENDPOINTS))
    ).split(",")
    bad = [e for e in args.server_endpoints if e not in ENDPOINTS]
    if bad:
        p.error(f"unknown server endpoint(s) {bad}; choose from {list(ENDPOINTS)}")
    known = [n for n in sync_pools.CONTENDERS if n != "no database"]
    args.server_contenders = (
        args.server_contenders.split(",")
        if args.server_contenders
        else (["fastpool", "psycopg_pool"] if q else known)
    )
    bad = [n for n in args.server_contenders if n not in known]
    if bad:
        p.error(f"unknown server contender(s) {bad}; choose from {known}")
    defaults = {  # name: (quick, full)
        "server_repeats": (1, 3),
        "server_seconds": (1, 5),
        "server_warmup": (1, 2),
        "server_connections": (16, 64),
    }
    for name, (quick, full) in defaults.items():
        if getattr(args, name) is None:  # an explicit 0 is checked below, not replaced
            setattr(args, name, quick if q else full)
    counts = [args.server_repeats, args.server_seconds, args.server_connections]
    if min(counts) < 1 or args.server_warmup < 0 or args.server_pool_size < 1:
        p.error("the --server-* counts must be positive (--server-warmup may be 0)")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with contextlib.ExitStack() as stack:
        if args.dsn is None and any(CASES[n][1] for n in args.cases):
            from tests.support.postgres import test_server

            args.dsn = stack.enter_context(test_server()).dsn
        return run(args)


def run(args: argparse.Namespace) -> int:
    meta = report.machine(args.dsn)
    if "server" in args.cases:
        from .server import wrk

        meta["versions"]["wrk"] = wrk.version()
    out: list[str] = [
        f"# fastpool benchmark ({'quick' if args.quick else 'full'})",
        "",
        f"{meta['date']} · {meta['cpu']} · {meta['cores']} cores · Python {meta['python']} · "
        f"fastpool {meta['fastpool_version']} ({meta['fastpool_impl']} core) {meta['commit']}",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()),
        "",
        f"{args.repeats} repeats of {args.seconds} s, implementations interleaved; paired ratios "
        "are medians of per-repeat ratios.",
        "",
    ]
    if any(n.startswith("pool_") for n in args.cases):
        out += [
            "### The contenders and what each does with a returned connection",
            "",
            "| name | on return |",
            "|---|---|",
        ]
        out += [f"| {name} | {entry.on_return} |" for name, entry in contenders.CONTENDERS.items()]
        out.append("")
    if "server" in args.cases:
        out += [
            "### 7. In a real server: the contenders",
            "",
            cases_server.CONTENDERS_NOTE,
            "",
            f"Server case: {args.server_repeats} repeats, a fresh server per run, "
            f"{args.server_warmup} s of warm-up then {args.server_seconds} s measured with wrk "
            f"({args.server_connections} connections, 1 thread); implementations interleaved.",
            "",
        ]
    print("\n".join(out))
    tables: dict[str, Table] = {}
    for i, name in enumerate(args.cases, 1):
        progress.case_label = f"[{i}/{len(args.cases)}] {name}"
        for t in CASES[name][0](args):
            tables[t.key] = t
            text = report.table(t)
            out.append(text)
            print(text)
            sys.stdout.flush()
    checked = targets.check(tables)
    if checked:
        out.append(targets.table(checked))
        print(out[-1])
    args.out.mkdir(parents=True, exist_ok=True)
    results = {k: t.results for k, t in tables.items()}
    report.write_json(args.out / "latest.json", meta, results, targets=checked)
    (args.out / "latest.md").write_text("\n".join(out))
    report.write_plot(args.out / "latest.png", meta, results)
    print(f"wrote latest.json, latest.md and latest.png in {args.out}")
    return 0
