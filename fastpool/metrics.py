"""Pool metrics for Prometheus and OpenTelemetry, under OpenTelemetry's database
client semantic conventions (``db.client.connection.*``).

    from prometheus_client import REGISTRY
    from fastpool.metrics import PoolCollector, instrument_opentelemetry

    REGISTRY.register(PoolCollector(pool, other_pool))   # sync and async pools alike
    instrument_opentelemetry(pool, other_pool)           # the global MeterProvider

Both report the same metrics (``METRICS``), with the same values: the
OpenTelemetry instruments under the conventions' names and attributes, the
Prometheus families under the names OpenTelemetry's Prometheus exporters give
them ("Prometheus and OpenMetrics compatibility": dots to underscores, the
unit as a suffix, ``_total`` for a counter), e.g. ``db.client.connection.count``
``{db.client.connection.state="idle"}`` is
``db_client_connection_count{db_client_connection_state="idle"}``. The three
time histograms are Prometheus only: OpenTelemetry's API has no asynchronous
histogram (see docs/metrics.md).

Everything is read when the exporter collects: the pools keep their counters
and histograms in atomic core counters, so there is no per-request cost beyond
what the pool already does, and ``pop_stats()`` never resets what is exported.
Needs ``prometheus-client`` (``pip install 'fastpool[metrics]'``) or
``opentelemetry-api`` (``pip install 'fastpool[opentelemetry]'``).
"""

from __future__ import annotations

import bisect
import itertools
import math
import numbers
import re
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, NamedTuple

from .base import Histograms, PoolCommon, PoolMetrics

if TYPE_CHECKING:  # the exporters' libraries are optional: imported where used
    from opentelemetry.metrics import (
        Asynchronous,
        CallbackOptions,
        CallbackT,
        MeterProvider,
        Observation,
    )
    from prometheus_client.metrics_core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
        Metric,
    )


class MetricSpec(NamedTuple):
    """One metric as OpenTelemetry's semantic conventions define it."""

    name: str  # the conventions' name
    instrument: str  # "updowncounter", "counter" or "histogram"
    unit: str  # UCUM, as in the conventions
    description: str


COUNT = MetricSpec(
    "db.client.connection.count",
    "updowncounter",
    "{connection}",
    "Connections in the pool, by state: idle, or used (checked out)",
)
IDLE_MAX = MetricSpec(
    "db.client.connection.idle.max",
    "updowncounter",
    "{connection}",
    "The most connections that may be idle at once",
)
IDLE_MIN = MetricSpec(
    "db.client.connection.idle.min",
    "updowncounter",
    "{connection}",
    "min_size: connections kept open even when idle",
)
MAX = MetricSpec(
    "db.client.connection.max",
    "updowncounter",
    "{connection}",
    "The most connections that may be open at once (max_size)",
)
PENDING_REQUESTS = MetricSpec(
    "db.client.connection.pending_requests",
    "updowncounter",
    "{request}",
    "Requests waiting for a connection",
)
TIMEOUTS = MetricSpec(
    "db.client.connection.timeouts",
    "counter",
    "{timeout}",
    "Requests for a connection that ended in PoolTimeout",
)
CREATE_TIME = MetricSpec(
    "db.client.connection.create_time",
    "histogram",
    "s",
    "Time to open a connection, per attempt (failed ones too)",
)
WAIT_TIME = MetricSpec(
    "db.client.connection.wait_time",
    "histogram",
    "s",
    "Time to obtain a connection from the pool (0 when one was idle)",
)
USE_TIME = MetricSpec(
    "db.client.connection.use_time",
    "histogram",
    "s",
    "Time from hand-out to return of a connection used in pool.connection()",
)

# Every metric both exporters report (the histograms: PoolCollector only).
METRICS = (
    COUNT,
    IDLE_MAX,
    IDLE_MIN,
    MAX,
    PENDING_REQUESTS,
    TIMEOUTS,
    CREATE_TIME,
    WAIT_TIME,
    USE_TIME,
)

# Attributes (labels): every metric has the pool's name, COUNT the state too.
POOL_NAME = "db.client.connection.pool.name"
STATE = "db.client.connection.state"

# The histograms' key in PoolMetrics.histograms.
_HISTOGRAM_KEYS = {CREATE_TIME: "create", WAIT_TIME: "wait", USE_TIME: "use"}

# The bounds the pools count times in; PoolCollector's ``buckets`` is any
# increasing subset of them.
HISTOGRAM_BOUNDS: tuple[float, ...] = Histograms.BOUNDS
# fastpool's former fixed buckets, 100 µs to 10 s.
DEFAULT_BUCKETS: tuple[float, ...] = (
    0.0001,
    0.0005,
    0.001,
    0.005,
    0.01,
    0.05,
    0.1,
    0.5,
    1.0,
    5.0,
    10.0,
)


# OpenTelemetry -> Prometheus names ----------------------------------------

_UNITS = {"s": "seconds"}  # the only unit with a Prometheus name among METRICS


