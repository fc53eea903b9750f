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
from cpython.object cimport PyObject
from cpython.ref cimport Py_DECREF, Py_INCREF


cdef extern from "Python.h":
    # A getset descriptor's C getter (what a compiled class's property is):
    # calling it directly skips the generic attribute lookup.
    ctypedef PyObject *(*getter)(PyObject *, void *) except NULL
    ctypedef struct PyGetSetDef:
        getter get
        void *closure
    ctypedef struct PyGetSetDescrObject:
        PyGetSetDef *d_getset
    Py_ssize_t Py_SIZE(object)
    ctypedef PyObject *(*vectorcallfunc)(PyObject *, PyObject **, size_t, PyObject *)
    Py_ssize_t PyVectorcall_NARGS(size_t)


cdef extern from *:
    """
    /* Give a type's instances the vectorcall protocol (a call without an
       argument tuple): the function pointer sits at offset in each instance,
       NULL meaning "use tp_call". */
    static int fp_enable_vectorcall(PyObject *type, Py_ssize_t offset) {
        PyTypeObject *t = (PyTypeObject *)type;
        t->tp_vectorcall_offset = offset;
        t->tp_flags |= Py_TPFLAGS_HAVE_VECTORCALL;
        PyType_Modified(t);
        return 0;
    }
    """
    int fp_enable_vectorcall(object type, Py_ssize_t offset)

cdef extern from "fp_attrs.h":
    # A connection's attribute read or written without the generic lookup
    # where CPython's own specialised bytecode would do the same (see the
    # header), else the generic way: getattr(obj, name, default) is expected,
    # bool(getattr(obj, name, default)), setattr(obj, name, value).
    ctypedef struct fp_attr:
        pass
    bint fp_attr_is(object obj, fp_attr *cache, object name, object default,
                    object expected) except -1
    bint fp_attr_true(object obj, fp_attr *cache, object name, object default) except -1
    int fp_attr_set(object obj, fp_attr *cache, object name, object value) except -1


cdef enum:
    _H_MAX_BOUNDS = 64    # room for fastpool._constants.BOUNDS


# The numbers this path shares with its Python twin and fastpool.base (where
# each statistic and histogram count lives, the bucket bounds in seconds, the
# transaction statuses, the refusal messages), copied at import from
# fastpool._constants, which they read too: one source, and plain C values on
# the hot path.
cdef long _IDLE, _UNKNOWN                 # psycopg.pq.TransactionStatus values
cdef object _IDLE_STATUS                  # _IDLE as a Python int
cdef Py_ssize_t _I_REQUESTS_NUM, _I_USAGE_MS  # usage_ms accumulates microseconds
cdef double _H_BOUNDS[_H_MAX_BOUNDS]
cdef Py_ssize_t _H_NBOUNDS, _H_WAIT, _H_USE, _H_USE_SUM
cdef str _REENTERED, _EXIT_WITHOUT_ENTER, _ASYNC_REENTERED, _ASYNC_EXIT_WITHOUT_ENTER


cdef int _load_shared_constants() except -1:
    global _IDLE, _IDLE_STATUS, _UNKNOWN, _I_REQUESTS_NUM, _I_USAGE_MS
    global _H_NBOUNDS, _H_WAIT, _H_USE, _H_USE_SUM, _REENTERED, _EXIT_WITHOUT_ENTER
    global _ASYNC_REENTERED, _ASYNC_EXIT_WITHOUT_ENTER
    from fastpool import _constants as shared
    bounds = shared.BOUNDS
    if not 0 < len(bounds) <= _H_MAX_BOUNDS:
        raise ImportError(f"fastpool._constants.BOUNDS must have 1 to {_H_MAX_BOUNDS} bounds")
    for i, b in enumerate(bounds):
        _H_BOUNDS[i] = b
    _H_NBOUNDS = len(bounds)
    _H_WAIT = shared.WAIT
    _H_USE = shared.USE
    _H_USE_SUM = shared.SUMS + 1
    _IDLE = shared.IDLE
    _IDLE_STATUS = int(shared.IDLE)
    _UNKNOWN = shared.UNKNOWN
    _I_REQUESTS_NUM = shared.I_REQUESTS_NUM
    _I_USAGE_MS = shared.I_USAGE_MS
    _REENTERED = shared.REENTERED
    _EXIT_WITHOUT_ENTER = shared.EXIT_WITHOUT_ENTER
    _ASYNC_REENTERED = shared.ASYNC_REENTERED
    _ASYNC_EXIT_WITHOUT_ENTER = shared.ASYNC_EXIT_WITHOUT_ENTER
    return 0


