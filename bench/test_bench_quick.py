"""Smoke test of the main job: ``python -m bench --quick`` runs every case and
produces numbers, a JSON file, the tables and a plot. No timing thresholds."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.postgres import mask_password

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
COMPETITORS = {"psycopg_pool", "sqlalchemy QueuePool", "psycopg2 pool+sem", "DBUtils PooledDB"}


@pytest.mark.postgres
def test_quick_bench_runs_every_case(tmp_path: Path, pg_dsn: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(tmp_path), "--dsn", pg_dsn],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, mask_password(proc.stdout + proc.stderr)
    data = json.loads((tmp_path / "latest.json").read_text())
    assert (
        set(data["cases"])
        == {"core_ns_per_op", "core_threads_1", "core_threads_8"} | POOL_TABLES | ASYNC_TABLES
    )
    for case, impls in data["cases"].items():
        if case.startswith("core"):
            assert "fastpool.python" in impls and "collections.deque" in impls, case
        elif case.startswith("async"):
            assert {
                "fastpool.c async",
                "fastpool.python async",
                "psycopg_pool async",
                "asyncpg pool (other driver)",
                "sqlalchemy AsyncAdaptedQueuePool",
                "sqlalchemy AsyncAdaptedFastQueuePool",
            } <= set(impls), (case, sorted(impls))
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
    assert (tmp_path / "latest.png").stat().st_size > 10_000
    md = (tmp_path / "latest.md").read_text()
    assert "| psycopg_pool |" in md and "### Targets" in md
