# Included by _fastpool.pyx. The checkout/return fast path of ConnectionPool.
#
# Everything here runs when an idle connection is available and the pool is
# healthy; anything else (waiting, replacing a connection, closing, warnings)
# calls back into the Python methods of fastpool.pool.ConnectionPool, named
# ``_getconn_slow``, ``_putconn_slow``, ``_give_back``,
# ``_serve_waiters`` and ``_raise_foreign``. fastpool/_pyhotpath.py is the
# pure-Python twin of this file; keep the two in step.

cimport cython
from posix.time cimport clock_gettime, timespec, CLOCK_MONOTONIC
from cpython.list cimport PyList_GET_ITEM
from cpython.float cimport PyFloat_AS_DOUBLE

cdef enum:
    _IDLE = 0       # psycopg.pq.TransactionStatus.IDLE
    _UNKNOWN = 4    # ... UNKNOWN: closed or broken connection
    _I_REQUESTS_NUM = 0   # index of requests_num in fastpool.base.Stats.KEYS
    _I_USAGE_MS = 4       # index of usage_ms (accumulated in microseconds)
    _H_MAX_BOUNDS = 64    # room for fastpool._histogram_layout.BOUNDS


# The histograms' layout and bucket bounds (seconds), copied at import from
# fastpool._histogram_layout, which fastpool.base.Histograms and the Python
# twin read too: one source, and plain C values on the hot path.
cdef double _H_BOUNDS[_H_MAX_BOUNDS]
cdef Py_ssize_t _H_NBOUNDS, _H_WAIT, _H_USE, _H_USE_SUM


cdef int _load_histogram_layout() except -1:
    global _H_NBOUNDS, _H_WAIT, _H_USE, _H_USE_SUM
    from fastpool import _histogram_layout as layout
    bounds = layout.BOUNDS
    if not 0 < len(bounds) <= _H_MAX_BOUNDS:
        raise ImportError(f"fastpool._histogram_layout.BOUNDS must have 1 to {_H_MAX_BOUNDS} bounds")
    for i, b in enumerate(bounds):
        _H_BOUNDS[i] = b
    _H_NBOUNDS = len(bounds)
    _H_WAIT = layout.WAIT
    _H_USE = layout.USE
    _H_USE_SUM = layout.SUMS + 1
    return 0


_load_histogram_layout()


cdef inline Py_ssize_t _h_bucket(double seconds) noexcept nogil:
    # Bucket i holds BOUNDS[i-1] < seconds <= BOUNDS[i] (Prometheus' "le"), as
    # bisect_left in fastpool.base.Histograms.observe. A linear scan: short
    # blocks, the ones whose cost shows, stop at the first bounds.
    cdef Py_ssize_t i = 0
    while i < _H_NBOUNDS and seconds > _H_BOUNDS[i]:
        i += 1
    return i


def histogram_bucket(double seconds) -> int:
    """The bucket the hot path counts ``seconds`` in (for tests)."""
    return _h_bucket(seconds)


cdef inline double _monotonic() noexcept nogil:
    # The clock time.monotonic() reads on Linux, without a Python call.
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <double>ts.tv_sec + <double>ts.tv_nsec * 1e-9


def monotonic() -> float:
    """Same clock as time.monotonic() (CLOCK_MONOTONIC), for tests."""
    return _monotonic()


