"""Nothing hangs, nothing is lost: an exception (KeyboardInterrupt, SystemExit,
an asynchronous exception, a cancellation) delivered anywhere in a checkout, a
hand-over to a waiting client or a return leaves every connection returned,
replaced or closed, and the exception reaches the caller.

Each scenario runs once clean to count its injection points (see
tests.support.interrupts), then once per point with the exception delivered
there, on the same pool; after every run the books must balance against the
server (pool_size = idle + checked out + connecting = the pool's backends in
pg_stat_activity) and a fresh checkout must work. The figures (points, runs)
are printed for the README's reliability section."""

from __future__ import annotations

import collections
import itertools
import logging
import os
import signal
import sys
import threading
import time
from typing import Any, Callable

import psycopg
import pytest

import fastpool
from fastpool import ConnectionPool, NullConnectionPool
from tests.support.interrupts import (
    Injector,
    assert_conserved,
    async_exc,
    landed_in_residual_window,
    pool_books,
    pool_landing_spot,
    run_points,
)

pytestmark = pytest.mark.postgres

_apps = itertools.count()


def app_name(tag: str) -> str:
    return f"fastpool-intr-{os.getpid()}-{tag}-{next(_apps)}"


@pytest.fixture
def make(pg_dsn: str, closing_pools: list):
    def make(cls: Any = ConnectionPool, tag: str = "p", **kwargs: Any) -> tuple[Any, str]:
        app = app_name(tag)
        kwargs.setdefault("timeout", 10.0)
        kwargs.setdefault("kwargs", {})
        kwargs["kwargs"] = dict(kwargs["kwargs"], application_name=app)
        p = cls(pg_dsn, open=True, **kwargs)
        closing_pools.append(p)
        if kwargs.get("min_size", 4 if cls is ConnectionPool else 0):
            p.wait(10)
        return p, app

    return make


def report(name: str, points: int) -> None:
    print(f"\n{name}: {points} injection points, {points + 1} runs, books balanced after each")