_load_shared_constants()


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


cdef object _DEQUE                   # collections.deque
cdef object _GetSetDescriptorType    # types.GetSetDescriptorType
cdef object _get_running_loop        # asyncio.get_running_loop


cdef int _load_types() except -1:
    # (in a function: module-level imports would be names of the module)
    global _DEQUE, _GetSetDescriptorType, _get_running_loop
    from asyncio import get_running_loop
    from collections import deque
    from types import GetSetDescriptorType
    _DEQUE = deque
    _GetSetDescriptorType = GetSetDescriptorType
    _get_running_loop = get_running_loop
    return 0


_load_types()


cdef bint _nonempty_generic(object waiting) except -1:
    return bool(waiting)


cdef inline bint _nonempty(object waiting) except -1:
    # bool(pool._waiting), a deque (whose length is its ob_size) or None
    if type(waiting) is _DEQUE:
        return Py_SIZE(waiting) != 0
    return _nonempty_generic(waiting)


cdef inline object _transaction_status(SlotRecord rec, object pgconn):
    cdef PyObject *res
    if rec.status_get is NULL:
        return pgconn.transaction_status
    res = rec.status_get(<PyObject *>pgconn, rec.status_closure)
    status = <object>res
    Py_DECREF(status)  # (the getter's reference; status holds its own)
    return status


@cython.final
cdef class SlotRecord:
    """What the pool keeps about one slot: its connection and that
    connection's times. One record per slot (asyncpg keeps one holder per
    connection), filled before the slot is published in the ring, so the
    thread that acquires the slot reads a complete record; typed fields, so
    the fast path reads them as C struct members. fastpool._pyhotpath has
    the Python twin (same names)."""

    cdef public object conn            # None: no connection in this slot
    cdef public object pgconn          # conn.pgconn (psycopg never replaces it); None: not psycopg
    cdef public double created_at      # monotonic time the connection was made
    cdef public double expire_at       # monotonic time it expires
    cdef public double last_used       # last successful return (check_bypass)
    # Leak detection (leak_threshold set): when and where the slot was checked
    # out, and the checkout already reported.
    cdef public double checked_out_at
    cdef public object checkout_stack
    cdef public double leak_reported
    # pgconn's transaction_status getter when it is a C getset (psycopg's
    # compiled libpq wrapper), else NULL: read it through getattr
    cdef getter status_get
    cdef void *status_closure
    cdef object status_descr     # (keeps the descriptor, and so the getter, alive)

    def __init__(self, conn=None, pgconn=None, double created_at=0.0, double expire_at=0.0):
        self.conn = conn
        self.pgconn = pgconn
        if pgconn is not None:
            descr = getattr(type(pgconn), "transaction_status", None)
            if type(descr) is _GetSetDescriptorType and isinstance(pgconn, descr.__objclass__):
                self.status_descr = descr
                self.status_get = (<PyGetSetDescrObject *>descr).d_getset.get
                self.status_closure = (<PyGetSetDescrObject *>descr).d_getset.closure
        self.created_at = created_at
        self.expire_at = expire_at
        self.last_used = created_at


