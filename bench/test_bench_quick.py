"""Smoke tests of the main job: ``python -m bench --quick`` runs every case and
produces numbers, a JSON file, the tables and a plot. No timing thresholds.

The server case runs in a test of its own, on a mini configuration (one
contender and the ceiling, 1-second wrk runs), plus a check that a failing
server is flagged."""

from __future__ import annotations

import importlib.util
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.cases_server import _busiest_cell, _clean, _flagged_cell, _note, _reruns_cell, paired
from bench.compare import CASES
from bench.harness import Result
from bench.server import process, runner, settings
from tests.support.passes import core_independent
from tests.support.postgres import mask_password

# The benchmark measures both cores in one process (bench.contenders.fastpool_module),
# whichever one the pass loaded: one run of these smoke tests is enough.
pytestmark = core_independent

ROOT = Path(__file__).resolve().parents[1]

POOL_TABLES = {
    "pool_cycle_1t_stub",
    "pool_cycle_1t_pg",
    "pool_contended_10",
    "pool_contended_64",
    "pool_select1_autocommit_1",
    "pool_select1_autocommit_10",
    "pool_select1_transaction_1",
    "pool_select1_transaction_10",
    "pool_spike",
    "pool_memory",
}
ASYNC_TABLES = {"async_cycle_10", "async_select1_10"}
LIFO_TABLES = {"lifo_select1_thread", "lifo_select1_async"}
# The callgrind case runs where valgrind is installed (scripts/test installs it).
CYCLE_INSTRUCTION_TABLES = (
    {
        f"pool_instructions_{kind}{mode}"
        for kind in ("", "async_")
        for mode in ("autocommit", "transaction")
    }
    if shutil.which("valgrind")
    else set()
)
# case 8's whole request (SELECT 1, one task), counted
REQUEST_INSTRUCTION_TABLE = "pool_instructions_async_select1"
INSTRUCTION_TABLES = CYCLE_INSTRUCTION_TABLES | (
    {REQUEST_INSTRUCTION_TABLE} if shutil.which("valgrind") else set()
)
COMPETITORS = {"psycopg_pool", "sqlalchemy QueuePool", "psycopg2 pool+sem", "DBUtils PooledDB"}


@pytest.mark.postgres
def test_quick_bench_runs_every_case(tmp_path: Path, pg_dsn: str) -> None:
    in_process = ",".join(c for c in CASES if c != "server")  # the server: below
    data = _bench(tmp_path, pg_dsn, "--cases", in_process)
    assert (
        set(data["cases"])
        == {"core_ns_per_op", "core_threads_1", "core_threads_8"}
        | POOL_TABLES
        | ASYNC_TABLES
        | LIFO_TABLES
        | INSTRUCTION_TABLES
    )
    for case, impls in data["cases"].items():
        if case.startswith("core"):
            assert "fastpool.python" in impls and "collections.deque" in impls, case
        elif case in LIFO_TABLES:
            suffix = " async" if case.endswith("async") else ""
            assert {
                f"fastpool.c{suffix}",
                f"fastpool.c{suffix} lifo",
                f"fastpool.python{suffix} lifo",
                f"dedicated{suffix}",
            } <= set(impls), (case, sorted(impls))
        elif case.startswith("async"):
            assert {
                "fastpool.c async",
                "fastpool.python async",
                "psycopg_pool async",
                "asyncpg pool (other driver)",
                "sqlalchemy AsyncAdaptedQueuePool",
                "sqlalchemy AsyncAdaptedFastQueuePool",
            } <= set(impls), (case, sorted(impls))
        elif case == REQUEST_INSTRUCTION_TABLE:
            assert {"dedicated async", "fastpool.c async lifo", "psycopg_pool async"} <= set(
                impls
            ), sorted(impls)
            dedicated = impls["dedicated async"]["median"]
            for name, res in impls.items():
                # A request is psycopg's and the event loop's work more than any
                # pool's: a count below dedicated's, or several times it, is a
                # broken measurement.
                assert dedicated <= res["median"] * 1.02 < 3 * dedicated, (name, res, dedicated)
        elif case in INSTRUCTION_TABLES:
            suffix = " async" if "_async_" in case else ""
            ours, theirs = f"fastpool.c{suffix}", f"psycopg_pool{suffix}"
            assert {f"fastpool.python{suffix}", theirs} <= set(impls), (case, sorted(impls))
            for name, res in impls.items():
                # two estimates from two (N, 2N) pairs: instruction counts agree
                # closely, or the brackets caught something else
                assert max(res["runs"]) <= 1.05 * min(res["runs"]), (case, name, res["runs"])
            if ours in impls:  # a count far from this shows a broken measurement
                assert impls[ours]["median"] < impls[theirs]["median"] / 3, case
        else:
            assert "fastpool.python" in impls, case
            if case != "pool_spike":  # the spike runs on stub connections only
                assert COMPETITORS <= set(impls), (case, sorted(impls))
        for name, res in impls.items():
            assert res["runs"] and all(math.isfinite(v) for v in res["runs"]), (case, name)
            if case != "pool_memory":  # RSS deltas of a few connections may round to 0
                assert all(v > 0 for v in res["runs"]), (case, name)
            assert sum(e.get("errors", 0) for e in res["extra"]) == 0, (case, name, res["extra"])
    assert data["targets"], "the targets summary is missing"
    assert any("use_lifo=True" in t["target"] for t in data["targets"]), data["targets"]
    assert (tmp_path / "latest.png").stat().st_size > 10_000
    md = (tmp_path / "latest.md").read_text()
    assert "| psycopg_pool |" in md and "### Targets" in md