class Holder:
    """What a scenario holds across an interrupt, to give back afterwards."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self.conns: list[Any] = []

    def give_back(self) -> None:
        # A connection the interrupted call had not taken yet is still ours.
        for conn in self.conns:
            if getattr(conn, "_pool", None) is self.pool:
                self.pool.putconn(conn)
        self.conns.clear()


def check_after(pool: Any, admin: Any, app: str, holder: Holder, size: int | None, name: str):
    def after(n: int, inj: Injector) -> None:
        holder.give_back()
        assert_conserved(pool, admin, app, size=size, context=f"{name} point {n} ({inj.fired})")
        with pool.connection(timeout=10) as conn:  # a fresh checkout works
            conn.execute("SELECT 1")
        assert_conserved(pool, admin, app, size=size, context=f"{name} point {n}, after a checkout")
        assert pool_books(pool).checked_out == 0

    return after


# -- checkout and return, one thread ----------------------------------------------


def test_getconn_putconn_with_check_reset_and_rollback(make, admin) -> None:
    """check on checkout, a transaction left open (rollback on return), reset."""
    resets = []

    def reset(conn: Any) -> None:
        resets.append(1)
        conn.execute("SET application_name TO DEFAULT") if False else None

    pool, app = make(min_size=2, max_size=2, check=ConnectionPool.check_connection, reset=reset)
    h = Holder(pool)

    def op(inj: Injector) -> None:
        conn = pool.getconn()
        h.conns.append(conn)
        conn.execute("SELECT 1")  # leaves a transaction open: rolled back on return
        pool.putconn(conn)

    n = run_points(op, after=check_after(pool, admin, app, h, 2, "getconn/putconn"))
    assert n > 20 and resets
    report("getconn/putconn with check, rollback and reset", n)


def test_connection_block_commit(make, admin) -> None:
    """``with pool.connection()``: commit on exit, or rollback after an error."""
    pool, app = make(min_size=2, max_size=2)
    h = Holder(pool)

    def op(inj: Injector) -> None:
        with pool.connection() as conn:
            conn.execute("SELECT 1")
        with pytest.raises(ZeroDivisionError):
            with pool.connection() as conn:
                conn.execute("SELECT 1")
                1 / 0

    n = run_points(op, after=check_after(pool, admin, app, h, 2, "connection()"))
    report("connection() block, commit and rollback", n)


def test_expired_connection_replaced(make, admin) -> None:
    pool, app = make(min_size=2, max_size=2, max_lifetime=600)
    h = Holder(pool)

    def op(inj: Injector) -> None:
        with pool._lock:
            for slot in pool._ring.idle():
                pool._slots[slot].expire_at = 0.0  # every idle connection expired
        with pool.connection() as conn:
            conn.execute("SELECT 1")

    n = run_points(op, after=check_after(pool, admin, app, h, 2, "expired"))
    report("checkout of expired connections", n)


def test_check_and_drain(make, admin) -> None:
    pool, app = make(min_size=3, max_size=3)
    h = Holder(pool)

    def op(inj: Injector) -> None:
        pool.check()
        pool.drain()

    n = run_points(op, after=check_after(pool, admin, app, h, 3, "check/drain"))
    report("check() and drain()", n)


# -- hand-over to a waiting thread ---------------------------------------------------


def _serve_when_queued(pool: Any, conn: Any, done: threading.Event) -> threading.Thread:
    """Another thread returns ``conn`` as soon as somebody is queued (or the
    operation ended without queueing)."""

    def run() -> None:
        while not done.is_set() and pool.get_stats()["requests_waiting"] == 0:
            time.sleep(0.0005)
        pool.putconn(conn)

    t = threading.Thread(target=run)
    t.start()
    return t


def _checkout_served_by(
    pool: Any, held: Any, h: Holder, then: Callable[[], None] = lambda: None
) -> None:
    """Check a connection out and back in while the pool is exhausted: the
    caller queues until another thread returns ``held`` (the interrupted
    operation of the hand-over tests). ``then`` runs at the end, with the
    injection paused, whatever happened."""
    done = threading.Event()
    t = _serve_when_queued(pool, held, done)
    try:
        conn = pool.getconn()
        h.conns.append(conn)
        pool.putconn(conn)
    finally:
        done.set()
        with Injector.paused():
            t.join()
            then()


@pytest.mark.parametrize("cls", [ConnectionPool, NullConnectionPool])
def test_handover_to_waiting_thread(make, admin, cls) -> None:
    """The caller queues (the pool is exhausted), another thread returns a
    connection, which is handed over; the exception lands anywhere from the
    queueing to the caller having the connection."""
    sized = cls is ConnectionPool
    pool, app = make(cls, min_size=1 if sized else 0, max_size=1)
    h = Holder(pool)

    def op(inj: Injector) -> None:
        with Injector.paused():
            held = pool.getconn()
        _checkout_served_by(pool, held, h)

    n = run_points(
        op,
        after=check_after(pool, admin, app, h, 1 if sized else None, f"{cls.__name__} hand-over"),
    )
    report(f"{cls.__name__}: hand-over to a waiting thread", n)


def test_null_pool_failed_check_after_a_handover(make, admin) -> None:
    """Null pool, psycopg_pool's rules: the caller queues and is handed a
    connection that another thread returned in a transaction (rolled back); the
    check rejects it, so it goes back as a return would (closed: nobody else
    waits), and the checkout retries and connects. The exception lands
    anywhere in that, the check itself included."""
    reject = [False]

    def check(conn: Any) -> None:
        if reject[0]:
            reject[0] = False
            raise RuntimeError("rejected by check")

    pool, app = make(NullConnectionPool, max_size=1, check=check)
    h = Holder(pool)

    def op(inj: Injector) -> None:
        with Injector.paused():
            held = pool.getconn()
            held.execute("SELECT 1")
            reject[0] = True
        _checkout_served_by(pool, held, h, then=unreject)

    def unreject() -> None:
        reject[0] = False

    n = run_points(op, after=check_after(pool, admin, app, h, None, "null pool failed check"))
    assert n > 20
    report("NullConnectionPool: a failed check after a hand-over", n)


# -- real asynchronous exceptions and signals at the hand-over ------------------------


class _Boom(Exception):
    pass


@pytest.mark.parametrize("cls", [ConnectionPool, NullConnectionPool])
def test_async_exception_just_after_handover(make, admin, cls) -> None:
    """A thread blocked in getconn() is served by a putconn() whose thread
    raises an asynchronous exception in it at the same moment (while holding
    the GIL, so the exception lands right after the waiter wakes up, its
    wake-up consumed): getconn() raises it, nothing hangs, the connection goes
    on to the pool."""
    sized = cls is ConnectionPool
    pool, app = make(cls, min_size=1 if sized else 0, max_size=1)
    for _ in range(20):
        held = pool.getconn()
        outcome: list[Any] = []

        def waiter() -> None:
            try:
                outcome.append(pool.getconn(timeout=30))  # noqa: B023 - called within this iteration only
            except BaseException as ex:  # noqa: BLE001 - checked below
                outcome.append(ex)  # noqa: B023 - called within this iteration only

        t = threading.Thread(target=waiter)
        t.start()
        while pool.get_stats()["requests_waiting"] == 0:
            time.sleep(0.001)
        # Set the exception first, then serve: the waiter can only run again
        # once served, and then it meets the exception at its first check.
        async_exc(t, _Boom)
        pool.putconn(held)
        t.join(30)
        assert not t.is_alive(), "getconn() hung after the hand-over"
        got = outcome[0]
        if not isinstance(got, BaseException):  # it won the race: fine, give it back
            pool.putconn(got)
        else:
            assert isinstance(got, _Boom), got
        assert_conserved(pool, admin, app, size=1 if sized else None, context="async exc")
    with pool.connection(timeout=5) as conn:
        conn.execute("SELECT 1")


@pytest.fixture
def sigint_handled():
    """Python's own SIGINT handler for the test: a session started in the
    background inherits SIGINT ignored, and then interrupt_main() does nothing."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_interrupt_main_just_after_handover(make, admin, sigint_handled) -> None:
    """``_thread.interrupt_main()`` trips SIGINT's handler without waking the
    main thread, which is blocked in getconn(): the KeyboardInterrupt is raised
    as soon as the hand-over wakes it up."""
    import _thread

    pool, app = make(min_size=1, max_size=1)
    held = pool.getconn()

    def serve() -> None:
        while pool.get_stats()["requests_waiting"] == 0:
            time.sleep(0.001)
        _thread.interrupt_main()
        pool.putconn(held)

    t = threading.Thread(target=serve)
    t.start()
    with pytest.raises(KeyboardInterrupt):
        pool.getconn(timeout=30)
    t.join()
    assert_conserved(pool, admin, app, size=1, context="interrupt_main")
    with pool.connection(timeout=5) as conn:
        conn.execute("SELECT 1")