cdef class PoolFastPath:
    """Base class of the sync and async pools holding what the fast path reads,
    and the fast path itself, free of I/O so both pools share it.

    Per-slot lists are written by the pool (under its lock, before the slot is
    published in the ring) and only read here."""

    cdef public SlotRing _ring
    cdef public Counters _counters
    cdef public Counters _hist          # fastpool.base.Histograms counters
    cdef public list _conns          # slot -> connection
    cdef public list _expire_at      # slot -> monotonic time the connection expires
    cdef public list _created_at     # slot -> monotonic time it was made
    cdef public list _last_used      # slot -> last successful return (check_bypass)
    cdef public object _waiting      # deque of waiters: non-empty means "no barging"
    cdef public object _check
    cdef public object _reset
    cdef public bint _fast           # open, not closed, no pending first-use warning
    cdef public bint _closed
    cdef public double _drained_at
    cdef public double _leak_threshold  # > 0: record each checkout for leak reports
    # False when a subclass overrides getconn()/putconn(): then connection() must
    # go through the overrides, as psycopg_pool's does.
    cdef public bint _plain_hot_path

    def _checkout_fast(self, timeout):
        """The lock-free checkout: a connection ready to hand out (counted in
        requests_num), or -1: nothing idle, a check to run, an expired
        connection, or not allowed now (take the slow path, which counts the
        request). A slot never leaves this method other than with its
        connection checked out, so an interrupt can't strand it in between."""
        return self._checkout_fast_c(timeout)

    cdef inline object _checkout_fast_c(self, object timeout):
        cdef int64_t slot
        cdef int code
        cdef double now
        # A timeout that isn't a plain positive number takes the slow path,
        # which rejects it with a clear error, or (<= 0: no time left, as in
        # psycopg_pool) raises PoolTimeout; fastpool.Pool serves timeout=0 there.
        if self._fast and self._check is None and not self._waiting and (
                timeout is None
                or ((type(timeout) is float or type(timeout) is int) and timeout > 0)):
            slot = fp_try_acquire(&self._ring.r)
            if slot >= 0:
                now = _monotonic()
                if now < PyFloat_AS_DOUBLE(<object>PyList_GET_ITEM(self._expire_at, slot)):
                    fp_fetch_add_relaxed_i64(&self._counters.values[_I_REQUESTS_NUM], 1)
                    fp_fetch_add_relaxed_i64(&self._hist.values[_H_WAIT], 1)  # no wait
                    conn = <object>PyList_GET_ITEM(self._conns, slot)
                    conn._pool = self
                    if self._leak_threshold > 0:
                        self._note_checkout(slot)
                    return conn
                # Expired: put it back for the slow path, which replaces it.
                code = fp_release(&self._ring.r, slot)
                if code != FP_OK:
                    _raise_for(code, "release", slot, self._ring.r.capacity)
                if self._waiting:
                    self._serve_waiters()
            elif slot != FP_EMPTY:
                _raise_for(<int>slot, "try_acquire", None, self._ring.r.capacity)
        return -1

    def _return_fast(self, conn):
        """The lock-free return: -1 when ``conn`` is back (in the ring or with a
        waiter, or dropped after a fork); else its slot, still held, for the
        pool's ``_putconn_slow`` (reset, rollback, expiry, closed pool).
        Raises ValueError for a connection that isn't this pool's."""
        return self._return_fast_c(conn)

    cdef inline int64_t _return_fast_c(self, object conn) except -2:
        cdef double now
        cdef int64_t slot
        cdef int code
        if getattr(conn, "_pool", None) is not self:
            self._raise_foreign(conn)
            return -1
        slot = conn._fp_slot
        conn._pool = None
        if slot < 0 or slot >= len(self._conns) or <object>PyList_GET_ITEM(self._conns, slot) is not conn:
            # Checked out before a fork and returned in the child: the parent owns
            # the socket. Drop it without closing.
            return -1
        if self._leak_threshold > 0:
            self._note_return(slot)
        if not self._closed:
            now = _monotonic()
            if (conn.pgconn.transaction_status == _IDLE
                    and getattr(conn, "_tpc", None) is None  # no prepared two-phase xact
                    and now < PyFloat_AS_DOUBLE(<object>PyList_GET_ITEM(self._expire_at, slot))
                    and self._reset is None
                    and PyFloat_AS_DOUBLE(<object>PyList_GET_ITEM(self._created_at, slot)) > self._drained_at):
                if self._check is not None:
                    self._last_used[slot] = now
                if not self._waiting:
                    code = fp_release(&self._ring.r, slot)
                    if code != FP_OK:
                        _raise_for(code, "release", slot, self._ring.r.capacity)
                    if self._waiting:
                        # Someone queued while we released: the slot may sit idle.
                        self._serve_waiters()
                    elif self._closed:
                        # close() ran between our check and the release: it has
                        # already emptied the ring, so close what we put back.
                        self._close_idle()
                    return -1
                self._give_back(slot)
                return -1
        return slot


