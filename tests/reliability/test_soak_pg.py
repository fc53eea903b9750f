"""Soak: 64 threads run SELECT 1 through a pool of 10 for a minute (10 with
``-m slow``), sampling the process's RSS and the server's connection count
every second. Both must stay flat: the server sees exactly the pool's
connections throughout, and RSS after warm-up does not grow (a leak of even a
hundred bytes per query would add tens of MiB). No query may fail."""

from __future__ import annotations

import os
import statistics
import time

import pytest

from tests.support.load import pool_under_load, select_one

pytestmark = pytest.mark.postgres

APP = f"fastpool-soak-test-{os.getpid()}"
THREADS, SIZE = 64, 10
WARMUP = 10.0
# Allowed RSS drift between the first and last thirds of the run, in MiB: room
# for allocator noise, far below what a per-query leak adds.
RSS_DRIFT_MIB = 4.0


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


@pytest.mark.skipif(not __import__("os").path.exists("/proc/self/status"), reason="needs /proc")
@pytest.mark.parametrize(
    "seconds",
    [
        pytest.param(60.0, id="1min"),
        pytest.param(600.0, id="10min", marks=pytest.mark.slow),
    ],
)
def test_soak(pg_dsn: str, admin, seconds: float) -> None:
    with pool_under_load(
        pg_dsn,
        select_one,
        size=SIZE,
        threads=THREADS,
        timeout=30,
        kwargs={"autocommit": True, "application_name": APP},
    ) as load:
        t0 = time.monotonic()
        samples: list[tuple[float, float, int]] = []  # (elapsed, rss MiB, server connections)
        while time.monotonic() - t0 < seconds:
            time.sleep(1.0)
            n = admin.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", [APP]
            ).fetchone()[0]
            samples.append((time.monotonic() - t0, rss_mib(), n))
        load.finish(60)

        steady = [s for s in samples if s[0] >= WARMUP]
        third = max(1, len(steady) // 3)
        early = statistics.median(r for _, r, _ in steady[:third])
        late = statistics.median(r for _, r, _ in steady[-third:])
        conns = {n for _, _, n in samples}
        print(
            f"\nsoak {seconds:.0f} s, {THREADS} threads: {sum(load.ops)} queries, "
            f"{len(load.failures)} errors, RSS {early:.1f} -> {late:.1f} MiB, "
            f"server connections seen {sorted(conns)}"
        )
        assert load.failures == []
        assert min(load.ops) > 0, "a thread never got a connection"
        assert conns == {SIZE}, conns
        assert late - early <= RSS_DRIFT_MIB, (early, late)
        load.assert_books_balance()