# -- an interrupt just after a return has given its slot back -------------------------


def _interrupt_after_give_back(pool: Any, monkeypatch: Any) -> None:
    """The next give-back of ``pool`` happens, then a KeyboardInterrupt lands
    in the returning thread, still inside the return (as a signal would, at
    the check CPython makes as soon as a call returns)."""
    real = pool._give_back

    def give_back_then_interrupt(slot: int) -> None:
        monkeypatch.setattr(pool, "_give_back", real)
        real(slot)
        raise KeyboardInterrupt("just after the give-back")

    monkeypatch.setattr(pool, "_give_back", give_back_then_interrupt)


def _return_interrupted_after_give_back(
    pool: Any, monkeypatch: Any, with_waiter: bool, give_back: Callable[[], None]
) -> Any:
    """Run ``give_back`` (a return of the pool's only connection) interrupted
    just after its give-back, with a thread queued for a connection or not:
    returns what that thread got (None without one)."""
    got: list[Any] = []
    t = None
    if with_waiter:
        t = threading.Thread(target=lambda: got.append(pool.getconn(timeout=30)))
        t.start()
        while pool.get_stats()["requests_waiting"] == 0:
            time.sleep(0.001)
    _interrupt_after_give_back(pool, monkeypatch)
    with pytest.raises(KeyboardInterrupt, match="just after the give-back"):
        give_back()
    if t is None:
        return None
    t.join(30)
    assert not t.is_alive(), "the waiter was never served"
    return got[0]