def _sanitize(name: str, invalid: str) -> str:
    # Each invalid character becomes an underscore, then each run of
    # underscores one underscore.
    return re.sub(r"__+", "_", re.sub(invalid, "_", name))


def _prometheus_label(key: str) -> str:
    """An attribute key as a Prometheus label name."""
    return _sanitize(key, r"[^a-zA-Z0-9_]")


def _prometheus_name(spec: MetricSpec) -> str:
    """The name an OpenTelemetry Prometheus exporter gives ``spec``'s metric:
    the sanitized name, then the unit's suffix (none for an annotation such
    as ``{connection}``). A counter's ``_total`` is added to its samples by
    prometheus_client's CounterMetricFamily."""
    name = _sanitize(spec.name, r"[^a-zA-Z0-9_:]")
    unit = "" if spec.unit.startswith("{") else _UNITS[spec.unit]
    if unit and not name.endswith(f"_{unit}"):
        name = f"{name}_{unit}"
    return name


# Checks -------------------------------------------------------------------


def _check_pools(who: str, pools: tuple[object, ...]) -> tuple[PoolCommon, ...]:
    if not pools:
        raise ValueError(f"{who} needs at least one pool")
    checked: list[PoolCommon] = []
    for p in pools:
        if not isinstance(p, PoolCommon):
            raise TypeError(
                f"not a fastpool pool: {type(p).__name__} (pass fastpool's ConnectionPool,"
                " AsyncConnectionPool, null pools or fastpool.Pool)"
            )
        if any(p.name == other.name for other in checked):
            raise ValueError(
                f"two pools are named {p.name!r}: give each pool its own name= (the metrics"
                " tell pools apart by name)"
            )
        checked.append(p)
    return tuple(checked)


def _check_buckets(buckets: Iterable[float]) -> tuple[int, ...]:
    """``buckets`` (seconds) as indices into HISTOGRAM_BOUNDS; or TypeError or
    ValueError saying what to pass. A final +Inf is accepted and dropped (the
    +Inf bucket is always reported), as prometheus_client does."""
    if isinstance(buckets, (str, bytes)) or not isinstance(buckets, Iterable):
        raise TypeError(f"buckets must be a sequence of seconds, got {type(buckets).__name__}")
    values = list(buckets)
    for v in values:
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            raise TypeError(f"buckets must be numbers of seconds, got {v!r}")
    seconds = [float(v) for v in values]
    if seconds and seconds[-1] == math.inf:
        seconds.pop()
    if not seconds:
        raise ValueError("buckets needs at least one finite bound (+Inf is always added)")
    for v in seconds:
        if not (math.isfinite(v) and v > 0):
            raise ValueError(
                f"bucket bounds must be positive, finite numbers of seconds, got {v!r}"
            )
    for a, b in zip(seconds, seconds[1:]):
        if b <= a:
            raise ValueError(f"bucket bounds must increase, without repeats: got {a!r} then {b!r}")
    indices = []
    for v in seconds:
        i = bisect.bisect_left(HISTOGRAM_BOUNDS, v)
        # v may be a bound with a rounding error (3 * 0.025 is not 0.075); the
        # bounds are far enough apart for a tolerance not to mistake one.
        near = [
            j
            for j in (i - 1, i)
            if 0 <= j < len(HISTOGRAM_BOUNDS) and math.isclose(HISTOGRAM_BOUNDS[j], v, rel_tol=1e-6)
        ]
        if not near:
            nearest = ", ".join(
                repr(HISTOGRAM_BOUNDS[j]) for j in (i - 1, i) if 0 <= j < len(HISTOGRAM_BOUNDS)
            )
            raise ValueError(
                f"{v!r} s is not one of the bounds the pools count times in"
                " (fastpool.metrics.HISTOGRAM_BOUNDS), so no bucket can end there exactly;"
                f" nearest bounds: {nearest}"
            )
        indices.append(near[0])
    return tuple(indices)


def _points(m: PoolMetrics) -> Iterator[tuple[MetricSpec, tuple[tuple[str, str], ...], int]]:
    """What both exporters report of a pool, but the histograms: (metric,
    attributes besides the pool's name, value)."""
    yield COUNT, ((STATE, "idle"),), m.idle
    yield COUNT, ((STATE, "used"),), m.used
    yield IDLE_MAX, (), m.idle_max
    yield IDLE_MIN, (), m.idle_min
    yield MAX, (), m.max
    yield PENDING_REQUESTS, (), m.pending_requests
    yield TIMEOUTS, (), m.timeouts


# Prometheus ---------------------------------------------------------------