def _bench(out: Path, dsn: str, *options: str) -> dict:
    """Run ``python -m bench --quick`` with ``options``; its JSON results."""
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(out), "--dsn", dsn, *options],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, mask_password(proc.stdout + proc.stderr)
    return json.loads((out / "latest.json").read_text())


def _needs_server_tools() -> None:
    if shutil.which("wrk") is None:
        pytest.skip("wrk is not installed (scripts/test and scripts/bench install it)")
    for module in ("gunicorn", "uvicorn"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed (the test and bench dependency groups have it)")


SERVER_TABLES = {
    "server_gthread_1x16_select1",
    "server_gthread_1x16_nodb",
    "server_uvicorn_1_select1",
    "server_uvicorn_1_nodb",
}


@pytest.mark.postgres
def test_quick_server_case_runs_and_measures(tmp_path: Path, pg_dsn: str) -> None:
    """One pool and the ceiling behind gunicorn and uvicorn: every run clean, with numbers."""
    _needs_server_tools()
    data = _bench(
        tmp_path,
        pg_dsn,
        "--cases",
        "server",
        "--server-contenders",
        "fastpool,dedicated",
        "--server-warmup",
        "0",
        "--server-connections",
        "8",
    )
    assert set(data["cases"]) == SERVER_TABLES
    for case, impls in data["cases"].items():
        expected = {"no database"} if case.endswith("_nodb") else {"fastpool", "dedicated"}
        assert set(impls) == expected, (case, sorted(impls))
        for name, res in impls.items():
            (run,) = res["extra"]
            assert run["flagged"] == [], (case, name, run)
            assert res["runs"] and all(math.isfinite(v) and v > 0 for v in res["runs"])
            assert run["requests"] > 0 and run["errors"] == 0
            for key in ("p50_ms", "p99_ms", "max_ms", "cpu_us_per_req"):
                assert math.isfinite(run[key]) and run[key] > 0, (case, name, key, run)
            # one worker (and gunicorn's master, or none): the worker did the work
            assert 0.5 < run["busiest_process_cpu_share"] <= 1, (case, name, run)
            assert 0 <= run["sessions_max"] <= run["sessions_allowed"], (case, name, run)
            if name == "fastpool":  # its pool of 10 was open all along
                assert run["sessions_max"] == 10, (case, run)
                # timed inside the server too (bench/server/trace.py): the requests
                # that asked for a connection during the measured run, so wrk's
                # count give or take the 8 in flight at either end
                assert abs(run["traced_requests"] - run["requests"]) <= 8, (case, run)
                assert 0 <= run["wait_p50_ms"] <= run["wait_p99_ms"], (case, run)
                assert 0 < run["hold_p50_ms"] <= run["hold_p99_ms"] <= run["max_ms"], (case, run)
            else:  # only the psycopg pools are traced
                assert "traced_requests" not in run, (case, name, run)
            assert run["sessions_left"] == 0
    assert "wrk" in data["machine"]["versions"]
    md = (tmp_path / "latest.md").read_text()
    assert "| fastpool |" in md and "| no database |" in md
    assert "in server: conn wait p99 ms" in md


@pytest.mark.postgres
def test_a_failing_server_run_is_flagged(pg_dsn: str) -> None:
    """The self-test endpoint answers 500 with a traceback and leaves one
    session open in a server that should hold none: all three are flagged."""
    _needs_server_tools()
    value, info = runner.run_once(
        runner.Run(
            server=runner.ServerSetup.parse("gthread:1x2"),
            endpoint=settings.SELFTEST,
            contender="no database",
            dsn=pg_dsn,
            table="unused",
            pool_size=1,
            seconds=1,
            warmup=0,
            connections=2,
        )
    )
    reasons = " | ".join(info["flagged"])
    assert "HTTP status >= 400" in reasons, reasons
    assert "traceback" in reasons, reasons
    assert "1 database sessions, at most 0 expected" in reasons, reasons
    assert "RuntimeError: the self-test endpoint fails on purpose" in info["log"]
    assert info["sessions_left"] == 0  # the server's exit closed it


def test_flagged_runs_are_left_out_of_medians_and_ratios() -> None:
    def raw(name: str, values: list[float], flagged: set[int]) -> Result:
        res = Result(name, "requests/s", higher_is_better=True, runs=list(values))
        res.extra = [{"flagged": ["x"] if i in flagged else []} for i in range(len(values))]
        return _clean(res)

    ours = raw("fastpool", [100.0, 1.0, 300.0], flagged={1})
    theirs = raw("psycopg_pool", [50.0, 100.0, 100.0], flagged={2})
    assert ours.runs == [100.0, 300.0] and ours.median == 200.0
    assert paired(ours, theirs) == 2.0  # only repeat 0 is clean in both
    assert _flagged_cell(ours) == "**1/3**: x"
    none_clean = raw("broken", [5.0], flagged={0})
    assert none_clean.runs == [] and math.isnan(none_clean.median)
    assert math.isnan(paired(none_clean, theirs))


def test_the_busiest_process_share_of_a_server_cpu() -> None:
    before = {10: 1.0, 11: 2.0}
    after = {10: 1.5, 11: 3.5, 12: 0.0}  # 12: a process that appeared meanwhile
    assert process.busiest_share(before, after) == 0.75
    assert math.isnan(process.busiest_share(before, before))  # no CPU used at all
    res = Result("fastpool", "requests/s", higher_is_better=True, runs=[1.0, 2.0])
    res.extra = [{"busiest_process_cpu_share": 0.5}, {"busiest_process_cpu_share": 0.914}]
    assert _busiest_cell(res) == "50% 91%"


# Busiest-worker CPU shares recorded in two-worker runs before the server balanced
# its workers (bench/results/server/worker-split.json): shared, and one worker alone.
SHARED = (0.503, 0.542, 0.62, 0.663, 0.704)
ALONE = (0.998, 1.0)


def test_an_unbalanced_run_is_rerun_then_flagged() -> None:
    for share in SHARED:
        assert runner.balance_verdict(share, workers=2, reruns_done=0) == "keep"
    for share in ALONE:
        assert runner.balance_verdict(share, workers=2, reruns_done=0) == "rerun"
        assert runner.balance_verdict(share, workers=2, reruns_done=1) == "rerun"
        assert runner.balance_verdict(share, workers=2, reruns_done=2) == "flag"
        assert runner.balance_verdict(share, workers=1, reruns_done=0) == "keep"
    assert runner.balance_verdict(math.nan, workers=2, reruns_done=0) == "keep"


def _scripted_runs(
    monkeypatch: pytest.MonkeyPatch, shares: list[float], errors: bool = False
) -> list[float]:
    """Make run_once return runs with these busiest shares, in order; the
    returned list empties as they are used."""
    left = list(shares)

    def fake_run_once(run: runner.Run) -> tuple[float, dict]:
        share = left.pop(0)
        flagged = ["3 responses with HTTP status >= 400"] if errors else []
        return 1000 * (1.5 - share), {"busiest_process_cpu_share": share, "flagged": flagged}

    monkeypatch.setattr(runner, "run_once", fake_run_once)
    return left


def test_the_case_reruns_unbalanced_runs_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    run = runner.Run(
        runner.ServerSetup.parse("gthread:2x16"), "select1", "fastpool", "", "", 10, 5, 2, 64
    )
    outcomes = []
    for shares in ([0.55], [1.0, 0.6], [1.0, 0.998, 1.0]):
        left = _scripted_runs(monkeypatch, shares)
        outcomes.append(runner.run_balanced(run))
        assert left == []  # every scripted attempt was used, none more
    (v0, i0), (v1, i1), (v2, i2) = outcomes
    assert i0["unbalanced_reruns"] == [] and i0["flagged"] == [] and v0 == 950
    assert i1["unbalanced_reruns"] == [1.0] and i1["flagged"] == [] and v1 == 900
    assert i2["unbalanced_reruns"] == [1.0, 0.998]
    assert i2["flagged"] == [
        "unbalanced workers: one did 100% of the server's CPU (limit 75%), after 2 re-runs"
    ]
    # a run flagged for its own reasons is not re-run: its errors are the news
    _scripted_runs(monkeypatch, [1.0], errors=True)
    _, errored = runner.run_balanced(run)
    assert errored["unbalanced_reruns"] == [] and len(errored["flagged"]) == 1

    res = Result("fastpool", "requests/s", higher_is_better=True, runs=[v0, v1, v2])
    res.extra = [i0, i1, i2]
    res = _clean(res)
    assert res.runs == [950, 900]  # the flagged run is in no figure
    assert _reruns_cell(res) == "3 (100% 100% 100%)"
    note = _note({"fastpool": res}, nodb=False, workers=2)
    assert "2 of 3 runs were re-run (3 attempts set aside, in no figure), 1 flagged" in note
    assert "Worker balance" not in _note({"fastpool": res}, nodb=False, workers=1)


@pytest.mark.postgres
def test_a_two_worker_server_is_measured_once_both_workers_answer(pg_dsn: str) -> None:
    """Each worker has its own SO_REUSEPORT socket, and the run starts only once
    both have answered the health check."""
    _needs_server_tools()
    server = runner.ServerSetup.parse("gthread:2x2")
    assert "--reuse-port" in server.command(8000)
    assert "--reuse-port" not in runner.ServerSetup.parse("gthread:1x2").command(8000)
    _, info = runner.run_once(
        runner.Run(server, "nodb", "no database", pg_dsn, "unused", 1, 1, 0, 4)
    )
    assert info["flagged"] == [], info
    assert info["requests"] > 0 and 0 < info["busiest_process_cpu_share"] <= 1