cdef class PoolFastPath:
    """Base class of the sync and async pools holding what the fast path reads,
    and the fast path itself, free of I/O so both pools share it.

    Slot records are written by the pool (under its lock, before the slot is
    published in the ring) and only read here (but for last_used)."""

    cdef public SlotRing _ring
    cdef public Counters _counters
    cdef public Counters _hist          # fastpool.base.Histograms counters
    cdef public list _slots          # slot -> its SlotRecord
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
    # Connections given back through _return_fast_c (putconn(), close() with
    # close_returns, a with-block's general exit), counted (relaxed atomic): a
    # with-block that sees it unchanged since its checkout knows its
    # connection was not given back meanwhile without reading conn._pool.
    cdef int64_t _returns
    # The connections' attributes the fast path reads and writes (fp_attrs.h)
    cdef fp_attr _attr_pool, _attr_tpc, _attr_num_transactions, _attr_pipeline

    def _checkout_fast(self, timeout):
        """The lock-free checkout: a connection ready to hand out (counted in
        requests_num), or -1: nothing idle, a check to run, an expired
        connection, or not allowed now (take the slow path, which counts the
        request). A slot never leaves this method other than with its
        connection checked out, so an interrupt can't strand it in between."""
        cdef int64_t slot
        cdef double now
        conn = self._checkout_fast_c(timeout, &slot, &now)
        return -1 if slot < 0 else conn

    @cython.final
    cdef inline object _checkout_fast_c(self, object timeout, int64_t *slot_out, double *now_out):
        # As _checkout_fast; also gives the slot (-1: nothing handed out, the
        # result is None) and the clock reading the expiry was checked against.
        cdef int64_t slot
        cdef int code
        cdef double now
        cdef SlotRecord rec
        slot_out[0] = -1
        # A timeout that isn't a plain positive number takes the slow path,
        # which rejects it with a clear error, or (<= 0: no time left, as in
        # psycopg_pool) raises PoolTimeout; fastpool.Pool serves timeout=0 there.
        if self._fast and self._check is None and not _nonempty(self._waiting) and (
                timeout is None
                or ((type(timeout) is float or type(timeout) is int) and timeout > 0)):
            slot = fp_try_acquire(&self._ring.r)
            if slot >= 0:
                rec = <SlotRecord>PyList_GET_ITEM(self._slots, slot)
                now = _monotonic()
                if now < rec.expire_at:
                    fp_fetch_add_relaxed_i64(&self._counters.values[_I_REQUESTS_NUM], 1)
                    fp_fetch_add_relaxed_i64(&self._hist.values[_H_WAIT], 1)  # no wait
                    conn = rec.conn
                    fp_attr_set(conn, &self._attr_pool, "_pool", self)
                    if self._leak_threshold > 0:
                        self._note_checkout(slot)
                    slot_out[0] = slot
                    now_out[0] = now
                    return conn
                # Expired: put it back for the slow path, which replaces it.
                code = fp_release(&self._ring.r, slot)
                if code != FP_OK:
                    _raise_for(code, "release", slot, self._ring.r.capacity)
                if self._waiting:
                    self._serve_waiters()
            elif slot != FP_EMPTY:
                _raise_for(<int>slot, "try_acquire", None, self._ring.r.capacity)
        return None

    def _return_fast(self, conn):
        """The lock-free return: -1 when ``conn`` is back (in the ring or with a
        waiter, or dropped after a fork); else its slot, still held, for the
        pool's ``_putconn_slow`` (reset, rollback, expiry, closed pool).
        Raises ValueError for a connection that isn't this pool's."""
        return self._return_fast_c(conn)

    @cython.final
    cdef inline int64_t _return_fast_c(self, object conn) except -2:
        cdef double now
        cdef int64_t slot
        cdef int code
        cdef SlotRecord rec
        if not fp_attr_is(conn, &self._attr_pool, "_pool", None, self):
            self._raise_foreign(conn)
            return -1
        fp_fetch_add_relaxed_i64(&self._returns, 1)
        slot = conn._fp_slot
        fp_attr_set(conn, &self._attr_pool, "_pool", None)
        if (slot < 0 or slot >= len(self._slots)
                or (<SlotRecord>PyList_GET_ITEM(self._slots, slot)).conn is not conn):
            # Checked out before a fork and returned in the child: the parent owns
            # the socket. Drop it without closing.
            return -1
        rec = <SlotRecord>PyList_GET_ITEM(self._slots, slot)
        if self._leak_threshold > 0:
            self._note_return(slot)
        if not self._closed:
            now = _monotonic()
            if (conn.pgconn.transaction_status == _IDLE
                    # no prepared two-phase xact
                    and fp_attr_is(conn, &self._attr_tpc, "_tpc", None, None)
                    and now < rec.expire_at
                    and self._reset is None
                    and rec.created_at > self._drained_at):
                if self._check is not None:
                    rec.last_used = now
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

    @cython.final
    cdef bint _return_clean_c(self, object conn, int64_t slot, int64_t returns_seen, bint failed,
                              double *now_out) except -1:
        """The whole return of a ``with pool.connection()`` block's connection
        ``conn``, checked out by the fast path into ``slot``, where it is the
        simplest: nothing to send (psycopg's commit() or, after an exception,
        rollback() would send nothing and raise nothing), nothing to reset,
        not expired, nobody waiting, no leak tracking. ``returns_seen``:
        ``_returns`` when it was checked out. Then the slot goes
        straight back to the ring and this returns True, with the clock
        reading in ``now_out``; else False and nothing was done (the caller
        takes the general path, which reads everything again).

        The same decisions as the general path (ConnectionContext's exit,
        then _return_fast_c), each attribute read once."""
        cdef double now
        cdef int code
        cdef SlotRecord rec
        if (self._closed or self._reset is not None or self._leak_threshold > 0
                or _nonempty(self._waiting)):
            return False
        if slot >= len(self._slots):
            return False
        rec = <SlotRecord>PyList_GET_ITEM(self._slots, slot)
        if rec.conn is not conn:
            return False  # (checked out before a fork: the general path drops it)
        # Already returned (conn.close() with close_returns, or putconn())?
        # Only a return through _return_fast_c can have done it, and if none
        # happened in the whole pool since the checkout, none did.
        if (fp_load_relaxed_i64(&self._returns) != returns_seen
                and not fp_attr_is(conn, &self._attr_pool, "_pool", None, self)):
            return False
        pgconn = rec.pgconn
        if pgconn is None:
            return False
        status = _transaction_status(rec, pgconn)
        # (IDLE is a small int, one object: the identity answers at once)
        if status is not _IDLE_STATUS and (type(status) is not int or <long>status != _IDLE):
            return False
        if (not fp_attr_is(conn, &self._attr_tpc, "_tpc", None, None)
                or fp_attr_true(conn, &self._attr_num_transactions, "_num_transactions", 0)
                or (failed
                    and not fp_attr_is(conn, &self._attr_pipeline, "_pipeline", None, None))):
            # commit()/rollback() would raise, or rollback() sync a pipeline.
            # (commit() at IDLE returns before it would sync one.)
            return False
        now = _monotonic()
        if not (now < rec.expire_at and rec.created_at > self._drained_at):
            return False
        if self._check is not None:
            rec.last_used = now
        fp_attr_set(conn, &self._attr_pool, "_pool", None)
        code = fp_release(&self._ring.r, slot)
        if code != FP_OK:
            _raise_for(code, "release", slot, self._ring.r.capacity)
        now_out[0] = now
        if _nonempty(self._waiting):
            # Someone queued while we released: the slot may sit idle.
            self._serve_waiters()
        elif self._closed:
            # close() ran between our check and the release: it has already
            # emptied the ring, so close what we put back.
            self._close_idle()
        return True