class PoolCollector:
    """A prometheus_client collector for one or more fastpool pools (register
    one collector for all of them: the registry refuses a second one, whose
    names would repeat the first's).

    ``buckets``: the histograms' bucket bounds in seconds, any increasing
    subset of ``HISTOGRAM_BOUNDS`` (the pools count in those fine, fixed
    buckets, so a subset is reported exactly); default ``DEFAULT_BUCKETS``."""

    pools: tuple[PoolCommon, ...]
    buckets: tuple[float, ...]

    def __init__(self, *pools: PoolCommon, buckets: Iterable[float] = DEFAULT_BUCKETS) -> None:
        self.pools = _check_pools("PoolCollector", pools)
        self._bucket_ends = _check_buckets(buckets)
        self.buckets = tuple(HISTOGRAM_BOUNDS[i] for i in self._bucket_ends)

    def describe(self) -> list[Metric]:
        # The names (no samples), so that a registry refuses to repeat them.
        gauges, counters, histograms = self._families()
        return [*gauges.values(), *counters.values(), *histograms.values()]

    def _families(
        self,
    ) -> tuple[
        dict[MetricSpec, GaugeMetricFamily],
        dict[MetricSpec, CounterMetricFamily],
        dict[MetricSpec, HistogramMetricFamily],
    ]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        gauges, counters, histograms = {}, {}, {}
        for spec in METRICS:
            name, unit = _prometheus_name(spec), _UNITS.get(spec.unit, "")
            labels = [_prometheus_label(POOL_NAME)]
            if spec is COUNT:
                labels.append(_prometheus_label(STATE))
            if spec.instrument == "updowncounter":  # a gauge for Prometheus
                gauges[spec] = GaugeMetricFamily(name, spec.description, labels=labels, unit=unit)
            elif spec.instrument == "counter":
                counters[spec] = CounterMetricFamily(
                    name, spec.description, labels=labels, unit=unit
                )
            else:
                histograms[spec] = HistogramMetricFamily(
                    name, spec.description, labels=labels, unit=unit
                )
        return gauges, counters, histograms

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.utils import floatToGoString

        # "le" as prometheus_client's own histograms write it (untyped there)
        go_float: Callable[[float], str] = floatToGoString
        gauges, counters, histograms = self._families()
        ends = self._bucket_ends
        les = [go_float(HISTOGRAM_BOUNDS[i]) for i in ends]
        for pool in self.pools:
            m = pool.get_metrics()
            for spec, attrs, value in _points(m):
                labels = [m.pool_name, *(v for _, v in attrs)]
                if spec in counters:
                    counters[spec].add_metric(labels, value)
                else:
                    gauges[spec].add_metric(labels, value)
            for spec, family in histograms.items():
                counts, total = m.histograms[_HISTOGRAM_KEYS[spec]]
                # The fine buckets up to each chosen bound: exact.
                cumulative = list(itertools.accumulate(counts))
                buckets = [(le, float(cumulative[i])) for le, i in zip(les, ends)]
                buckets.append(("+Inf", float(cumulative[-1])))
                family.add_metric([m.pool_name], buckets, total)
        yield from gauges.values()
        yield from counters.values()
        yield from histograms.values()


# OpenTelemetry ------------------------------------------------------------


def instrument_opentelemetry(
    *pools: PoolCommon, meter_provider: MeterProvider | None = None
) -> list[Asynchronous]:
    """Report ``pools`` through OpenTelemetry's metrics API under the semantic
    conventions' names and attributes (``db.client.connection.pool.name``,
    ``db.client.connection.state``): ``db.client.connection.count``,
    ``.idle.max``, ``.idle.min``, ``.max``, ``.pending_requests`` and
    ``.timeouts``, observable instruments read at export time (no per-request
    cost); the values ``PoolCollector`` reports.

    The wait/use/create time histograms are not among them: OpenTelemetry's
    API has no asynchronous histogram, and recording each checkout in a
    synchronous one would cost several microseconds a checkout, more than the
    pool's own work. Export those with ``PoolCollector`` (an OpenTelemetry
    Collector can scrape it). Returns the instruments. Needs
    ``opentelemetry-api``; ``meter_provider`` defaults to the global one."""
    from opentelemetry import metrics
    from opentelemetry.metrics import Observation

    from . import __version__

    checked = _check_pools("instrument_opentelemetry", pools)
    provider = meter_provider or metrics.get_meter_provider()
    meter = provider.get_meter("fastpool", __version__)

    def callback(spec: MetricSpec) -> list[CallbackT]:
        def observe(options: CallbackOptions) -> Iterator[Observation]:
            for pool in checked:
                m = pool.get_metrics()
                for point_spec, attrs, value in _points(m):
                    if point_spec is spec:
                        yield Observation(value, {POOL_NAME: m.pool_name, **dict(attrs)})

        return [observe]

    create: dict[str, Callable[..., Asynchronous]] = {
        "updowncounter": meter.create_observable_up_down_counter,
        "counter": meter.create_observable_counter,
    }
    return [
        create[spec.instrument](
            spec.name, callback(spec), unit=spec.unit, description=spec.description
        )
        for spec in METRICS
        if spec.instrument in create
    ]


__all__ = [
    "DEFAULT_BUCKETS",
    "HISTOGRAM_BOUNDS",
    "METRICS",
    "MetricSpec",
    "PoolCollector",
    "PoolMetrics",
    "instrument_opentelemetry",
]
