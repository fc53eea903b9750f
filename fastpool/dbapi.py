"""``fastpool.Pool``: the same pool for any DB-API 2.0 driver.

``Pool(connect=lambda: pymysql.connect(...))`` pools whatever ``connect()``
returns (psycopg2, PyMySQL, MySQL Connector, MariaDB Connector, sqlite3, ...)
with ConnectionPool's machinery: the lock-free ring, FIFO waiting with
timeouts and ``max_waiting``, growth and reconnection with backoff,
``max_lifetime``/``max_idle``, leak detection, fork safety and stats.

A checkout hands out a ``PooledConnection``: a thin stand-in that forwards
everything to the driver's connection, and whose ``close()`` gives it back to
the pool (MySQL Connector's pooled connections behave the same way). A new
stand-in per checkout means a reference kept after ``close()`` can't reach the
connection once somebody else has it.

On return the connection is rolled back if the driver says it is in a
transaction (or can't say), and discarded if that fails or the driver reports
it closed; ``pre_ping=True`` checks each connection before handing it out.
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import TYPE_CHECKING, Any, Callable, Generic, NoReturn, Protocol, TypeVar, overload

from . import base
from ._conn_protocol import DBAPI
from ._core import PoolHotPath
from ._driver_traits import DriverTraits, traits_of
from ._fork import reinit_in_forked_child
from ._pool_logic import DISCARDED
from .base import Stats
from .errors import PoolClosed
from .pool import PoolCore

if TYPE_CHECKING:
    from .waiting import Waiter

monotonic: Callable[[], float] = time.monotonic

# The driver's connection type: whatever ``connect()`` returns. Not bound to a
# DB-API Protocol: typed drivers don't all declare their connections so that one
# would match (MySQL Connector's connect() may return a class that forwards
# through __getattr__), and the pool uses them through duck typing anyway.
_ConnT = TypeVar("_ConnT")
_ConnT_co = TypeVar("_ConnT_co", covariant=True)
_NewConnT = TypeVar("_NewConnT")  # a classmethod's own: pyright solves no class TypeVar there
_CursorT = TypeVar("_CursorT")
_CursorT_co = TypeVar("_CursorT_co", covariant=True)


class _HasCursor(Protocol[_CursorT_co]):
    """A connection whose ``cursor()`` returns ``_CursorT_co`` (any arguments)."""

    def cursor(self, *args: Any, **kwargs: Any) -> _CursorT_co: ...


RESET_ON_RETURN = ("rollback", "commit", None)


class ConnectionReturned(Exception):
    """A PooledConnection was used after close(): it has gone back to its pool."""

    __module__ = "fastpool"


class PoolFull(Exception):
    """``Pool.add_connection()``: the pool already has ``max_size`` connections."""

    __module__ = "fastpool"


class _Held:
    """A pooled driver connection as the pool keeps it: the slot machinery
    needs attributes (``_pool``, ``_fp_slot``) that C-level driver connections
    (sqlite3, psycopg2) can't take, so they live here."""

    __slots__ = ("raw", "traits", "_pool", "_fp_slot")

    raw: Any
    traits: DriverTraits
    _pool: Pool[Any] | None
    _fp_slot: int

    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self.traits = traits_of(raw)
        self._pool = None
        self._fp_slot = -1

    def close(self) -> None:
        self.raw.close()

    def refusal(self) -> Exception | None:
        """Why the pool can't use this connection (an error that says what to
        change: a sqlite3 connection bound to its thread), or None."""
        unshareable = self.traits.unshareable
        return None if unshareable is None else unshareable(self.raw)

    def __repr__(self) -> str:
        return f"<pooled {self.raw!r}>"


