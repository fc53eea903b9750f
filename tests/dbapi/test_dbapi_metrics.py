"""``pool.get_metrics()`` on fastpool.Pool (sqlite3: no server needed): the
values the exporters of fastpool.metrics report, read at once."""

from __future__ import annotations

import sqlite3

import pytest

from fastpool import Pool, PoolTimeout
from fastpool.metrics import HISTOGRAM_BOUNDS, PoolMetrics


def test_get_metrics_reports_gauges_timeouts_and_use_times() -> None:
    connect = lambda: sqlite3.connect(":memory:", check_same_thread=False)  # noqa: E731
    with Pool(connect, min_size=1, max_size=2, name="jobs", timeout=5) as pool:
        pool.wait()
        with pool.connection() as conn:
            conn.execute("SELECT 1")
        held = [pool.getconn(), pool.getconn()]
        with pytest.raises(PoolTimeout):
            pool.getconn(timeout=0)
        m = pool.get_metrics()
        for conn in held:
            pool.putconn(conn)

    assert isinstance(m, PoolMetrics)
    assert (m.pool_name, m.idle, m.used, m.idle_min, m.idle_max, m.max) == ("jobs", 0, 2, 1, 2, 2)
    assert (m.pending_requests, m.timeouts) == (0, 1)
    use_counts, use_seconds = m.histograms["use"]
    assert len(use_counts) == len(HISTOGRAM_BOUNDS) + 1  # then +Inf
    assert sum(use_counts) == 1 and use_seconds >= 0  # the with-block only: getconn() isn't timed


def test_pop_stats_resets_nothing_get_metrics_reads() -> None:
    connect = lambda: sqlite3.connect(":memory:", check_same_thread=False)  # noqa: E731
    with Pool(connect, min_size=1, timeout=5) as pool:
        with pool.connection():
            pass
        before = pool.get_metrics()
        assert pool.pop_stats()["requests_num"] == 1
        assert "requests_num" not in pool.get_stats()
        assert pool.get_metrics().histograms == before.histograms
