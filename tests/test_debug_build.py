"""The FASTPOOL_DEBUG=1 build: it compiles, reports itself as a debug build, and
its operation counters balance after a native-thread stress run (the
test-only stress extension, built with it).

Built into a temporary directory from the sources, so the installed build is
left alone. Skipped only when there is no compiler toolchain (Cython missing)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.builds import run_on_build
from tests.support.passes import core_independent

ROOT = Path(__file__).resolve().parents[1]

# its own build, run with FASTPOOL_IMPL=c whatever the pass
pytestmark = [pytest.mark.c_extension, core_independent]


@pytest.fixture(scope="module")
def debug_build(build_core_variant) -> Path:
    return build_core_variant("debug_build", FASTPOOL_DEBUG="1")


def _run(work: Path, code: str) -> str:
    proc = run_on_build(work, code, timeout=300)
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc.stdout


def test_debug_build_reports_itself_and_counts_every_operation(debug_build: Path) -> None:
    out = _run(
        debug_build,
        """
        import fastpool, fastpool._fastpool as C, _fastpool_stress as S
        for m in (fastpool, S):
            assert m.__file__.startswith(%r), m.__file__
        assert C.DEBUG is True and fastpool.__debug_core__ is True
        ring = C.SlotRing(16)
        slots = [ring.add() for _ in range(8)]
        held = ring.add(acquired=True)
        ring.retire(held)
        res = S.stress_native(ring, 4, 50_000, 2)
        assert res["duplicates"] == res["errors"] == res["gave_up"] == 0, res
        counts = ring.debug_counters()
        assert counts == {"acquires": 200_000, "releases": 200_000, "adds": 9, "retires": 1}, counts
        ring.check_invariants()
        print("ok")
    """
        % str(debug_build),
    )
    assert out.strip() == "ok"