cdef class PoolHotPath(PoolFastPath):
    """Base class of ConnectionPool: the sync getconn/putconn/connection on the
    shared fast path."""

    def getconn(self, timeout=None):
        """Take a connection out of the pool; give it back with ``putconn()``.

        Waits up to ``timeout`` seconds (default: the pool's ``timeout``), then
        raises PoolTimeout."""
        return self._getconn(timeout)

    @cython.final
    cdef object _getconn(self, object timeout):
        cdef int64_t slot
        cdef double now
        conn = self._checkout_fast_c(timeout, &slot, &now)
        if slot >= 0:
            return conn
        return self._getconn_slow(timeout, False)

    def putconn(self, conn):
        """Give back a connection obtained with ``getconn()``."""
        self._putconn(conn)

    @cython.final
    cdef int _putconn(self, object conn) except -1:
        cdef int64_t slot = self._return_fast_c(conn)
        if slot >= 0:
            self._putconn_slow(slot, conn)
        return 0

    def connection(self, timeout=None):
        """Context manager: a connection for the block, committed on success,
        rolled back on error, then returned to the pool."""
        cdef ConnectionContext ctx
        if self._plain_hot_path:
            ctx = ConnectionContext.__new__(ConnectionContext)
            ctx.vectorcall = <vectorcallfunc>_context_vectorcall
            ctx.pool = self
            ctx.timeout = timeout
            return ctx
        return _generic_context()(self, timeout)


