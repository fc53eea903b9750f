"""What every pool shares and that does no I/O: argument checks, statistics,
jitter and reconnection backoff."""

from __future__ import annotations

import bisect
import itertools
import logging
import math
import random
import threading
import typing
from typing import Any, Callable

from . import _constants as _shared

# psycopg.pq.TransactionStatus values, as plain ints (the pools import them from here)
from ._constants import ACTIVE as ACTIVE
from ._constants import IDLE as IDLE
from ._constants import INERROR as INERROR
from ._constants import INTRANS as INTRANS
from ._constants import UNKNOWN as UNKNOWN
from ._core import MAX_CAPACITY, Counters
from .errors import PoolTimeout

logger: logging.Logger = logging.getLogger("psycopg.pool")

# Idle slots the ring is sized for when max_size is small: resize() can grow the
# pool up to this (or to the initial max_size, if larger) without a new ring.
MIN_SLOT_CAPACITY = 1024

STATUS_NAMES = {
    IDLE: "IDLE",
    ACTIVE: "ACTIVE",
    INTRANS: "INTRANS",
    INERROR: "INERROR",
    UNKNOWN: "UNKNOWN",
}

_pool_names = itertools.count(1)


def _seconds(name: str, value: Any) -> float:
    """A number of seconds as a float. ``inf`` (and an int too large for a
    float) means no limit; callers that wait clamp it (``clamp_wait``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, got {type(value).__name__}")
    try:
        seconds = float(value)
    except OverflowError:  # an int beyond a float's range: as good as infinite
        seconds = math.inf if value > 0 else -math.inf
    if math.isnan(seconds):
        raise ValueError(f"{name} must be a number of seconds, got nan")
    return seconds


def _positive_number(name: str, value: Any, *, allow_zero: bool = False) -> float:
    seconds = _seconds(name, value)
    if seconds < 0 or (seconds == 0 and not allow_zero):
        need = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be {need}, got {value!r}")
    return seconds


def check_timeout(value: Any, name: str = "timeout") -> float:
    """A timeout in seconds: a non-negative int or float (``inf``: no limit)."""
    return _positive_number(name, value, allow_zero=True)


def clamp_wait(seconds: float) -> float:
    """``seconds`` as a timeout the threading primitives accept: beyond
    ``threading.TIMEOUT_MAX`` (about 292 years) they raise OverflowError."""
    return seconds if seconds < threading.TIMEOUT_MAX else threading.TIMEOUT_MAX


# libpq reads connect_timeout as a C int: a longer wait is "no limit of ours".
_MAX_CONNECT_TIMEOUT = 2**31 - 1


def connect_timeout(seconds: float) -> int | None:
    """The ``connect_timeout`` for a connection attempt that may take
    ``seconds``: whole seconds, at least 1 (as psycopg_pool); None (leave the
    conninfo's own) when there is no usable limit."""
    if seconds >= _MAX_CONNECT_TIMEOUT:
        return None
    return max(round(seconds), 1)


def check_capacity(name: str, size: int) -> None:
    """A pool size must fit the slot ring (fastpool._core MAX_CAPACITY)."""
    if size > MAX_CAPACITY:
        raise ValueError(f"{name} must be at most {MAX_CAPACITY}, got {size}")


def check_callable(name: str, value: Any) -> None:
    if value is not None and not callable(value):
        raise TypeError(f"{name} must be callable or None, got {type(value).__name__}")


def check_left_idle(conn: Any, role: str, fn: Any) -> None:
    """A ``configure`` or ``reset`` callback must leave the connection IDLE."""
    status = conn.pgconn.transaction_status
    if status != IDLE:
        from psycopg import errors

        raise errors.ProgrammingError(
            f"connection left in status {STATUS_NAMES.get(status, status)} by {role} function {fn}: discarded"
        )


def prepared_two_phase(conn: Any) -> bool:
    """A returned IDLE connection still bound to a two-phase transaction (after
    ``tpc_prepare()``): its commit() and rollback() would always fail, so it
    must not be handed out again. Logs why it will be closed."""
    xid = getattr(conn, "_tpc", None)
    if xid is None:
        return False
    logger.warning(
        "closing returned connection with an unfinished two-phase transaction %s"
        " (finish it with tpc_commit() or tpc_rollback() before returning it): %s",
        xid[0],
        conn,
    )
    return True


def check_pool_arguments(connection_class: Any, open: Any, **callbacks: Any) -> None:
    """Checks shared by the sync and async pool constructors."""
    # A parametrised generic such as ``psycopg.Connection[DictRow]`` (how
    # psycopg documents typed pools) is checked through its class; the alias
    # itself is kept: its ``connect()`` is the class's.
    cls = typing.get_origin(connection_class) or connection_class
    if not isinstance(cls, type) or not callable(getattr(cls, "connect", None)):
        raise TypeError(
            f"connection_class must be a connection class with a connect() classmethod, "
            f"got {connection_class!r}"
        )
    for cb_name, cb in callbacks.items():
        check_callable(cb_name, cb)
    if open is not None and not isinstance(open, bool):
        raise TypeError(f"open must be True, False or None, got {type(open).__name__}")


class Stats:
    """psycopg_pool's counters, kept in atomic core counters.

    Times are accumulated in microseconds and reported in milliseconds, so many
    sub-millisecond waits don't round down to zero each."""

    REQUESTS_NUM = "requests_num"
    REQUESTS_QUEUED = "requests_queued"
    REQUESTS_WAIT_MS = "requests_wait_ms"
    REQUESTS_ERRORS = "requests_errors"
    USAGE_MS = "usage_ms"
    RETURNS_BAD = "returns_bad"
    CONNECTIONS_NUM = "connections_num"
    CONNECTIONS_MS = "connections_ms"
    CONNECTIONS_ERRORS = "connections_errors"
    CONNECTIONS_LOST = "connections_lost"
    CONNECTIONS_LEAKED = "connections_leaked"

    # The counters' order, which the fast paths index too.
    KEYS = _shared.STAT_KEYS
    _MS_KEYS = frozenset((REQUESTS_WAIT_MS, USAGE_MS, CONNECTIONS_MS))
    # Index of each key in the Counters array (attribute lookups on the hot path
    # use the module-level ints I_REQUESTS_NUM and I_USAGE_MS).
    INDEX = _shared.STAT_INDEX

    def __init__(self) -> None:
        self.counters: Counters = Counters(len(self.KEYS))

    def add(self, key: str, n: int = 1) -> None:
        self.counters.add(self.INDEX[key], n)

    def add_ms(self, key: str, seconds: float) -> None:
        self.counters.add(self.INDEX[key], int(seconds * 1_000_000))

    def _as_dict(self, values: list[int]) -> dict[str, int]:
        out: dict[str, int] = {}
        for key, value in zip(self.KEYS, values):
            if key in self._MS_KEYS:
                value //= 1000
            if value:  # like psycopg's Counter: a key is absent until non-zero
                out[key] = value
        return out

    def get(self) -> dict[str, int]:
        return self._as_dict(self.counters.snapshot())

    def pop(self) -> dict[str, int]:
        return self._as_dict(self.counters.pop())


class Histograms:
    """Wait, use and connect times as cumulative-friendly histograms in atomic
    core counters that pop_stats() never resets (so exporters can treat them
    as monotonic), and the running count of checkout timeouts. The layout and
    the fine, fixed bucket bounds (seconds) are ``fastpool._constants``',
    which the compiled hot path reads too; sums are in microseconds.

    wait: time to obtain a connection (0 for a checkout that found one idle);
    use: from the start of ``with pool.connection()`` to the return;
    create: connection attempts, successful or not."""

    BOUNDS = _shared.BOUNDS
    NBUCKETS = _shared.NBUCKETS  # the last one is +Inf
    WAIT, USE, CREATE = _shared.WAIT, _shared.USE, _shared.CREATE  # first bucket of each
    SUMS = _shared.SUMS  # WAIT sum, USE sum, CREATE sum
    TIMEOUTS = _shared.TIMEOUTS  # checkouts that raised PoolTimeout
    SIZE = _shared.SIZE
    NAMES = ("wait", "use", "create")

    def __init__(self) -> None:
        self.counters: Counters = Counters(self.SIZE)

    def observe(self, kind: int, seconds: float) -> None:
        # bisect_left: a value equal to a bound counts in that bound's bucket
        # (Prometheus' "le"), as in the compiled twin's loop.
        self.counters.add2(
            kind + bisect.bisect_left(self.BOUNDS, seconds),
            1,
            self.SUMS + kind // self.NBUCKETS,
            int(seconds * 1_000_000),
        )

    def snapshot(self) -> dict[str, tuple[list[int], float]]:
        """name -> (count per bucket of BOUNDS and +Inf, not cumulative; sum in seconds)."""
        values = self.counters.snapshot()
        out: dict[str, tuple[list[int], float]] = {}
        for i, name in enumerate(self.NAMES):
            kind = i * self.NBUCKETS
            out[name] = (values[kind : kind + self.NBUCKETS], values[self.SUMS + i] / 1e6)
        return out

    def timeouts(self) -> int:
        return self.counters.get(self.TIMEOUTS)


class PoolMetrics(typing.NamedTuple):
    """A pool's metrics read at one moment: what ``pool.get_metrics()`` returns
    and the exporters (``fastpool.metrics``) report, named after
    OpenTelemetry's ``db.client.connection.*`` metrics.

    ``pool_name``: the pool's ``name``; ``idle``: connections in the pool, not
    checked out; ``used``: connections checked out (or being checked, reset or
    replaced by the pool); ``idle_min``: ``min_size``; ``idle_max``: how many
    may be idle at once; ``max``: how many may be open at once;
    ``pending_requests``: requests waiting for a connection; ``timeouts``:
    checkouts that raised PoolTimeout since the pool was made; ``histograms``:
    ``"wait"``, ``"use"`` and ``"create"`` times, each as (count per bucket of
    ``fastpool.metrics.HISTOGRAM_BOUNDS`` then +Inf, not cumulative; sum in
    seconds). The counts and sums only grow: ``pop_stats()`` resets none."""

    pool_name: str
    idle: int
    used: int
    idle_min: int
    idle_max: int
    max: int
    pending_requests: int
    timeouts: int
    histograms: dict[str, tuple[list[int], float]]  # Histograms.snapshot()


I_REQUESTS_NUM = _shared.I_REQUESTS_NUM
I_USAGE_MS = _shared.I_USAGE_MS


class AttemptWithBackoff:
    """Delays between reconnection attempts: exponential, with jitter, within a
    time budget. Class attributes are the knobs (tests patch them)."""

    INITIAL_DELAY = 1.0
    DELAY_JITTER = 0.1
    DELAY_BACKOFF = 2.0
    # fastpool keeps refilling after a give-up; the delay between rounds is capped.
    MAX_DELAY = 30.0

    def __init__(self, *, timeout: float) -> None:
        self.timeout: float = timeout
        self.delay: float = 0.0
        self.give_up_at: float = 0.0

    def update_delay(self, now: float) -> None:
        """Compute the delay before the next attempt, after a failure at ``now``."""
        if not self.delay:
            self.give_up_at = now + self.timeout
            self.delay = PoolCommon._jitter(
                self.INITIAL_DELAY, -self.DELAY_JITTER, self.DELAY_JITTER
            )
        else:
            self.delay *= self.DELAY_BACKOFF
        self.delay = min(self.delay, self.MAX_DELAY)
        if self.delay + now > self.give_up_at:
            self.delay = max(0.0, self.give_up_at - now)

    def time_to_give_up(self, now: float) -> bool:
        return bool(self.give_up_at) and now >= self.give_up_at


class PoolCommon:
    """Configuration and statistics common to every fastpool pool (the psycopg
    pools' and the DB-API ``Pool``'s)."""

    # No defaults here: they are psycopg_pool's, stated in AsyncConnectionPool's
    # signature (ConnectionPool's is generated from it) and restated in Pool's
    # and the null pools' (checked against it by tests/dbapi/test_dbapi_family.py
    # and tests/typing/test_typing.py); each constructor passes every setting
    # on, so one it forgets is an error rather than a silent default. Restated,
    # not shared: users of a drop-in need explicit keyword parameters that mypy,
    # pyright and inspect.signature() all see, which ``**kwargs:
    # Unpack[TypedDict]`` would hide (the defaults, the run-time signature), and
    # a generated signature is one more mechanism for a list that rarely changes.
    def __init__(
        self,
        *,
        min_size: int,
        max_size: int | None,
        name: str | None,
        timeout: float,
        max_waiting: int,
        max_lifetime: float,
        max_idle: float,
        reconnect_timeout: float,
        reconnect_failed: Callable[[Any], Any] | None,
        num_workers: int,
        check_bypass: float,
        fork_safe: bool,
        leak_threshold: float | None,
    ) -> None:
        min_size, max_size = self._check_size(min_size, max_size)
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a str or None, got {type(name).__name__}")
        if isinstance(num_workers, bool) or not isinstance(num_workers, int):
            raise TypeError(f"num_workers must be an int, got {type(num_workers).__name__}")
        if num_workers < 1:
            raise ValueError("num_workers must be at least 1")
        if isinstance(max_waiting, bool) or not isinstance(max_waiting, int):
            raise TypeError(f"max_waiting must be an int, got {type(max_waiting).__name__}")
        if max_waiting < 0:
            raise ValueError(f"max_waiting must be >= 0 (0 means unlimited), got {max_waiting}")
        check_callable("reconnect_failed", reconnect_failed)

        self._min_size = min_size
        self._max_size = max_size
        self.name: str = name if name is not None else f"pool-{next(_pool_names)}"
        self.timeout: float = self._check_pool_timeout(timeout)
        self.max_waiting: int = max_waiting
        self.max_lifetime: float = _positive_number("max_lifetime", max_lifetime)
        self.max_idle: float = _positive_number("max_idle", max_idle)
        self.reconnect_timeout: float = _positive_number(
            "reconnect_timeout", reconnect_timeout, allow_zero=True
        )
        self._reconnect_failed = reconnect_failed
        self.num_workers: int = num_workers
        self.check_bypass: float = _positive_number("check_bypass", check_bypass, allow_zero=True)
        # Seconds a connection may stay checked out before it is reported as a
        # possible leak; 0 (from None, or inf: no limit) is off, which also
        # saves the stack capture on each checkout.
        self._leak_threshold = (
            0.0 if leak_threshold is None else _positive_number("leak_threshold", leak_threshold)
        )
        if self._leak_threshold == math.inf:
            self._leak_threshold = 0.0
        self.fork_safe: bool = bool(fork_safe)
        self._stats = Stats()
        self._histograms = Histograms()
        self._opened = False
        self._closed = True

    def _check_size(self, min_size: Any, max_size: Any) -> tuple[int, int]:
        if isinstance(min_size, bool) or not isinstance(min_size, int):
            raise TypeError(f"min_size must be an int, got {type(min_size).__name__}")
        max_size_given = max_size is not None
        if max_size is None:
            max_size = min_size
        elif isinstance(max_size, bool) or not isinstance(max_size, int):
            raise TypeError(f"max_size must be an int or None, got {type(max_size).__name__}")
        if min_size < 0:
            raise ValueError("min_size cannot be negative")
        if max_size < min_size:
            raise ValueError("max_size must be greater or equal than min_size")
        if min_size == max_size == 0:
            raise ValueError("max_size must be greater than 0 when min_size is 0")
        check_capacity("max_size" if max_size_given else "min_size", max_size)
        return min_size, max_size

    # What getconn(timeout=0) means. psycopg_pool: the caller has no time left
    # (code like ``getconn(timeout=deadline - monotonic())`` relies on it), so
    # any timeout <= 0 raises PoolTimeout, even with a connection idle.
    # fastpool.Pool sets this: there 0 means "don't wait", as in the pools of
    # psycopg2, MySQL Connector and SQLAlchemy, and a negative timeout is an error.
    _nowait_at_zero = False

    def _check_pool_timeout(self, timeout: Any) -> float:
        """The constructor's ``timeout``: the default of every getconn()."""
        if self._nowait_at_zero:
            return check_timeout(timeout)
        seconds = _seconds("timeout", timeout)
        if seconds <= 0:
            raise ValueError(
                f"timeout must be > 0, got {timeout!r}: with no time to wait, every"
                " getconn() would raise PoolTimeout (pass inf for no limit)"
            )
        return seconds

    def _request_timeout(self, timeout: Any) -> float:
        """A getconn()'s ``timeout`` in seconds (None: the pool's). TypeError or
        ValueError if it isn't a number of seconds; for the psycopg pools a
        value <= 0 is accepted here and refused by ``_refuse_if_no_time``."""
        if timeout is None:
            return self.timeout
        if self._nowait_at_zero:
            return check_timeout(timeout)
        return _seconds("timeout", timeout)

    def _refuse_if_no_time(self, timeout: float) -> None:
        """PoolTimeout for a psycopg pool's getconn() with ``timeout <= 0``,
        before anything is taken, as psycopg_pool does (which counts it in
        requests_num only, not in requests_errors)."""
        if timeout <= 0 and not self._nowait_at_zero:
            raise self._checkout_timed_out(timeout)

    def _checkout_timed_out(self, timeout: float) -> PoolTimeout:
        """The PoolTimeout a checkout raises (every pool's, from every path:
        the caller raises it), counted for the exporters'
        ``db.client.connection.timeouts``. Only timeouts: TooManyRequests or
        PoolClosed are in psycopg_pool's ``requests_errors``, not here."""
        self._histograms.counters.add(Histograms.TIMEOUTS)
        return PoolTimeout(f"couldn't get a connection after {timeout:.2f} sec")

    def __repr__(self) -> str:
        return f"<{self.__class__.__module__}.{self.__class__.__name__} {self.name!r} at 0x{id(self):x}>"

    @property
    def min_size(self) -> int:
        return self._min_size

    @property
    def max_size(self) -> int:
        return self._max_size

    @property
    def leak_threshold(self) -> float | None:
        """Seconds after which a checked-out connection is reported as a
        possible leak (None: off)."""
        return self._leak_threshold or None

    @property
    def closed(self) -> bool:
        """True if the pool is closed (or not opened yet)."""
        return self._closed

    def reconnect_failed(self) -> None:
        """Called when reconnecting gives up; runs the ``reconnect_failed`` callback."""
        if self._reconnect_failed:
            self._reconnect_failed(self)

    @classmethod
    def _jitter(cls, value: float, min_pc: float, max_pc: float) -> float:
        """Add a random change to ``value``, between ``min_pc`` and ``max_pc`` of it."""
        return value * (1.0 + ((max_pc - min_pc) * random.random()) + min_pc)

    # Statistics -----------------------------------------------------------

    def _get_measures(self) -> dict[str, int]:
        raise NotImplementedError

    def get_metrics(self) -> PoolMetrics:
        """Return the pool's metrics now (a ``PoolMetrics``): its connection
        gauges, timeouts and wait/use/create histograms, what the exporters of
        ``fastpool.metrics`` report. Resets nothing, unlike ``pop_stats()``."""
        raise NotImplementedError

    def get_stats(self) -> dict[str, int]:
        """Return current stats about the pool usage."""
        rv = self._get_measures()
        rv.update(self._stats.get())
        return rv

    def pop_stats(self) -> dict[str, int]:
        """Return current stats about the pool usage, and reset the counters."""
        rv = self._get_measures()
        rv.update(self._stats.pop())
        return rv


class BasePool(PoolCommon):
    """psycopg_pool's ``BasePool``: ``PoolCommon`` and what a psycopg pool
    connects with (``conninfo``, ``kwargs``)."""

    # Any here: each pool declares what it accepts (fastpool.abc)
    conninfo: Any
    kwargs: Any

    def __init__(self, conninfo: Any = "", *, kwargs: Any = None, **settings: Any) -> None:
        if not isinstance(conninfo, str) and not callable(conninfo):
            raise TypeError(
                f"conninfo must be a str or a callable returning one, got {type(conninfo).__name__}"
            )
        if kwargs is not None and not isinstance(kwargs, dict) and not callable(kwargs):
            raise TypeError(
                f"kwargs must be a dict, a callable returning one, or None, got {type(kwargs).__name__}"
            )
        super().__init__(**settings)
        self.conninfo = conninfo
        self.kwargs = kwargs

    def _resolve_conninfo(self) -> str:
        return self._check_conninfo(self.conninfo() if callable(self.conninfo) else self.conninfo)

    @staticmethod
    def _check_conninfo(conninfo: Any) -> str:
        if not isinstance(conninfo, str):
            raise TypeError(
                f"the conninfo callable must return a str, got {type(conninfo).__name__}"
            )
        return conninfo or ""

    def _resolve_kwargs(self) -> dict[str, Any]:
        return self._check_kwargs(self.kwargs() if callable(self.kwargs) else self.kwargs)

    @staticmethod
    def _check_kwargs(kwargs: Any) -> dict[str, Any]:
        if kwargs is None:
            return {}
        if not isinstance(kwargs, dict):
            raise TypeError(f"the kwargs callable must return a dict, got {type(kwargs).__name__}")
        return kwargs
