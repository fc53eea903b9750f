"""Case 9: the pool's own cost per ``with pool.connection()`` (and per
``async with pool.connection()`` on the async pools), in CPU instructions
counted by callgrind.

Wall-clock times move by tens of percent on a shared machine; instruction
counts under valgrind do not. One child interpreter
(``bench/callgrind_probe.py``) runs under ``valgrind --tool=callgrind`` and,
for each pool and transaction mode, measures regions of ``N`` and ``2N``
cycles of ``with pool.connection() as conn: pass`` on a real connection
(nothing executed, so in transaction mode too the connection comes back idle
and no pool sends anything). The instructions per cycle are the difference
between the two regions divided by ``N``: start-up, the pool's set-up and the
brackets around each region cancel out. Two (N, 2N) pairs give two estimates
(the table's min and max).

The count covers everything the line costs: the ``for`` loop, the call of
``pool.connection()``, the ``with`` statement's machinery and the pool's
checkout and return. The async cycle runs in one coroutine that the event
loop runs once per region, so the loop's own cost cancels out like the rest
of a region's brackets; what a pool's checkout or return suspends for (a
trip through the loop) counts as the pool's.

A last table counts case 8's asyncio task whole: the client's instructions per
``SELECT 1`` request through a pool (``use_lifo=True``, a pool of one, the
default order, psycopg_pool) and on one dedicated connection with no pool,
which is what case 8's wall-clock ratio depends on where the client's CPU is
the bottleneck. Skipped, with a note, where valgrind is not installed."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from . import cases_async
from .callgrind_probe import ASYNC_POOLS, SELECT1_CONTENDERS, SELECT1_MODE
from .contenders import Setup, available, fastpool_module
from .harness import Result
from .report import Table

NAMES = ["fastpool.c", "fastpool.python", "psycopg_pool"]
ASYNC_NAMES = list(ASYNC_POOLS)
MODES = {
    "autocommit": "autocommit",
    "transaction": "non-autocommit (nothing executed: the connection comes back idle)",
}
ROOT = Path(__file__).resolve().parents[1]
NOTE_ASYNC = (
    "As above, with `async with pool.connection() as conn: pass` in one coroutine, which the "
    "event loop runs once per region (asyncio's default loop): the loop's cost cancels out with "
    "the rest of the region's brackets, and any trip through the loop a pool's checkout or "
    "return makes counts as the pool's."
)
NOTE = (
    "The difference between regions of {n2} and {n} cycles, divided by {n}, in one interpreter "
    "under callgrind: two such pairs (the extremes are min and max) in each of {seeds} "
    "interpreter(s), with hash seeds 0, 1, ... (string hashes decide how long dictionary "
    "lookups probe, which moves fastpool.c's count by a few percent). The count includes the "
    "loop, the call of `pool.connection()` and the `with` statement's own machinery: about 815 "
    "of fastpool.c's instructions on CPython 3.11 (see docs/benchmarks.md)."
)


def count(
    dsn: str,
    n: int,
    names: list[str],
    valgrind: str,
    seed: int = 0,
    select1_n: int = 0,
    select1: Sequence[str] = (),
) -> dict[tuple[str, str], list[float]]:
    """Run the probe under callgrind; instructions per cycle by (impl, mode):
    one estimate per (N, 2N) pair. ``seed``: the child's PYTHONHASHSEED.
    ``select1``: contenders of the whole-request count (mode "select1", pairs
    of ``select1_n`` and twice as many requests)."""
    with tempfile.TemporaryDirectory(prefix="fastpool-callgrind-") as tmp:
        cmd = [
            valgrind,
            "--tool=callgrind",
            # zero the counters on entering getppid(), dump them on entering
            # getpgrp(): the probe brackets each region with these two calls
            "--zero-before=getppid",
            "--dump-before=getpgrp",
            f"--callgrind-out-file={tmp}/cg.%p",
            sys.executable,
            "-m",
            "bench.callgrind_probe",
            dsn,
            str(n),
            ",".join(names),
        ]
        if select1:
            cmd += [str(select1_n), json.dumps(list(select1))]
        # A given hash seed: how long a dict lookup probes depends on the
        # strings' hashes, which otherwise change with every interpreter (by up
        # to a few percent of fastpool.c's count).
        env = dict(os.environ, PYTHONHASHSEED=str(seed))
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, cwd=ROOT, env=env)
        if proc.returncode != 0:
            raise RuntimeError(f"callgrind probe failed:\n{proc.stderr[-3000:]}")
        labels = json.loads(proc.stdout.strip().splitlines()[-1])
        totals = _dumps(Path(tmp))
    if sorted(totals)[: len(labels)] != list(range(1, len(labels) + 1)):
        raise RuntimeError(
            f"callgrind wrote dumps {sorted(totals)} for {len(labels)} regions: "
            "something else called getppid() or getpgrp()"
        )
    regions = [(lab, totals[i + 1]) for i, lab in enumerate(labels)]
    out: dict[tuple[str, str], list[float]] = {}
    pending: dict[tuple[str, str], tuple[int, float]] = {}  # a pair's first region
    for lab, instructions in regions:
        key, cycles = (lab["impl"], lab["mode"]), lab["cycles"]
        if cycles == 0:  # the warm-up region: its dump also holds what ran before
            continue
        if key not in pending:
            pending[key] = (cycles, instructions)
        else:
            first_cycles, first = pending.pop(key)
            out.setdefault(key, []).append((instructions - first) / (cycles - first_cycles))
    return out


def _dumps(folder: Path) -> dict[int, int]:
    """Total instructions of each callgrind dump in ``folder``, by part number."""
    totals = {}
    for path in folder.iterdir():
        part = total = None
        with path.open() as f:
            for line in f:
                if line.startswith("part:"):
                    part = int(line.split()[1])
                elif line.startswith("summary:"):
                    total = int(line.split()[1])
                    break
        if part is not None and total is not None:
            totals[part] = total
    return totals


def case_instructions(args: argparse.Namespace) -> list[Table]:
    """9. Instructions per ``with pool.connection()`` cycle, one thread, real
    connections; and per ``async with pool.connection()`` cycle, one task."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        print(
            "note: pool_instructions skipped: valgrind is not installed "
            "(apt-get install valgrind; scripts/bench installs it when run as root)"
        )
        return []
    names = list(available(NAMES, Setup(args.dsn)))
    async_names = list(cases_async.available(ASYNC_NAMES))
    select1 = _select1_available()
    n = args.callgrind_cycles
    select1_n = max(n // SELECT1_PER_CYCLES, 20)
    counts: dict[tuple[str, str], list[float]] = {}
    for seed in range(args.callgrind_seeds):
        found = count(args.dsn, n, names + async_names, valgrind, seed, select1_n, select1)
        for key, estimates in found.items():
            counts.setdefault(key, []).extend(estimates)
    note = NOTE.format(n=n, n2=2 * n, seeds=args.callgrind_seeds)
    tables = []
    for kind, contenders, baseline, statement, who in (
        ("", names, "psycopg_pool", "with", "1 thread"),
        ("async_", async_names, "psycopg_pool async", "async with", "1 asyncio task"),
    ):
        for mode, what in MODES.items():
            results = _results(contenders, mode, counts, "cycle", n)
            tables.append(
                Table(
                    f"pool_instructions_{kind}{mode}",
                    f"9. instructions per `{statement} pool.connection()` cycle (no query), "
                    f"{who}, real connections, {what}, counted by callgrind (lower is better)",
                    results,
                    [baseline],
                    note=note + (" " + NOTE_ASYNC if kind else ""),
                )
            )
    if DEDICATED in select1:
        tables.append(_select1_table(select1, counts, select1_n, args.callgrind_seeds))
    return tables


# A request costs the client about 100 times a pool cycle: regions of this
# many times fewer requests than cycles keep the case's run time in bounds.
SELECT1_PER_CYCLES = 10
DEDICATED = "dedicated async"
NOTE_SELECT1 = (
    "Everything one asyncio task's process executes per request of case 8 (`SELECT 1` through "
    "`async with pool.connection()`, or on one dedicated connection with no pool; autocommit; "
    "asyncio's default loop; the server is another process and not counted): psycopg, the event "
    "loop and the pool. The difference between regions of {n2} and {n} requests, divided by "
    "{n}; two pairs in each of {seeds} interpreter(s). Where the client's CPU is the "
    "bottleneck (one task, a server on the same cores), `x vs dedicated async` (dedicated's "
    "count divided by a contender's) is the most of dedicated's rate it can reach: the "
    "wall-clock target of case 8 (use_lifo=True at >= 95%) counted without the machine's "
    "noise. Which server backend "
    "answers (the hand-out order) costs the client nothing here; it costs the server's "
    "scheduling, which only case 8 sees."
)


def _results(
    names: list[str], mode: str, counts: dict[tuple[str, str], list[float]], per: str, n: int
) -> dict[str, Result]:
    """One Result per contender: its estimates of instructions ``per`` cycle
    or request, each from regions of ``n`` and ``2n`` of them."""
    results = {}
    for name in names:
        res = Result(name, f"instructions/{per}")
        res.runs = counts[(name, mode)]
        res.extra = [{f"{per}s": n} for _ in res.runs]
        results[name] = res
    return results


def _select1_available() -> list[str]:
    out = []
    for name, spec in SELECT1_CONTENDERS.items():
        try:
            if spec is not None:
                if spec[0] == "psycopg_pool":
                    import psycopg_pool  # noqa: F401
                else:
                    fastpool_module(spec[0])
        except ImportError as exc:
            print(f"(skipping {name} in the whole-request count: {exc})")
            continue
        out.append(name)
    return out


def _select1_table(
    select1: list[str], counts: dict[tuple[str, str], list[float]], n: int, seeds: int
) -> Table:
    results = _results(select1, SELECT1_MODE, counts, "request", n)
    return Table(
        "pool_instructions_async_select1",
        "9. client instructions per request, SELECT 1, 1 asyncio task, pool of 10 "
        "(dedicated: one connection, no pool), autocommit, counted by callgrind "
        "(lower is better)",
        results,
        [DEDICATED],
        note=NOTE_SELECT1.format(n=n, n2=2 * n, seeds=seeds),
    )


if __name__ == "__main__":  # python -m bench.callgrind DSN [N]
    found = shutil.which("valgrind")
    if found is None:
        sys.exit("valgrind is not installed")
    print(
        json.dumps(
            {
                f"{k[0]} {k[1]}": v
                for k, v in count(
                    sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 1000, NAMES, found
                ).items()
            },
            indent=1,
        )
    )