@pytest.mark.parametrize("with_waiter", [False, True], ids=["idle", "waiter"])
def test_interrupt_just_after_give_back(make, admin, monkeypatch, with_waiter) -> None:
    """The return (a rollback: the slow path) has handed the slot on, to the
    ring or to a waiting thread, when the exception lands: that connection is
    no longer the return's to close."""
    pool, app = make(min_size=1, max_size=1)
    held = pool.getconn()
    held.execute("SELECT 1")  # in a transaction: rolled back on return
    got = _return_interrupted_after_give_back(
        pool, monkeypatch, with_waiter, lambda: pool.putconn(held)
    )
    assert not held.closed
    if got is not None:
        assert got is held
        got.execute("SELECT 1")
        pool.putconn(got)
    assert_conserved(pool, admin, app, size=1, context="interrupt after give-back")
    with pool.connection(timeout=5) as conn:
        assert conn is held
        conn.execute("SELECT 1")


@pytest.mark.parametrize("in_transaction", [False, True], ids=["clean", "in-transaction"])
@pytest.mark.parametrize("with_waiter", [False, True], ids=["idle", "waiter"])
def test_dbapi_interrupt_just_after_give_back(
    pg_dsn: str, admin, closing_pools: list, monkeypatch, with_waiter, in_transaction
) -> None:
    """fastpool.Pool, on its common return path and on the one that rolls back."""
    psycopg2 = pytest.importorskip("psycopg2")
    app = app_name("dbapi-given")
    dsn = psycopg.conninfo.make_conninfo(pg_dsn, application_name=app)
    pool = fastpool.Pool(lambda: psycopg2.connect(dsn), min_size=1, max_size=1, timeout=10)
    closing_pools.append(pool)
    pool.wait(10)
    conn = pool.getconn()
    raw = conn.raw
    if in_transaction:
        conn.cursor().execute("SELECT 1")
    got = _return_interrupted_after_give_back(
        pool, monkeypatch, with_waiter, lambda: pool.putconn(conn)
    )
    assert not raw.closed
    if got is not None:
        assert got.raw is raw
        got.cursor().execute("SELECT 1")
        pool.putconn(got)
    assert_conserved(pool, admin, app, size=1, context="dbapi interrupt after give-back")
    with pool.connection(timeout=5) as fresh:
        assert fresh.raw is raw
        fresh.cursor().execute("SELECT 1")


# -- the per-thread waiter: a signal handler's checkout while its thread waits -------


def test_reentrant_getconn_gets_its_own_waiter(make, admin, monkeypatch) -> None:
    """A signal handler running while its thread is queued in getconn() checks
    out a connection itself (simulated by a patched wait). It must not share
    the queued waiter: both checkouts succeed, each with its own connection."""
    from fastpool import waiting

    pool, app = make(min_size=2, max_size=2)
    a = pool.getconn()
    b = pool.getconn()
    real_wait = waiting.Waiter.wait
    seen: list[Any] = []

    def returner() -> None:
        pool.putconn(a)  # goes to the outer waiter, first in the queue
        while pool.get_stats()["requests_waiting"] == 0:  # until the inner one queues
            time.sleep(0.001)
        pool.putconn(b)

    def handler_then_wait(self: Any, timeout: float) -> None:
        if not seen:  # the outer wait: a "signal handler" runs here
            seen.append(self)
            t = threading.Thread(target=returner)
            t.start()
            seen.append(pool.getconn(timeout=10))
            t.join()
        real_wait(self, timeout)

    monkeypatch.setattr(waiting.Waiter, "wait", handler_then_wait)
    outer = pool.getconn(timeout=10)
    monkeypatch.undo()
    assert outer is a and seen[1] is b
    pool.putconn(seen[1])
    pool.putconn(outer)
    assert_conserved(pool, admin, app, size=2, context="re-entrant getconn")
    w = waiting.thread_waiter()  # the thread's own waiter is free again
    assert w is seen[0]
    waiting.release_waiter(w)