class PooledConnection(Generic[_ConnT_co]):
    """A checked-out connection. Use it as the driver's connection; ``close()``
    (or leaving ``with conn:``) gives it back to the pool.

    ``PooledConnection[C]`` stands for a driver connection of type ``C``: ``raw``
    is a ``C``, ``cursor()`` returns what ``C.cursor()`` does (when the driver
    declares it), other attributes are forwarded untyped."""

    __slots__ = ("_held", "_pool", "_invalid", "_failed")

    _held: _Held | None
    _pool: Pool[Any]
    _invalid: bool
    _failed: bool

    def __init__(self, held: _Held, pool: Pool[Any]) -> None:
        object.__setattr__(self, "_held", held)
        object.__setattr__(self, "_pool", pool)
        object.__setattr__(self, "_invalid", False)  # invalidate(): close on return
        object.__setattr__(self, "_failed", False)  # a with-block raised: ping on return

    @property
    def raw(self) -> _ConnT_co:
        """The driver's own connection (for APIs that check its type)."""
        held = self._held
        if held is None:
            raise ConnectionReturned("this connection was closed (given back to its pool)")
        return held.raw  # type: ignore[no-any-return]  # _Held keeps it untyped

    driver_connection = raw  # SQLAlchemy's name for it

    @property
    def closed(self) -> bool:
        """True once given back to the pool."""
        return self._held is None

    # Typed as the driver's cursor() when the driver's connection class declares
    # one (sqlite3, psycopg: the no-argument form's type); Any otherwise.
    @overload
    def cursor(
        self: PooledConnection[_HasCursor[_CursorT]], *args: Any, **kwargs: Any
    ) -> _CursorT: ...
    @overload
    def cursor(self, *args: Any, **kwargs: Any) -> Any: ...

    def cursor(self, *args: Any, **kwargs: Any) -> Any:
        return self.raw.cursor(*args, **kwargs)  # type: ignore[attr-defined]  # any DB-API connection

    def commit(self) -> None:
        self.raw.commit()  # type: ignore[attr-defined]  # any DB-API connection

    def rollback(self) -> None:
        self.raw.rollback()  # type: ignore[attr-defined]  # any DB-API connection

    def close(self) -> None:
        """Give the connection back to the pool (a second close() does nothing)."""
        if self._held is not None:
            self._pool.putconn(self)

    def invalidate(self) -> None:
        """Mark the connection broken: on return it is closed, not reused, and
        the pool makes a new one if it needs to."""
        object.__setattr__(self, "_invalid", True)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self.raw, name, value)

    def __enter__(self) -> PooledConnection[_ConnT_co]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        """Commit (or roll back on error), then give the connection back."""
        held = self._held
        if held is not None:  # else the block already closed it
            try:
                self._pool._finish_block(self, held, exc_type is None)
            finally:
                self._pool._return_after_block(self)  # if an interrupt came first

    def __repr__(self) -> str:
        held = self._held
        state = "returned" if held is None else repr(held.raw)
        return f"<fastpool.PooledConnection {state} from pool {self._pool.name!r}>"


# The slot's descriptor setter (bypasses __setattr__); checkers see the slot as
# the instance attribute it declares.
_set_held: Callable[[PooledConnection[Any], _Held | None], None] = PooledConnection._held.__set__  # type: ignore[misc, union-attr]


