"""Many threads, few real connections: nobody shares a backend, nothing leaks."""

from __future__ import annotations

import os

import pytest

from tests.support.threads import run_threads

pytestmark = pytest.mark.postgres


# Unique to this process: another test run on the same server must not count.
APP = f"fp_conc-{os.getpid()}"


@pytest.mark.parametrize("use_lifo", [False, True], ids=["fifo", "lifo"])
def test_threads_never_share_a_backend(make_pool, admin, use_lifo) -> None:
    p = make_pool(
        min_size=4,
        max_size=4,
        timeout=30,
        use_lifo=use_lifo,
        kwargs={"application_name": APP},
    )
    p.wait()
    owners: dict[int, int] = {}
    problems: list = []

    def work(tid: int) -> None:
        try:
            for i in range(40):
                with p.connection() as conn:
                    pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
                    if owners.setdefault(pid, tid) != tid:
                        problems.append(("shared", pid))
                    if i % 5 == 0:
                        conn.execute("SELECT pg_sleep(0.001)")
                    del owners[pid]
        except Exception as ex:  # noqa: BLE001 - reported below
            problems.append(ex)

    run_threads(work, 32, switch_interval=1e-4)
    assert problems == []
    stats = p.get_stats()
    assert stats["pool_size"] == stats["pool_available"] == 4
    assert stats["requests_num"] == 32 * 40 and "requests_errors" not in stats
    # The server sees exactly the pool's 4 connections: none leaked or duplicated.
    n = admin.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", [APP]
    ).fetchone()[0]
    assert n == 4
    p._ring.check_invariants()