# -- exceptions from the driver in the compiled return path ---------------------------


def _raising_connection_class(plan: dict[str, Any]) -> type:
    class Conn(psycopg.Connection):  # type: ignore[misc, type-arg]
        def commit(self) -> None:
            exc = plan.pop("commit", None)
            if exc:
                raise exc("injected in commit")
            super().commit()

        def rollback(self) -> None:
            exc = plan.pop("rollback", None)
            if exc:
                raise exc("injected in rollback")
            super().rollback()

    return Conn


@pytest.mark.parametrize("where", ["commit", "rollback", "reset", "check"])
@pytest.mark.parametrize("exc", [KeyboardInterrupt, SystemExit])
def test_driver_and_callbacks_raise_in_connection_block(make, admin, where, exc) -> None:
    """``with pool.connection()`` (the compiled context in the C build): the
    commit at the end of the block, the rollback after an error, the reset
    callback or the check raise a BaseException: it reaches the caller, the
    connection is returned or replaced."""
    plan: dict[str, Any] = {}

    def reset(conn: Any) -> None:
        e = plan.pop("reset", None)
        if e:
            raise e("injected in reset")

    def check(conn: Any) -> None:
        e = plan.pop("check", None)
        if e:
            raise e("injected in check")

    pool, app = make(
        min_size=2,
        max_size=2,
        connection_class=_raising_connection_class(plan),
        reset=reset,
        check=check,
    )
    for _ in range(3):
        plan[where] = exc
        with pytest.raises(exc, match="injected"):
            with pool.connection() as conn:
                conn.execute("SELECT 1")
                if where == "rollback":
                    raise ZeroDivisionError
        assert not plan
        assert_conserved(pool, admin, app, size=2, context=f"{where} raised {exc.__name__}")


# -- the async pools: cancellation and BaseException at each await of the return paths


def _async_raising_connection_class(plan: dict[str, Any]) -> type:
    class AConn(psycopg.AsyncConnection):  # type: ignore[misc, type-arg]
        async def commit(self) -> None:
            exc = plan.pop("commit", None)
            if exc:
                raise exc("injected in commit")
            await super().commit()

        async def rollback(self) -> None:
            exc = plan.pop("rollback", None)
            if exc:
                raise exc("injected in rollback")
            await super().rollback()

    return AConn


async def _async_conserved(pool: Any, admin: Any, app: str, size: int | None, context: str) -> None:
    import asyncio

    await asyncio.get_running_loop().run_in_executor(
        None, lambda: assert_conserved(pool, admin, app, size=size, context=context)
    )


