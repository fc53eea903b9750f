"""Test helpers for "nothing hangs, nothing is lost": deliver an exception at
every point of a pool operation, then check that the pool's books balance.

``Injector`` raises an exception (KeyboardInterrupt, SystemExit, ...) at the
n-th *point* of the operations run in the calling thread while it is active.
The points are:

* every statement boundary inside the pool's own Python code (a ``line``
  trace event in a frame of the ``fastpool`` package), except the first
  statement of each function: that instant is the call itself (the caller's
  hand-over), the one window pure Python can't close;
* every call the pool makes into other Python code (the driver's commit,
  rollback, execute and close, user callbacks, logging): the exception is
  raised as if by the callee, before it ran.

The bookkeeping steps listed in ``ATOMIC`` are taken as units: each runs for
microseconds under the pool lock, with no I/O and no foreign code, and hands a
slot from one holder to the next (ring, waiter, pool). An exception landing
inside one is a residual window; closing it would mean compiling those steps,
as the ring operations are.

The compiled core and its pure-Python twin (``_pycore``, ``_pyhotpath``) are
left out: compiled, their steps are single C calls, which no exception
interrupts. Counting the points of a clean run (``Injector()``) tells how many
there are; ``Injector(at=n)`` raises at the n-th.

``PoolBooks`` and ``assert_conserved`` check a pool afterwards: idle + checked
out + connecting = ``pool_size`` = the server's count of the pool's backends
(``pg_stat_activity`` rows with the pool's ``application_name``), nothing held
by nobody, and a fresh checkout works.
"""

from __future__ import annotations

import contextlib
import dis
import gc
import os
import sys
import threading
import time
from dataclasses import dataclass
from types import CodeType, FrameType, TracebackType
from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional, Union

import fastpool

if TYPE_CHECKING:
    import psycopg
    from typing_extensions import TypeAlias

    from fastpool.pool import ConnectionPool
    from fastpool.pool_async import AsyncConnectionPool

    # Any fastpool pool: the psycopg pools (sync, async, null) and fastpool.Pool.
    _AnyPool = Union[ConnectionPool[Any], AsyncConnectionPool[Any]]
    # sys.settrace()'s functions: (frame, event, arg) -> the frame's local trace function
    _TraceFunction: TypeAlias = Callable[[FrameType, str, Any], Optional["_TraceFunction"]]

_PACKAGE = os.path.dirname(os.path.abspath(fastpool.__file__)) + os.sep
_LEFT_OUT = tuple(os.path.join(_PACKAGE, name) for name in ("_pycore.py", "_pyhotpath.py"))


def is_pool_code(filename: str) -> bool:
    return filename.startswith(_PACKAGE) and not filename.startswith(_LEFT_OUT)


ATOMIC = frozenset(
    {
        # _pool_logic / _null_pool_logic / pools: slot and waiter bookkeeping under the lock
        "_forget_slot",
        "_clear_slot",
        "_give_back",
        "_hand_to_oldest_locked",
        "_serve_waiters",
        "_serve_waiters_locked",
        "_take_all_idle_locked",
        "_slot_or_wait_locked",
        "_queue_locked",
        "_enqueue_locked",
        "_stop_waiting",
        "_install",
        "_install_connected",
        "_install_or_none",
        "_grow_locked",
        "_grow_for_waiters_locked",
        "_replace_discarded",
        "_reserve_or_wait_locked",
        "_free_connection_slot",
        "_hand_over",
        "_retire_returned",
        "_attempt_ended_locked",
        "_begin_close_locked",
        "_take_expired_idle",
        "_shrink_candidate",
        "_note_checkout",
        "_note_return",
        "_try_acquire_oldest",
        "_give_back_held",
        "_may_connect_locked",
        "_grow_ring_locked",
        "_grow_slot_state",
        # waiting.py
        "fail",
        "wake",
        "clear",
        "thread_waiter",
        "release_waiter",
        "remove_waiter",
    }
)

_with_exits: dict[CodeType, frozenset[int]] = {}
_entries: dict[CodeType, int] = {}


def _entry_offset(code: CodeType) -> int:
    """Offset of a function's first instruction where an interrupt can land:
    its RESUME (3.11+), or before its first instruction (3.9, 3.10)."""
    found = _entries.get(code)
    if found is None:
        found = next((i.offset for i in dis.get_instructions(code) if i.opname == "RESUME"), 0)
        _entries[code] = found
    return found


def _innermost(exc: BaseException) -> TracebackType | None:
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb


def pool_landing_spot(exc: BaseException) -> str | None:
    """Where in the pool's own code (the package, twin included) an
    asynchronously delivered ``exc`` was raised: "file:function:line", or None
    (it landed elsewhere: in the driver, in the caller)."""
    tb = _innermost(exc)
    if tb is None or not tb.tb_frame.f_code.co_filename.startswith(_PACKAGE):
        return None
    code = tb.tb_frame.f_code
    return f"{os.path.basename(code.co_filename)}:{code.co_name}:{tb.tb_lineno}"