cdef object _generic_context():
    from fastpool._pyhotpath import ConnectionContext as GenericConnectionContext
    return GenericConnectionContext


cdef inline bint _commit_sends_nothing(object conn, object status, bint failed):
    # True where psycopg's commit() (or, after an exception, rollback()) would
    # send nothing and raise nothing: an IDLE connection outside a prepared
    # two-phase transaction and a transaction() block, and for rollback() a
    # pipeline (commit() at IDLE returns before it would sync one). UNKNOWN
    # is a closed or broken connection, which psycopg's __exit__ skips too.
    if status == _UNKNOWN:
        return True
    return (status == _IDLE
            and getattr(conn, "_tpc", None) is None
            and not getattr(conn, "_num_transactions", 0)
            and not (failed and getattr(conn, "_pipeline", None) is not None))


def commit_sends_nothing(conn, status, failed=True):
    """Python access to the test above (the async context manager uses it);
    ``failed``: the block raised, so rollback() is the call in question."""
    return _commit_sends_nothing(conn, status, failed)


cdef inline void _count_use(PoolFastPath pool, double used) noexcept:
    # As fastpool.base.Histograms.observe(USE, used) and the usage_ms stat in
    # the Python twin.
    cdef int64_t used_us = <int64_t>(used * 1e6)
    fp_fetch_add_relaxed_i64(&pool._counters.values[_I_USAGE_MS], used_us)
    fp_fetch_add_relaxed_i64(&pool._hist.values[_H_USE + _h_bucket(used)], 1)
    fp_fetch_add_relaxed_i64(&pool._hist.values[_H_USE_SUM], used_us)


@cython.final
cdef class _SelfMethod:
    """``__enter__`` and ``__exit__`` of ConnectionContext (``__aenter__`` and
    ``__aexit__`` of AsyncConnectionContext). Looked up on an instance (as the
    ``with`` and ``async with`` statements do), the instance itself, which is
    callable (no arguments: enter; three: exit), through vectorcall (see
    _context_vectorcall): a block then makes no bound method objects and no
    argument tuple, about 570 of the 2,860 instructions a sync cycle took.
    Looked up on the class (as ``contextlib.ExitStack`` does), the plain
    function."""

    cdef object func

    def __init__(self, func):
        self.func = func

    def __get__(self, instance, owner):
        return self.func if instance is None else instance


def _context_enter(ConnectionContext self not None):
    return self._enter()


