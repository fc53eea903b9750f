"""Smoke test of the main job: ``python -m bench --quick`` runs every case and
produces numbers, a JSON file and a plot. No timing thresholds."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_quick_bench_runs_every_case(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads((tmp_path / "latest.json").read_text())
    assert set(data["cases"]) == {"core_ns_per_op", "core_threads_1", "core_threads_8"}
    for case, impls in data["cases"].items():
        assert "fastpool.python" in impls and "collections.deque" in impls, case
        for name, res in impls.items():
            assert res["runs"] and all(v > 0 for v in res["runs"]), (case, name)
    assert (tmp_path / "latest.png").stat().st_size > 10_000
    assert "| fastpool.python |" in proc.stdout