def landed_in_residual_window(exc: BaseException) -> bool:
    """An asynchronously delivered ``exc`` was raised in one of the windows
    this module names as residual: inside the pure-Python twin of the core
    (``_pycore``, ``_pyhotpath``: their steps are single C calls only when
    compiled), inside an ``ATOMIC`` bookkeeping step, or on the first
    instruction of one of the pool's functions (the call itself). The
    exception is raised where the thread was running Python code: the
    innermost frame of its traceback. Also residual: one that interrupted
    the handling of an earlier one of its kind (the pool's clean-up after an
    interrupt, cut short in turn, as any ``except``/``finally`` block can be)."""
    context = exc.__context__
    while context is not None:
        if type(context) is type(exc):
            return True
        context = context.__context__
    tb = _innermost(exc)
    if tb is None:
        return False
    code = tb.tb_frame.f_code
    if code.co_filename.startswith(_LEFT_OUT):
        return True
    return is_pool_code(code.co_filename) and (
        code.co_name in ATOMIC or tb.tb_lasti <= _entry_offset(code)
    )


def _run_by_the_gc(code: CodeType) -> bool:
    """``code`` is a finalizer or a gc callback (hypothesis installs one)."""
    return code.co_name == "__del__" or any(
        getattr(cb, "__code__", None) is code for cb in gc.callbacks
    )


def with_exit_offsets(code: CodeType) -> frozenset[int]:
    """Offsets where no real interrupt can arrive but a trace function's
    exception would be mishandled: the normal exit of a ``with`` block (the
    call of ``__exit__``, reported as a new line event of the ``with`` line:
    raising there would skip ``__exit__``) and the NOP of a ``try:`` line
    (outside the enclosing handlers' ranges). Real interrupts arrive only after
    a call has completed or at a loop's back-edge, so no point is placed there."""
    found = _with_exits.get(code)
    if found is None:
        ins = list(dis.get_instructions(code))
        # Before 3.11 a ``try:`` line is a SETUP_FINALLY (where the interpreter
        # takes no pending signal either), not a NOP; and a ``return`` inside
        # a ``try`` starts with POP_BLOCK, still inside the handler's range,
        # where from 3.11 on it lies outside: no point there either, so every
        # version has the points 3.11 has.
        exits = {i.offset for i in ins if i.opname in ("NOP", "SETUP_FINALLY", "POP_BLOCK")}
        for i in range(len(ins) - 3):
            a, b, c, d = ins[i : i + 4]
            if (
                a.opname == b.opname == c.opname == "LOAD_CONST"
                and a.argval is None
                and b.argval is None
                and c.argval is None
                # __exit__(None, None, None): PRECALL then CALL on 3.11, CALL
                # alone from 3.12 on (3.9 and 3.10 report no line event there)
                and d.opname in ("PRECALL", "CALL")
            ):
                exits.add(a.offset)
        found = _with_exits[code] = frozenset(exits)
    return found


class Injector:
    """``with Injector(at=n, exc=KeyboardInterrupt) as inj: operation()``:
    raise ``exc`` at the n-th point (see the module docstring); ``inj.count``
    is the number of points passed, ``inj.fired`` where it was raised."""

    def __init__(self, at: int | None = None, exc: type[BaseException] = KeyboardInterrupt) -> None:
        self.at = at
        self.exc = exc
        self.count: int = 0
        self.fired: str | None = None
        self.points: list[str] = []
        self.record: bool = at is None
        self._gc_frame: FrameType | None = None

    def _point(self, where: str) -> None:
        self.count += 1
        if self.record:
            self.points.append(where)
        if self.count == self.at:
            self.fired = where
            sys.settrace(None)
            raise self.exc(f"injected at point {self.count}: {where}")

    def _global(self, frame: FrameType, event: str, arg: Any) -> _TraceFunction | None:
        if self.fired is not None or self._gc_frame is not None:
            return None
        code = frame.f_code
        if _run_by_the_gc(code):
            # A finalizer (a forgotten pool's __del__) or a gc callback runs
            # wherever a collection happens to strike: no step of the operation,
            # and an exception there would only be printed, not raised. Nothing
            # it calls is a point either, until it returns.
            self._gc_frame = frame

            def until_return(frame: FrameType, event: str, arg: Any) -> _TraceFunction:
                if event == "return":
                    self._gc_frame = None
                return until_return

            return until_return
        if is_pool_code(code.co_filename):
            if code.co_name in ATOMIC:
                return None
            first = [True]
            exits = with_exit_offsets(code)

            def local(frame: FrameType, event: str, arg: Any) -> _TraceFunction:
                if event == "line" and self.fired is None:
                    if first[0]:
                        first[0] = False  # the call itself: see the module docstring
                    elif frame.f_lasti not in exits:
                        self._point(
                            f"{os.path.basename(code.co_filename)}:{frame.f_lineno} {code.co_name}"
                        )
                return local

            return local
        back = frame.f_back
        if (
            back is not None
            and is_pool_code(back.f_code.co_filename)
            and event == "call"
            and back.f_code.co_name not in ATOMIC
        ):
            self._point(
                f"call {code.co_name} ({os.path.basename(code.co_filename)})"
                f" from {back.f_code.co_name}:{back.f_lineno}"
            )
        return None

    def __enter__(self) -> "Injector":
        sys.settrace(self._global)
        return self

    @staticmethod
    @contextlib.contextmanager
    def paused() -> Iterator[None]:
        """No points inside (set-up steps of a scenario, in the same thread)."""
        trace = sys.gettrace()
        sys.settrace(None)
        try:
            yield
        finally:
            sys.settrace(trace)

    def __exit__(self, *exc: object) -> None:
        sys.settrace(None)