cdef class PoolHotPath(PoolFastPath):
    """Base class of ConnectionPool: the sync getconn/putconn/connection on the
    shared fast path."""

    def getconn(self, timeout=None):
        """Take a connection out of the pool; give it back with ``putconn()``.

        Waits up to ``timeout`` seconds (default: the pool's ``timeout``), then
        raises PoolTimeout."""
        return self._getconn(timeout)

    cdef object _getconn(self, object timeout):
        cdef object r = self._checkout_fast_c(timeout)
        if type(r) is not int:
            return r
        return self._getconn_slow(timeout, False)

    def putconn(self, conn):
        """Give back a connection obtained with ``getconn()``."""
        self._putconn(conn)

    cdef int _putconn(self, object conn) except -1:
        cdef int64_t slot = self._return_fast_c(conn)
        if slot >= 0:
            self._putconn_slow(slot, conn)
        return 0

    def connection(self, timeout=None):
        """Context manager: a connection for the block, committed on success,
        rolled back on error, then returned to the pool."""
        if self._plain_hot_path:
            return ConnectionContext(self, timeout)
        return _generic_context()(self, timeout)


cdef object _generic_context():
    from fastpool._pyhotpath import ConnectionContext as GenericConnectionContext
    return GenericConnectionContext


cdef inline bint _commit_sends_nothing(object conn, object status):
    # True where psycopg's commit() and rollback() would send nothing and raise
    # nothing: an IDLE connection outside a prepared two-phase transaction, a
    # transaction() block and a pipeline. UNKNOWN is a closed or broken
    # connection, which psycopg's __exit__ skips too.
    if status == _UNKNOWN:
        return True
    return (status == _IDLE
            and getattr(conn, "_tpc", None) is None
            and not getattr(conn, "_num_transactions", 0)
            and getattr(conn, "_pipeline", None) is None)


def commit_sends_nothing(conn, status):
    """Python access to the test above (the async context manager uses it)."""
    return _commit_sends_nothing(conn, status)


cdef str _REENTERED = ("this pool.connection() context manager was already entered: "
              "call pool.connection() once for each with-block (and don't share one between threads)")
cdef str _EXIT_WITHOUT_ENTER = "pool.connection() context manager exited without a connection: was __enter__ called?"


@cython.freelist(32)
cdef class ConnectionContext:
    """``with pool.connection() as conn:`` — psycopg's ``with conn:`` semantics,
    minus commit()/rollback() where they would send nothing. Used once: a
    second ``with`` on the same object is refused (it would hand one
    connection to two blocks)."""

    cdef PoolHotPath pool
    cdef object timeout
    cdef object conn
    cdef double t0
    cdef bint entered

    def __cinit__(self, PoolHotPath pool not None, timeout):
        self.pool = pool
        self.timeout = timeout

    def __enter__(self):
        if self.entered:
            raise RuntimeError(_REENTERED)
        self.entered = True
        self.conn = self.pool._getconn(self.timeout)
        # usage_ms counts from hand-out to return, as psycopg_pool's does.
        self.t0 = _monotonic()
        return self.conn

    def __exit__(self, exc_type, exc_val, exc_tb):
        cdef double used
        cdef int64_t used_us
        conn = self.conn
        if conn is None:
            raise RuntimeError(_EXIT_WITHOUT_ENTER)
        pool = self.pool
        self.conn = None
        try:
            status = conn.pgconn.transaction_status
            if not _commit_sends_nothing(conn, status):
                if exc_type is None:
                    conn.commit()
                else:
                    try:
                        conn.rollback()
                    except Exception as ex2:
                        # psycopg's own record (its connection's __exit__ logs it)
                        _psycopg_logger().warning("error ignored in rollback on %s: %s", conn, ex2)
        finally:
            # Already returned if the block called conn.close() with close_returns.
            if getattr(conn, "_pool", None) is pool:
                pool._putconn(conn)
            # As fastpool.base.Histograms.observe(USE, used) in the Python twin.
            used = _monotonic() - self.t0
            used_us = <int64_t>(used * 1e6)
            fp_fetch_add_relaxed_i64(&pool._counters.values[_I_USAGE_MS], used_us)
            fp_fetch_add_relaxed_i64(&pool._hist.values[_H_USE + _h_bucket(used)], 1)
            fp_fetch_add_relaxed_i64(&pool._hist.values[_H_USE_SUM], used_us)


cdef object _psycopg_logger():
    import logging
    return logging.getLogger("psycopg")