class Pool(PoolCore, Generic[_ConnT]):
    """A pool of DB-API connections made by ``connect()``.

    Sizing, waiting, lifetime and statistics parameters, and ``use_lifo``, mean
    what they mean for ``fastpool.ConnectionPool`` (psycopg_pool's names and
    defaults); the pool opens in the constructor unless ``open=False``.

    ``configure(conn)`` runs on each new connection, ``check(conn)`` before
    each checkout, ``reset(conn)`` after each return; all get the driver's
    connection. ``pre_ping=True`` is ``check=Pool.check_connection`` (the
    driver's ping, or ``SELECT 1``). ``reset_on_return`` says how an open
    transaction is ended when a connection comes back: ``"rollback"`` (default),
    ``"commit"`` or None (leave it: only for drivers you reset yourself).

    The pool is generic in the driver's connection type, inferred from
    ``connect``: ``Pool(lambda: sqlite3.connect(path))`` is a
    ``Pool[sqlite3.Connection]``, whose checkouts are
    ``PooledConnection[sqlite3.Connection]``.

    ``timeout`` (here and in ``getconn()``) is how long to wait for a
    connection: 0 hands out an idle one or raises PoolTimeout at once, without
    waiting (as the pools of psycopg2 and MySQL Connector always do); ``inf``
    waits without limit; a negative timeout is an error. (The psycopg pools
    follow psycopg_pool instead: a timeout <= 0 means no time is left, so
    PoolTimeout.)

    A sibling of ``fastpool.ConnectionPool`` over the same core, not a
    subclass: psycopg's API (``conninfo``, ``connection_class``...) is not
    here. Its records, the core's included, go to the ``fastpool`` logger."""

    _nowait_at_zero = True
    _protocol = DBAPI

    def __init__(
        self,
        connect: Callable[[], _ConnT],
        *,
        min_size: int = 4,
        max_size: int | None = None,
        open: bool = True,
        configure: Callable[[_ConnT], object] | None = None,
        check: Callable[[_ConnT], object] | None = None,
        pre_ping: bool = False,
        reset: Callable[[_ConnT], object] | None = None,
        reset_on_return: str | None = "rollback",
        name: str | None = None,
        timeout: float = 30.0,
        max_waiting: int = 0,
        max_lifetime: float = 60 * 60.0,
        max_idle: float = 10 * 60.0,
        reconnect_timeout: float = 5 * 60.0,
        reconnect_failed: Callable[[Pool[_ConnT]], None] | None = None,
        num_workers: int = 3,
        check_bypass: float = 0.0,
        fork_safe: bool = False,
        leak_threshold: float | None = None,
        use_lifo: bool = False,
    ) -> None:
        if not callable(connect):
            raise TypeError(
                f"connect must be a callable returning a DB-API connection, got {type(connect).__name__}"
            )
        if not isinstance(open, bool):
            raise TypeError(f"open must be True or False, got {type(open).__name__}")
        if not isinstance(pre_ping, bool):
            raise TypeError(f"pre_ping must be True or False, got {type(pre_ping).__name__}")
        if pre_ping and check is not None:
            raise ValueError("give either check or pre_ping=True, not both")
        if reset_on_return not in RESET_ON_RETURN:
            raise ValueError(
                f"reset_on_return must be 'rollback', 'commit' or None, got {reset_on_return!r}"
            )
        for cb_name, cb in (("configure", configure), ("check", check), ("reset", reset)):
            base.check_callable(cb_name, cb)
        super().__init__(
            min_size=min_size,
            max_size=max_size,
            name=name,
            timeout=timeout,
            max_waiting=max_waiting,
            max_lifetime=max_lifetime,
            max_idle=max_idle,
            reconnect_timeout=reconnect_timeout,
            reconnect_failed=reconnect_failed,
            num_workers=num_workers,
            check_bypass=check_bypass,
            fork_safe=fork_safe,
            leak_threshold=leak_threshold,
        )
        self._connect_fn = connect
        # Set when connect() made a connection the pool can't use (a sqlite3
        # one bound to its thread): a checkout that could only wait for a new
        # connection (the pool has none) raises it at once instead of timing out.
        self._refused: Exception | None = None
        self._user_check = self.check_connection if pre_ping else check
        self._user_reset = reset
        self.reset_on_return = reset_on_return
        # The slot machinery calls _check with what it holds: unwrap it.
        held_check = None if self._user_check is None else self._check_held
        self._init_pool(configure, held_check, None, PoolHotPath, use_lifo)
        if fork_safe:
            reinit_in_forked_child(self, type(self)._after_fork_in_child)
        if open:
            self.open()

    # ------------------------------------------------------------------
    # Checkout and return
    # ------------------------------------------------------------------

    def getconn(self, timeout: float | None = None) -> PooledConnection[_ConnT]:
        """Take a connection out of the pool; give it back with ``putconn()``
        or its ``close()``. Waits up to ``timeout`` seconds (default: the
        pool's), then raises PoolTimeout."""
        held = PoolHotPath.getconn(self, timeout)
        try:
            return PooledConnection(held, self)
        except BaseException:  # interrupted before the caller had it: back to the pool
            held._pool = None
            if self._leak_threshold:
                self._note_return(held._fp_slot)
            self._give_back(held._fp_slot)
            raise

    get_connection = getconn  # MySQL Connector's name

    def putconn(self, conn: PooledConnection[_ConnT]) -> None:
        """Give back a connection obtained with ``getconn()``."""
        if type(conn) is not PooledConnection or conn._pool is not self or conn._held is None:
            self._refuse_return(conn)
        held = conn._held
        if held._pool is not self:
            self._raise_foreign(held)
        slot = held._fp_slot
        # Set in the same step as the call that hands the slot on (no statement,
        # no signal check in between): from then on the slot is no longer ours
        # (it may be idle again, or in another caller's hands).
        given_back = -1
        try:
            _set_held(conn, None)
            held._pool = None
            slots = self._slots
            if not 0 <= slot < len(slots) or slots[slot].conn is not held:
                return  # checked out before a fork, returned in the child: the parent's
            if self._leak_threshold:
                self._note_return(slot)
            if self._closed or conn._invalid or conn._failed or self._user_reset is not None:
                if self._return_slow(slot, held, conn._invalid, conn._failed):
                    self._give_back(given_back := slot)
                return
            # The common case, kept short: an open, idle connection within its lifetime.
            if not DBAPI.is_clean(held):
                if self._return_slow(slot, held, False, False):
                    self._give_back(given_back := slot)
                return
            now = monotonic()
            rec = slots[slot]
            if now < rec.expire_at and rec.created_at > self._drained_at:
                rec.last_used = now
                self._give_back(given_back := slot)
            else:
                self._discard(slot, held)
        except BaseException:
            # Interrupted (in the rollback, the reset callback, the ping...):
            # closed and replaced unless it was not taken back yet, or already
            # handed on.
            if conn._held is held:
                raise  # nothing happened: the caller still has it
            if given_back != slot:
                self._drop_interrupted(slot, held)
            raise

    def _refuse_return(self, conn: object) -> NoReturn:
        if type(conn) is not PooledConnection:
            raise TypeError(
                f"putconn() takes a connection from pool {self.name!r}'s getconn(),"
                f" got {type(conn).__name__}"
            )
        if conn._pool is not self:
            raise ValueError(
                f"can't return connection to pool {self.name!r}, it comes from pool {conn._pool.name!r}"
            )
        raise ValueError(f"can't return connection to pool {self.name!r}: it was already returned")

    def _return_slow(self, slot: int, held: _Held, invalid: bool, failed: bool) -> bool:
        """Return a held slot whose connection needs work: closed pool,
        invalidated, in a transaction, to be reset or checked. True: the
        connection is fit for reuse, and the caller gives the slot back
        (so that it knows when the slot stopped being its own)."""
        if self._closed:
            self._forget_slot(slot)
            self._close_quietly(held)
            return False
        if invalid:
            self._discard(slot, held)
            return False
        if not DBAPI.reset(held, self.reset_on_return, self._user_reset, failed):
            self._stats.add(Stats.RETURNS_BAD)
            self._discard(slot, held)
            return False
        now = monotonic()
        if self._is_stale(slot, now):
            self._discard(slot, held)
            return False
        self._slots[slot].last_used = now
        return True

    def _finish_block(self, conn: PooledConnection[_ConnT], held: _Held, ok: bool) -> None:
        """The end of a ``with`` block: commit if ``ok`` else roll back, then
        return the connection. If the block or the commit raised, the
        connection is pinged on return: the error may have been a broken one.
        Whatever interrupts this, the connection goes back to the pool."""
        try:
            DBAPI.end_transaction(held, ok)
        except BaseException:
            ok = False
            raise
        finally:
            try:
                if not ok:
                    object.__setattr__(conn, "_failed", True)
            finally:
                self._return_after_block(conn)

    def _return_after_block(self, conn: PooledConnection[_ConnT]) -> None:
        """Give back the connection of a finished block unless that was done."""
        if conn._held is not None:
            self.putconn(conn)

    def _count_use(self, t0: float) -> None:
        """Count a block's use, from hand-out at ``t0`` to now, in the
        ``usage_ms`` stat and the use-time histogram."""
        used = monotonic() - t0
        self._counters.add(base.I_USAGE_MS, int(used * 1_000_000))
        self._histograms.observe(base.Histograms.USE, used)

    def connection(self, timeout: float | None = None) -> _ConnectionBlock[_ConnT]:
        """Context manager: a connection for the block, committed on success,
        rolled back on error, then returned to the pool."""
        return _ConnectionBlock(self, timeout)

    # pyright ignore: "held" is the base's "conn" renamed; the core passes it by position.
    def _failed_check(  # pyright: ignore[reportIncompatibleMethodOverride]
        self, w: Waiter, held: _Held
    ) -> object:
        """A connection that failed its ping (or ``check``) is broken: it is
        replaced and the checkout moves on at once, as SQLAlchemy's pre_ping
        does (the driver has no transaction state the pool could read to
        tell a healthy connection from a broken one)."""
        self._stats.add(Stats.CONNECTIONS_LOST)
        self._discard_held(w, held)
        return DISCARDED

    def _getconn_slow(self, timeout: float | None, counted: bool) -> _Held:
        refused = self._refused
        if refused is not None and not self._closed and self._ring.size() == 0:
            # Every new connection is refused and none could come back:
            # waiting would only time out.
            if not counted:
                self._counters.add(base.I_REQUESTS_NUM)
            self._count_failed_request()
            raise _copy_error(refused)
        return super()._getconn_slow(timeout, counted)  # type: ignore[no-any-return]  # a _Held in this pool

    def _ping_idle(self, conn: _Held) -> None:
        self.check_connection(conn.raw)

    def _check_held(self, held: _Held) -> None:
        self._user_check(held.raw)  # type: ignore[misc]  # installed only when _user_check is set

    # ------------------------------------------------------------------
    # Connections
    # ------------------------------------------------------------------

    def _connect(self, timeout: float | None = None) -> _Held:
        """Open a connection and run ``configure``; raise on any failure."""
        t0 = self._connect_started()
        try:
            raw = self._connect_fn()
        except Exception:
            self._connect_ended(t0, False)
            raise
        self._connect_ended(t0, True)
        held = _Held(raw)
        refused = held.refusal()
        if refused is not None:
            self._close_quietly(held)
            self._refused = refused
            if self._ring.size() == 0:  # else a return may still serve them
                self._fail_waiting(lambda: _copy_error(refused))
            raise refused
        self._refused = None
        if self._configure is not None:
            try:
                self._configure(raw)
            except BaseException:
                self._close_quietly(held)
                raise
        return held

    @classmethod
    def filled(
        cls: type[Pool[Any]],
        connect: Callable[[], _NewConnT],
        size: int,
        max_size: int,
        **options: Any,
    ) -> Pool[_NewConnT]:
        """A pool opened with ``size`` connections made in the calling thread, so
        that a failure to connect is raised here (the pool is closed), as
        psycopg2's and MySQL Connector's pools do; it keeps ``size`` from then on."""
        pool = cls(connect, min_size=0, max_size=max_size, **options)
        try:
            pool._connect_now(size)
            pool.resize(size, max_size)
        except BaseException:
            pool.close()
            raise
        return pool

    def add_connection(self, conn: Any) -> None:
        """Put a driver connection made elsewhere into the pool, idle (or to the
        oldest waiting caller). From then on the pool owns it like one it made:
        ``configure`` runs on it now, and it is checked, reset, replaced,
        expired (``max_lifetime`` counts from now) and closed by the same rules.
        It counts toward ``max_size``: raises PoolFull if the pool already has
        (or is making) ``max_size`` connections, PoolClosed if it isn't open,
        ValueError if the driver says the connection is closed. If
        ``configure`` raises, the connection stays the caller's, open."""
        if conn is None or isinstance(conn, (PooledConnection, _Held)):
            raise TypeError(
                "add_connection() takes a driver connection not already in a pool,"
                f" got {type(conn).__name__}"
            )
        held = _Held(conn)
        if DBAPI.is_closed(conn):
            raise ValueError(
                f"can't add a closed connection to pool {self.name!r}"
                f" (the driver says this {type(conn).__name__} is closed)"
            )
        refused = held.refusal()
        if refused is not None:
            raise refused
        if not self._reserve_connection():
            raise PoolFull(
                f"can't add a connection to pool {self.name!r}: it has max_size={self._max_size}"
                " connections already (resize() it to make room)"
            )
        if self._configure is not None:
            try:
                self._configure(conn)
            except BaseException:
                with self._lock:
                    self._attempt_ended_locked()
                raise
        self._add_reserved(held)

    def _connect_now(self, n: int) -> None:
        """Make ``n`` connections in the calling thread and add them to the
        pool (within max_size); a failure to connect is raised here."""
        for _ in range(n):
            if not self._reserve_connection():
                return
            try:
                held = self._connect()
            except BaseException:
                with self._lock:
                    self._attempt_ended_locked()
                raise
            self._add_reserved(held)

    def _reserve_connection(self) -> bool:
        """Count a connection about to be added by the calling thread (undo with
        ``_attempt_ended_locked``); False if the pool has max_size already."""
        with self._lock:
            self._raise_if_closed()
            if self._nconns >= self._max_size:
                return False
            self._nconns += 1
            self._connecting += 1
        return True

    def _add_reserved(self, held: _Held) -> None:
        """Add the connection reserved with ``_reserve_connection`` (it is
        closed if the pool was closed meanwhile)."""
        slot = self._install_connected(held)
        if slot < 0:
            self._close_quietly(held)
            raise PoolClosed(f"the pool {self.name!r} was closed while adding a connection")
        self._hand_out_connected(slot)

    @staticmethod
    def check_connection(conn: object) -> None:
        """Ping a driver connection (usable as the ``check`` parameter): the
        driver's ``ping()`` without reconnecting, or ``SELECT 1``."""
        if isinstance(conn, (PooledConnection, _Held)):
            conn = conn.raw
        DBAPI.ping(conn)