def run_points(
    operation: Callable[[Injector], object],
    *,
    excs: tuple[type[BaseException], ...] = (KeyboardInterrupt, SystemExit),
    after: Callable[[int, Injector], object],
) -> int:
    """Count the points of ``operation`` (a clean run), then run it once per
    point with an exception delivered there (cycling through ``excs``), calling
    ``after(n, injector)`` after each. Returns the number of points."""
    with Injector() as clean:
        operation(clean)
    after(0, clean)
    total = clean.count
    for n in range(1, total + 1):
        exc = excs[(n - 1) % len(excs)]
        inj = Injector(at=n, exc=exc)
        try:
            with inj:
                operation(inj)
        except exc as ex:
            assert inj.fired is not None and str(ex).startswith("injected"), ex
        after(n, inj)
    return total


# -- the books ----------------------------------------------------------------


@dataclass
class PoolBooks:
    size: int  # pool_size: connections in the pool + being connected
    idle: int
    checked_out: int  # held by a caller (returned to it by getconn)
    held: int  # in use but by nobody's caller: in the middle of an operation, or lost
    connecting: int

    @property
    def balanced(self) -> bool:
        return self.idle + self.checked_out + self.held + self.connecting == self.size

    @property
    def stranded(self) -> int:
        """Slots neither idle, with a caller nor being connected: held by
        nobody, or gone from the pure-Python ring between two of its steps."""
        return self.size - self.idle - self.checked_out - self.connecting


def _owner(conn: object) -> object:
    return getattr(conn, "_pool", None)


def pool_books(pool: _AnyPool) -> PoolBooks:
    """The pool's own view, read under its lock."""
    with pool._lock:
        in_use = pool._ring.in_use()
        idle = pool._ring.idle_count()
        out = sum(1 for s in in_use if _owner(pool._slots[s].conn) is pool)
        return PoolBooks(
            size=pool._nconns,
            idle=idle,
            checked_out=out,
            held=len(in_use) - out,
            connecting=pool._connecting,
        )


def server_backends(admin: psycopg.Connection[Any], app: str) -> int:
    return admin.execute(  # type: ignore[index, no-any-return]  # count(*): one row, an int
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", [app]
    ).fetchone()[0]


def assert_conserved(
    pool: _AnyPool,
    admin: psycopg.Connection[Any],
    app: str,
    *,
    size: int | None = None,
    checked_out: int = 0,
    timeout: float = 15.0,
    context: str = "",
    may_strand: int = 0,
) -> PoolBooks:
    """Wait (up to ``timeout``) for the pool to settle, then require: books
    balanced with nothing held by nobody, ``checked_out`` connections with
    callers, ``pool_size`` equal to ``size`` (if given: replacements made) and
    to the server's count of the pool's backends. Returns the books.

    ``may_strand``: how many slots may be stranded instead (``PoolBooks.stranded``), one at most per
    exception that landed in a residual window (``landed_in_residual_window``);
    the ring's invariants are checked only when none is."""
    deadline = time.monotonic() + timeout
    while True:
        books = pool_books(pool)
        backends = server_backends(admin, app)
        ok = (
            # every slot held by nobody is among the stranded (so with
            # may_strand 0: balanced, nothing held by nobody)
            books.held <= books.stranded <= may_strand
            and books.connecting == 0
            and books.checked_out == checked_out
            and backends == books.size
            and (size is None or books.size == size)
        )
        if ok:
            if books.stranded == 0:
                pool._ring.check_invariants()
            return books
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{context}: books {books} (balanced: {books.balanced}),"
                f" server backends {backends}, expected size {size},"
                f" checked out {checked_out}, waiting {len(pool._waiting)},"
                f" may strand {may_strand}"
            )
        time.sleep(0.01)


def async_exc(thread: threading.Thread, exc: type[BaseException]) -> None:
    """Raise ``exc`` in ``thread`` at its next bytecode check
    (``PyThreadState_SetAsyncExc``)."""
    import ctypes

    n = ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread.ident),  # type: ignore[arg-type]  # a started thread has an ident
        ctypes.py_object(exc),
    )
    if n != 1:
        raise RuntimeError(f"PyThreadState_SetAsyncExc reached {n} threads")
