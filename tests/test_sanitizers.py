"""The compiled core under ThreadSanitizer: the native-thread stress test runs
clean (no data race, no lost or duplicated slot), and a deliberate race is
reported, which proves the sanitizer is really watching.

The core and the test-only stress extension that drives it from pthreads are
built with FASTPOOL_SANITIZE=thread into a temporary directory and imported
into the (uninstrumented) interpreter with the TSan runtime preloaded;
only the core's own memory accesses are instrumented, so what TSan reports is
about the ring. Skipped where GCC's libtsan is not installed."""

from __future__ import annotations

import glob
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.builds import run_on_build
from tests.support.passes import core_independent

# its own build, run with FASTPOOL_IMPL=c whatever the pass
pytestmark = [pytest.mark.c_extension, core_independent]

LIBTSAN = next(
    iter(
        sorted(
            glob.glob("/usr/lib/x86_64-linux-gnu/libtsan.so.*")
            + glob.glob("/usr/lib/*/libtsan.so.*")
        )
    ),
    None,
)
RACE_EXIT = 66


@pytest.fixture(scope="module")
def tsan_build(build_core_variant) -> Path:
    if LIBTSAN is None or not sys.platform.startswith("linux"):
        pytest.skip("ThreadSanitizer runtime (libtsan) not installed")
    return build_core_variant("tsan_build", FASTPOOL_SANITIZE="thread")


def run_under_tsan(work: Path, code: str) -> subprocess.CompletedProcess:
    return run_on_build(
        work,
        code,
        timeout=600,
        LD_PRELOAD=LIBTSAN,
        TSAN_OPTIONS=f"halt_on_error=1 exitcode={RACE_EXIT} report_signal_unsafe=0",
    )


@pytest.mark.parametrize(
    "threads,capacity,slots,iterations,hold,lifo,oldest_every",
    [
        (8, 4, 4, 20_000, 4, False, 0),
        (8, 1, 1, 20_000, 2, False, 0),
        (4, 100, 10, 20_000, 8, False, 0),
        (16, 2, 2, 5_000, 0, False, 0),
        # The LIFO stack, with claims of its bottom (which detach it) mixed in.
        (8, 8, 4, 20_000, 4, True, 5),
        (16, 2, 2, 5_000, 0, True, 3),
    ],
)
def test_native_stress_is_race_free_under_tsan(
    tsan_build: Path, threads, capacity, slots, iterations, hold, lifo, oldest_every
) -> None:
    proc = run_under_tsan(
        tsan_build,
        f"""
        import fastpool._fastpool as C
        import _fastpool_stress as S
        for m in (C, S):
            assert m.__file__.startswith({str(tsan_build)!r}), m.__file__
        ring = C.SlotRing({capacity}, lifo={lifo})
        for _ in range({slots}):
            ring.add()
        res = S.stress_native(ring, {threads}, {iterations}, {hold}, oldest_every={oldest_every})
        assert (res["duplicates"], res["errors"], res["gave_up"], res["still_owned"]) == (0, 0, 0, 0), res
        ring.check_invariants()
        print("clean", res["cycles"])
    """,
    )
    assert "ThreadSanitizer" not in proc.stderr, proc.stderr[-4000:]
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stdout.split() == ["clean", str(threads * iterations)]


def test_tsan_reports_a_real_race(tsan_build: Path) -> None:
    # SlotRing.idle() reads the cells with plain loads: documented as meaningful
    # only when no other thread uses the ring. Calling it while native threads
    # push and pop is a genuine data race, which TSan must catch.
    proc = run_under_tsan(
        tsan_build,
        """
        import threading
        import fastpool._fastpool as C
        import _fastpool_stress as S
        ring = C.SlotRing(4)
        for _ in range(4):
            ring.add()
        t = threading.Thread(target=S.stress_native, args=(ring, 4, 200_000, 0))
        t.start()
        while t.is_alive():
            ring.idle()
        t.join()
    """,
    )
    assert proc.returncode == RACE_EXIT, (proc.returncode, proc.stderr[-2000:])
    assert "WARNING: ThreadSanitizer: data race" in proc.stderr