def _context_exit(ConnectionContext self not None, exc_type, exc_val, exc_tb):
    return self._exit(exc_type is not None)


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
    cdef int64_t slot    # >= 0: checked out by the fast path, into this slot
    cdef int64_t returns  # the pool's _returns at that checkout
    cdef bint entered
    cdef vectorcallfunc vectorcall  # _context_vectorcall (see _enable_context_vectorcall)

    # (No __cinit__: PoolHotPath.connection() makes these with __new__ and
    # sets the fields, the cheapest construction.)
    def __init__(self, PoolHotPath pool not None, timeout):
        self.vectorcall = <vectorcallfunc>_context_vectorcall
        self.pool = pool
        self.timeout = timeout

    def __call__(self, *args):
        # What __enter__ and __exit__ are on an instance (see _SelfMethod);
        # _context_vectorcall serves the same calls without an argument tuple.
        if not args:
            return self._enter()
        if len(args) == 3:
            return self._exit(args[0] is not None)
        raise TypeError("a ConnectionContext is called with no arguments (enter) or three (exit)")

    __enter__ = _SelfMethod(_context_enter)
    __exit__ = _SelfMethod(_context_exit)

    # (final: called directly, not through the vtable)
    @cython.final
    cdef object _enter(self):
        cdef int64_t slot
        cdef double now
        if self.entered:
            raise RuntimeError(_REENTERED)
        pool = self.pool
        if pool is None:
            raise TypeError("ConnectionContext needs a pool: use pool.connection()")
        self.entered = True
        self.returns = fp_load_relaxed_i64(&pool._returns)
        conn = pool._checkout_fast_c(self.timeout, &slot, &now)
        if slot < 0:
            conn = pool._getconn_slow(self.timeout, False)
            now = _monotonic()
        self.conn = conn
        self.slot = slot
        # usage_ms counts from hand-out to return, as psycopg_pool's does.
        self.t0 = now
        return conn

    @cython.final
    cdef object _exit(self, bint failed):
        # failed: the block raised (its exception type is not None)
        cdef double now
        conn = self.conn
        if conn is None:
            raise RuntimeError(_EXIT_WITHOUT_ENTER)
        pool = self.pool
        self.conn = None
        if self.slot >= 0 and pool._return_clean_c(conn, self.slot, self.returns, failed,
                                                   &now):
            _count_use(pool, now - self.t0)
            return None
        try:
            status = conn.pgconn.transaction_status
            if not _commit_sends_nothing(conn, status, failed):
                if not failed:
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
            _count_use(pool, _monotonic() - self.t0)


cdef object _psycopg_logger():
    import logging
    return logging.getLogger("psycopg")


cdef PyObject *_context_vectorcall(PyObject *callable, PyObject **args, size_t nargsf,
                                   PyObject *kwnames) except NULL:
    # ConnectionContext's __call__ (its __enter__ and __exit__, see _SelfMethod)
    # without the argument tuple tp_call takes.
    cdef ConnectionContext self = <ConnectionContext>callable
    cdef Py_ssize_t n = PyVectorcall_NARGS(nargsf)
    if kwnames is NULL and n == 0:
        res = self._enter()
    elif kwnames is NULL and n == 3:
        res = self._exit(args[0] != <PyObject *>None)
    else:
        raise TypeError("a ConnectionContext is called with no arguments (enter) or three (exit)")
    Py_INCREF(res)
    return <PyObject *>res


cdef int _enable_context_vectorcall() except -1:
    cdef ConnectionContext probe = ConnectionContext.__new__(ConnectionContext)
    fp_enable_vectorcall(ConnectionContext,
                         <Py_ssize_t>(<char *>&probe.vectorcall - <char *><PyObject *>probe))
    return 0


_enable_context_vectorcall()


# -- The async pool's ``async with pool.connection()`` ----------------------

cdef extern from *:
    """
    /* An awaitable's am_send (CPython >= 3.10): what `await` calls to resume
       it, which can return its result without raising StopIteration. */
    #if PY_VERSION_HEX >= 0x030A0000
    typedef PySendResult (*fp_sendfunc)(PyObject *, PyObject *, PyObject **);
    static int fp_set_am_send(PyObject *type, fp_sendfunc send) {
        PyTypeObject *t = (PyTypeObject *)type;
        if (t->tp_as_async == NULL) {
            PyErr_SetString(PyExc_TypeError, "fp_set_am_send: the type has no async slots");
            return -1;
        }
        t->tp_as_async->am_send = send;
        PyType_Modified(t);
        return 0;
    }
    #define FP_HAVE_AM_SEND 1
    #else
    typedef int PySendResult;
    typedef PySendResult (*fp_sendfunc)(PyObject *, PyObject *, PyObject **);
    static int fp_set_am_send(PyObject *type, fp_sendfunc send) { return 0; }
    #define FP_HAVE_AM_SEND 0
    #define PYGEN_RETURN 0
    #endif
    """
    ctypedef int PySendResult
    ctypedef PySendResult (*fp_sendfunc)(PyObject *, PyObject *, PyObject **)
    int fp_set_am_send(object type, fp_sendfunc send) except -1
    PySendResult PYGEN_RETURN