@pytest.mark.parametrize("cls", ["pool", "null"])
@pytest.mark.parametrize("where", ["commit", "rollback", "reset", "check", "drain", "pool-check"])
@pytest.mark.parametrize("exc_name", ["CancelledError", "KeyboardInterrupt", "SystemExit"])
def test_async_return_paths(pg_dsn: str, admin, cls: str, where: str, exc_name: str) -> None:
    """``async with pool.connection()``: the commit, the rollback after an
    error, the reset callback, the check callback raise (a cancellation, or a
    BaseException), or ``check()``/``drain()`` are cancelled mid-way: the
    exception reaches the caller, every connection is returned, replaced or
    closed."""
    import asyncio

    if cls == "null" and where in ("reset", "check", "drain", "pool-check"):
        pytest.skip("a null pool has no idle connections to reset, check or drain")
    exc = {
        "CancelledError": asyncio.CancelledError,
        "KeyboardInterrupt": KeyboardInterrupt,
        "SystemExit": SystemExit,
    }[exc_name]
    plan: dict[str, Any] = {}
    app = app_name("async")

    async def reset(conn: Any) -> None:
        e = plan.pop("reset", None)
        if e:
            raise e("injected in reset")

    async def check(conn: Any) -> None:
        e = plan.pop("check", None)
        if e:
            raise e("injected in check")
        await fastpool.AsyncConnectionPool.check_connection(conn)

    async def main() -> None:
        klass = fastpool.AsyncConnectionPool if cls == "pool" else fastpool.AsyncNullConnectionPool
        sized = cls == "pool"
        pool = klass(
            pg_dsn,
            open=False,
            min_size=3 if sized else 0,
            max_size=3,
            timeout=10,
            connection_class=_async_raising_connection_class(plan),
            reset=reset,
            check=check if where == "check" else None,
            kwargs={"application_name": app},
        )
        await pool.open(wait=sized)
        try:
            for _ in range(3):
                if where in ("drain", "pool-check"):
                    # Each connection's close / check is a step the task can be
                    # cancelled at: cancel at the first one via the check.
                    plan["check"] = exc
                    target = pool.drain if where == "drain" else pool.check
                    if where == "drain":
                        orig = pool._close_quietly

                        async def close_then_raise(conn: Any) -> None:
                            await orig(conn)  # noqa: B023 - called within this iteration only
                            e = plan.pop("check", None)
                            if e:
                                raise e("injected in close")

                        pool._close_quietly = close_then_raise
                    else:
                        pool.check_connection = check
                    try:
                        with pytest.raises(exc, match="injected"):
                            await target()
                    finally:
                        pool.__dict__.pop("_close_quietly", None)
                        pool.__dict__.pop("check_connection", None)
                else:
                    plan[where] = exc
                    with pytest.raises(exc, match="injected"):
                        async with pool.connection() as conn:
                            await conn.execute("SELECT 1")
                            if where == "rollback":
                                raise ZeroDivisionError
                assert not plan
                await _async_conserved(
                    pool, admin, app, 3 if sized else None, f"{where} {exc_name}"
                )
                async with pool.connection() as conn:
                    await conn.execute("SELECT 1")
                await _async_conserved(
                    pool, admin, app, 3 if sized else None, f"{where} {exc_name} after"
                )
        finally:
            await pool.close()

    asyncio.run(main())


# -- the generic DB-API pool (psycopg2 driver) -------------------------------------------


def test_dbapi_pool_block_and_return(pg_dsn: str, admin, closing_pools: list) -> None:
    """fastpool.Pool: pre_ping on checkout, a with-block that commits, one
    that raises (rollback, ping on return), a return with a transaction open."""
    psycopg2 = pytest.importorskip("psycopg2")
    app = app_name("dbapi")
    dsn = psycopg.conninfo.make_conninfo(pg_dsn, application_name=app)
    pool = fastpool.Pool(
        lambda: psycopg2.connect(dsn), min_size=2, max_size=2, pre_ping=True, timeout=10
    )
    closing_pools.append(pool)
    pool.wait(10)
    h = Holder(pool)

    class DbapiHolder(Holder):
        def give_back(self) -> None:
            for conn in self.conns:
                if not conn.closed:
                    self.pool.putconn(conn)
            self.conns.clear()

    h = DbapiHolder(pool)

    def op(inj: Injector) -> None:
        with pool.connection() as conn:
            conn.cursor().execute("SELECT 1")
        with pytest.raises(ZeroDivisionError):
            with pool.connection() as conn:
                conn.cursor().execute("SELECT 1")
                1 / 0
        conn = pool.getconn()
        h.conns.append(conn)
        conn.cursor().execute("SELECT 1")  # open transaction: rolled back on return
        conn.close()

    def after(n: int, inj: Injector) -> None:
        h.give_back()
        assert_conserved(pool, admin, app, size=2, context=f"dbapi point {n} ({inj.fired})")
        with pool.connection(timeout=10) as conn:
            conn.cursor().execute("SELECT 1")
        assert_conserved(pool, admin, app, size=2, context=f"dbapi point {n}, after a checkout")

    n = run_points(op, after=after)
    report("fastpool.Pool (psycopg2): blocks, errors, returns", n)