def _copy_error(error: Exception) -> Exception:
    """A fresh instance of ``error`` for each caller it is raised to (raising
    one instance in many threads would grow and mix its traceback)."""
    return type(error)(*error.args)


class _ConnectionBlock(Generic[_ConnT]):
    """``with pool.connection() as conn:`` for the generic pool."""

    __slots__ = ("pool", "timeout", "conn", "t0", "entered")

    pool: Pool[_ConnT]
    timeout: float | None
    conn: PooledConnection[_ConnT] | None
    t0: float
    entered: bool

    def __init__(self, pool: Pool[_ConnT], timeout: float | None) -> None:
        self.pool = pool
        self.timeout = timeout
        self.conn = None
        self.entered = False

    def __enter__(self) -> PooledConnection[_ConnT]:
        if self.entered:
            raise RuntimeError(
                "this pool.connection() context manager was already entered: call"
                " pool.connection() once for each with-block (and don't share one between threads)"
            )
        self.entered = True
        try:
            self.conn = self.pool.getconn(self.timeout)
            self.t0 = monotonic()  # use time: from hand-out to return
            return self.conn
        except BaseException:  # interrupted before the block had it: give it back
            conn, self.conn = self.conn, None
            if conn is not None:
                conn.close()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        conn = self.conn
        try:
            if conn is None:
                raise RuntimeError(
                    "pool.connection() context manager exited without a connection: was __enter__ called?"
                )
            pool = self.pool
            self.conn = None
            held = conn._held
            if held is not None:  # else the block already closed it
                pool._finish_block(conn, held, exc_type is None)
        finally:
            if conn is not None:
                pool = self.pool
                pool._return_after_block(conn)  # if an interrupt came first
                pool._count_use(self.t0)