@cython.final
@cython.freelist(8)
cdef class _Ready:
    """An awaitable already done: ``await`` gives ``value`` at once, without
    suspending the task (what AsyncConnectionContext's fast path returns in
    place of a coroutine, which costs a frame). Awaited once: then None."""

    cdef object value

    def __await__(self):
        return self

    def __iter__(self):
        return self

    def __next__(self):
        # (where `await` doesn't use am_send: a tracer, ensure_future's wrapper)
        value, self.value = self.value, None
        if value is None:
            raise StopIteration
        raise StopIteration(value)


cdef PySendResult _ready_send(PyObject *awaitable, PyObject *arg, PyObject **result) noexcept:
    cdef _Ready self = <_Ready>awaitable
    value = self.value
    self.value = None
    Py_INCREF(value)
    result[0] = <PyObject *>value
    return PYGEN_RETURN


fp_set_am_send(_Ready, _ready_send)


cdef inline _Ready _ready(object value):
    cdef _Ready r = _Ready.__new__(_Ready)
    r.value = value
    return r


def _async_context_enter(AsyncConnectionContext self not None):
    return self._aenter()


def _async_context_exit(AsyncConnectionContext self not None, exc_type, exc_val, exc_tb):
    return self._aexit(exc_type is not None)


@cython.final
@cython.freelist(32)
cdef class AsyncConnectionContext:
    """``async with pool.connection() as conn:`` — psycopg's ``async with conn:``
    semantics (commit on success, rollback on error, minus commit()/rollback()
    where they would send nothing), then the connection goes back to the pool
    even if the task is cancelled meanwhile. Used once: a second ``async with``
    on the same object is refused.

    Where an idle connection is at hand (and nothing to wait for, check or
    reset), ``__aenter__`` and ``__aexit__`` do all their work at once and
    return an awaitable already done; else a coroutine doing the rest (the
    async pool's slow checkout and return, or getconn() and putconn() when a
    subclass overrides them)."""

    cdef PoolFastPath pool
    cdef object timeout
    cdef object conn
    cdef double t0
    cdef int64_t slot    # >= 0: checked out by the fast path, into this slot
    cdef int64_t returns  # the pool's _returns at that checkout
    cdef bint entered
    cdef vectorcallfunc vectorcall  # _async_context_vectorcall (as ConnectionContext's)

    # (AsyncPoolHotPath.connection() makes these with __new__ and sets the fields.)
    def __init__(self, PoolFastPath pool not None, timeout):
        self.vectorcall = <vectorcallfunc>_async_context_vectorcall
        self.pool = pool
        self.timeout = timeout
        self.slot = -1

    def __call__(self, *args):
        # What __aenter__ and __aexit__ are on an instance (see _SelfMethod);
        # _async_context_vectorcall serves the same calls without an argument tuple.
        if not args:
            return self._aenter()
        if len(args) == 3:
            return self._aexit(args[0] is not None)
        raise TypeError(
            "an AsyncConnectionContext is called with no arguments (enter) or three (exit)"
        )

    __aenter__ = _SelfMethod(_async_context_enter)
    __aexit__ = _SelfMethod(_async_context_exit)

    @cython.final
    cdef object _aenter(self):
        cdef int64_t slot
        cdef double now
        if self.entered:
            raise RuntimeError(_ASYNC_REENTERED)
        pool = self.pool
        if pool is None:
            raise TypeError("AsyncConnectionContext needs a pool: use pool.connection()")
        self.entered = True
        self.slot = -1
        if pool._plain_hot_path:
            loop = pool._loop
            if loop is None or loop is _get_running_loop():
                self.returns = fp_load_relaxed_i64(&pool._returns)
                conn = pool._checkout_fast_c(self.timeout, &slot, &now)
                if slot >= 0:
                    self.conn = conn
                    self.slot = slot
                    # usage_ms counts from hand-out to return, as psycopg_pool's does.
                    self.t0 = now
                    return _ready(conn)
        return self._enter_slow()

    async def _enter_slow(self):
        pool = self.pool
        if pool._plain_hot_path:
            # (the wrong-loop refusal, the fast checkout again, then the slow one)
            self.conn = await pool._getconn(self.timeout)
        else:
            self.conn = await pool.getconn(self.timeout)
        self.t0 = _monotonic()
        return self.conn

    @cython.final
    cdef object _aexit(self, bint failed):
        # failed: the block raised (its exception type is not None)
        cdef double now
        conn = self.conn
        if conn is None:
            raise RuntimeError(_ASYNC_EXIT_WITHOUT_ENTER)
        pool = self.pool
        self.conn = None
        if self.slot >= 0 and pool._return_clean_c(conn, self.slot, self.returns, failed, &now):
            _count_use(pool, now - self.t0)
            return _ready(None)
        return self._exit_slow(conn, failed)

    async def _exit_slow(self, conn, bint failed):
        pool = self.pool
        try:
            status = conn.pgconn.transaction_status
            if not _commit_sends_nothing(conn, status, failed):
                if not failed:
                    await conn.commit()
                else:
                    try:
                        await conn.rollback()
                    except Exception as ex2:
                        # psycopg's own record (its connection's __aexit__ logs it)
                        _psycopg_logger().warning("error ignored in rollback on %s: %s", conn, ex2)
        finally:
            # Already returned if the block called conn.close() with close_returns.
            if getattr(conn, "_pool", None) is pool:
                if pool._plain_hot_path:
                    # putconn() inline (a connection of this context has no
                    # owner to forget: only getconn() records one).
                    slot = pool._return_fast_c(conn)
                    if slot >= 0:
                        await pool._putconn_slow(slot, conn)
                else:
                    await pool.putconn(conn)
            _count_use(pool, _monotonic() - self.t0)


