"""Pool metrics for Prometheus, named after OpenTelemetry's database client
semantic conventions (``db.client.connection.*``, dots as underscores).

    from prometheus_client import REGISTRY
    from fastpool.metrics import PoolCollector

    REGISTRY.register(PoolCollector(pool))   # any number of pools, sync or async

Each metric carries a ``pool_name`` label (``db.client.connection.pool.name``).
Everything is read when Prometheus scrapes: the pools keep their counters and
histograms in atomic core counters, so there is no per-request cost beyond what
the pool already does. ``pop_stats()`` never resets what is exported here.
Needs ``prometheus-client`` (``pip install 'fastpool[metrics]'``).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Union

from .base import Histograms

if TYPE_CHECKING:  # the exporters' libraries are optional: imported where used
    from opentelemetry.metrics import Asynchronous, CallbackOptions, CallbackT, MeterProvider, Observation
    from prometheus_client.metrics_core import Metric

    from .pool import ConnectionPool
    from .pool_async import AsyncConnectionPool

    # Any fastpool pool: the psycopg pools (sync, async, null), and fastpool.Pool
    # (a ConnectionPool).
    _AnyPool = Union[ConnectionPool[Any], AsyncConnectionPool[Any]]

PREFIX = "db_client_connection"


def _histogram_buckets(counts: list[int]) -> list[tuple[str, float]]:
    """Per-bucket counts -> Prometheus' cumulative (le, count) pairs."""
    out, total = [], 0
    for bound, n in zip([*map(str, Histograms.BOUNDS), "+Inf"], counts):
        total += n
        out.append((bound, float(total)))
    return out


def _check_pools(who: str, pools: tuple[object, ...]) -> None:
    if not pools:
        raise ValueError(f"{who} needs at least one pool")
    for p in pools:
        if not all(hasattr(p, a) for a in ("get_stats", "_histograms", "_failed_requests_total")):
            raise TypeError(f"not a fastpool pool: {p!r}")


def _in_use(pool: _AnyPool, stats: dict[str, int]) -> int:
    """Connections checked out: pool_size counts the ones still being made too."""
    connecting: int = getattr(pool, "_connecting", 0)
    return max(0, stats["pool_size"] - stats["pool_available"] - connecting)


class PoolCollector:
    """A prometheus_client collector for one or more fastpool pools."""

    pools: tuple[_AnyPool, ...]

    def __init__(self, *pools: _AnyPool) -> None:
        _check_pools("PoolCollector", pools)
        self.pools = pools

    def describe(self) -> list[Metric]:
        return []  # metric names are known only by collecting; prometheus_client allows this

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

        count = GaugeMetricFamily(f"{PREFIX}_count", "Connections in the pool, by state",
                                  labels=["pool_name", "state"])
        idle_min = GaugeMetricFamily(f"{PREFIX}_idle_min", "min_size: connections kept open",
                                     labels=["pool_name"])
        maximum = GaugeMetricFamily(f"{PREFIX}_max", "max_size: connections allowed",
                                    labels=["pool_name"])
        pending = GaugeMetricFamily(f"{PREFIX}_pending_requests",
                                    "Requests waiting for a connection", labels=["pool_name"])
        timeouts = CounterMetricFamily(f"{PREFIX}_timeouts",
                                       "Requests that failed: timeouts, too many waiting, closed pool",
                                       labels=["pool_name"])
        hists = {
            "wait": HistogramMetricFamily(f"{PREFIX}_wait_time_seconds",
                                          "Time to obtain a connection", labels=["pool_name"]),
            "use": HistogramMetricFamily(f"{PREFIX}_use_time_seconds",
                                         "Time a connection is used in pool.connection()",
                                         labels=["pool_name"]),
            "create": HistogramMetricFamily(f"{PREFIX}_create_time_seconds",
                                            "Time to open a connection (attempts)", labels=["pool_name"]),
        }
        for pool in self.pools:
            name = pool.name
            stats = pool.get_stats()
            idle = stats["pool_available"]
            count.add_metric([name, "idle"], idle)
            count.add_metric([name, "used"], _in_use(pool, stats))
            idle_min.add_metric([name], stats["pool_min"])
            maximum.add_metric([name], stats["pool_max"])
            pending.add_metric([name], stats["requests_waiting"])
            # requests_errors is reset by pop_stats(); this running total is not
            timeouts.add_metric([name], pool._failed_requests_total())
            for key, (counts, total) in pool._histograms.snapshot().items():
                hists[key].add_metric([name], _histogram_buckets(counts), total)
        yield from (count, idle_min, maximum, pending, timeouts, *hists.values())


def instrument_opentelemetry(
    *pools: _AnyPool, meter_provider: MeterProvider | None = None
) -> list[Asynchronous]:
    """Report ``pools`` through OpenTelemetry's metrics API with the semantic
    conventions' names and attributes (``db.client.connection.pool.name``,
    ``db.client.connection.state``): ``db.client.connection.count``,
    ``.idle.min``, ``.max``, ``.pending_requests`` and ``.timeouts``, all
    observable instruments read at export time (no per-request cost).

    The wait/use/create time histograms are not among them: OpenTelemetry's API
    has no asynchronous histogram, and recording each checkout synchronously
    would put its cost on the hot path. Export those with ``PoolCollector``
    (an OpenTelemetry Collector can scrape it). Returns the instruments.
    Needs ``opentelemetry-api``; ``meter_provider`` defaults to the global one."""
    from opentelemetry import metrics
    from opentelemetry.metrics import Observation

    _check_pools("instrument_opentelemetry", pools)
    provider = meter_provider or metrics.get_meter_provider()
    meter = provider.get_meter("fastpool")
    pool_key, state_key = "db.client.connection.pool.name", "db.client.connection.state"

    def observe(
        read: Callable[[_AnyPool, dict[str, int], dict[str, str]], Iterable[Observation]],
    ) -> list[CallbackT]:
        def callback(options: CallbackOptions) -> Iterator[Observation]:
            for pool in pools:
                yield from read(pool, pool.get_stats(), {pool_key: pool.name})
        return [callback]

    def count(pool: _AnyPool, stats: dict[str, int], attrs: dict[str, str]) -> Iterator[Observation]:
        yield Observation(stats["pool_available"], {**attrs, state_key: "idle"})
        yield Observation(_in_use(pool, stats), {**attrs, state_key: "used"})

    name = "db.client.connection"
    return [
        meter.create_observable_up_down_counter(
            f"{name}.count", observe(count), unit="{connection}",
            description="Connections in the pool, by state"),
        meter.create_observable_up_down_counter(
            f"{name}.idle.min", observe(lambda p, s, a: [Observation(s["pool_min"], a)]),
            unit="{connection}", description="min_size: connections kept open"),
        meter.create_observable_up_down_counter(
            f"{name}.max", observe(lambda p, s, a: [Observation(s["pool_max"], a)]),
            unit="{connection}", description="max_size: connections allowed"),
        meter.create_observable_up_down_counter(
            f"{name}.pending_requests",
            observe(lambda p, s, a: [Observation(s["requests_waiting"], a)]),
            unit="{request}", description="Requests waiting for a connection"),
        meter.create_observable_counter(
            f"{name}.timeouts", observe(lambda p, s, a: [Observation(p._failed_requests_total(), a)]),
            unit="{timeout}", description="Requests that failed: timeouts, too many waiting, closed pool"),
    ]


__all__ = ["PoolCollector", "instrument_opentelemetry"]