# -- random interrupts under load ---------------------------------------------------


class _RandomBoom(Exception):
    pass


@pytest.mark.parametrize("cls", [ConnectionPool, NullConnectionPool])
def test_random_interrupts_under_load(make, admin, cls, monkeypatch) -> None:
    """8 threads cycle through a pool of 3 (with-blocks with a query, and
    getconn/putconn pairs) while another thread throws asynchronous
    exceptions at random ones every millisecond or so for 2 s. Wherever they
    land (in the pool, in psycopg, in the worker's own loop, which may then
    die holding a connection), afterwards the books balance, the server has
    exactly the pool's sessions, and a fresh checkout works. The one
    allowance: a slot stranded by an exception that landed in a residual
    window (``landed_in_residual_window``: on the pure-Python core, mostly its
    ring and hot path, which compiled are single C calls); never more slots
    than such landings."""
    import random

    sized = cls is ConnectionPool
    pool, app = make(cls, min_size=3 if sized else 0, max_size=3)
    stop = threading.Event()
    landed = [0]
    in_residual_window = [0]
    spots: collections.Counter[str] = collections.Counter()  # landings in the pool's code

    def worker() -> None:
        while not stop.is_set():
            try:
                if random.random() < 0.5:
                    with pool.connection() as conn:
                        conn.execute("SELECT 1")
                else:
                    conn = pool.getconn()
                    try:
                        conn.execute("SELECT 1")
                    finally:
                        pool.putconn(conn)
            except _RandomBoom as boom:
                landed[0] += 1
                if landed_in_residual_window(boom):
                    in_residual_window[0] += 1
                spots[pool_landing_spot(boom) or "elsewhere"] += 1
            except psycopg.Error:
                pass  # a query interrupted mid-protocol: its connection is replaced

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(8)]
    # No log handler runs meanwhile: an exception landing between a logging
    # handler's lock acquire and its try (CPython's logging, not the pool)
    # would leave that lock held and hang every later log call.
    logging.disable(logging.CRITICAL)
    # One landing in a finalizer (a connection's __del__) is only "unraisable":
    # an artefact of throwing exceptions into arbitrary code, not the pool's.
    monkeypatch.setattr(sys, "unraisablehook", lambda unraisable: None)
    try:
        for t in threads:
            t.start()
        sent = 0
        end = time.monotonic() + 2.0
        while time.monotonic() < end:
            victim = random.choice(threads)
            if victim.is_alive():
                async_exc(victim, _RandomBoom)
                sent += 1
            time.sleep(random.uniform(0.0005, 0.002))
        stop.set()
        for t in threads:
            t.join(30)
    finally:
        stop.set()
        logging.disable(logging.NOTSET)
    assert not any(t.is_alive() for t in threads), "a worker hung"
    died = sum(1 for t in threads if not t.is_alive())
    assert sent > 100
    # Workers that died holding a connection leave orphans: reclaimed by the scan.
    books = assert_conserved(
        pool,
        admin,
        app,
        size=3 if sized else None,
        context=f"random interrupts (landed at: {dict(spots)})",
        may_strand=in_residual_window[0],
    )
    with pool.connection() as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    print(
        f"\n{cls.__name__}: {sent} asynchronous exceptions sent to 8 threads in 2 s,"
        f" {landed[0]} caught by the workers ({in_residual_window[0]} in a residual window);"
        f" books settled, {books.stranded} slots stranded"
        f" ({died} threads joined, {fastpool.__impl__} core)"
    )