cdef PyObject *_async_context_vectorcall(PyObject *callable, PyObject **args, size_t nargsf,
                                         PyObject *kwnames) except NULL:
    # AsyncConnectionContext's __call__ (its __aenter__ and __aexit__), as
    # _context_vectorcall is ConnectionContext's.
    cdef AsyncConnectionContext self = <AsyncConnectionContext>callable
    cdef Py_ssize_t n = PyVectorcall_NARGS(nargsf)
    if kwnames is NULL and n == 0:
        res = self._aenter()
    elif kwnames is NULL and n == 3:
        res = self._aexit(args[0] != <PyObject *>None)
    else:
        raise TypeError(
            "an AsyncConnectionContext is called with no arguments (enter) or three (exit)"
        )
    Py_INCREF(res)
    return <PyObject *>res


cdef int _enable_async_context_vectorcall() except -1:
    cdef AsyncConnectionContext probe = AsyncConnectionContext.__new__(AsyncConnectionContext)
    fp_enable_vectorcall(AsyncConnectionContext,
                         <Py_ssize_t>(<char *>&probe.vectorcall - <char *><PyObject *>probe))
    return 0


_enable_async_context_vectorcall()


cdef class AsyncPoolHotPath(PoolFastPath):
    """Base class of fastpool.AsyncConnectionPool: its ``connection()``
    compiled, as PoolHotPath's is (getconn() and putconn() are coroutines,
    written in fastpool.pool_async)."""

    def connection(self, timeout=None):
        """Async context manager: a connection for the block, committed on
        success, rolled back on error, then returned to the pool."""
        cdef AsyncConnectionContext ctx = AsyncConnectionContext.__new__(AsyncConnectionContext)
        ctx.vectorcall = <vectorcallfunc>_async_context_vectorcall
        ctx.pool = self
        ctx.timeout = timeout
        ctx.slot = -1
        return ctx
