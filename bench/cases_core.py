"""Core cases: one acquire+release of a slot, compiled ring vs the pure-Python
twin vs the containers a hand-written pool would use. Every implementation
holds 10 idle slots."""

from __future__ import annotations

import queue
import threading
from collections import deque
from typing import Callable

SLOTS = 10


def _load_cores() -> dict[str, object]:
    from fastpool import _pycore

    cores: dict[str, object] = {}
    try:
        from fastpool import _fastpool
    except ImportError as ex:
        print(f"note: compiled core unavailable ({ex}); fastpool.c skipped")
    else:
        cores["fastpool.c"] = _fastpool
    cores["fastpool.python"] = _pycore
    return cores


def _ring(core) -> object:
    ring = core.SlotRing(64)
    for _ in range(SLOTS):
        ring.add()
    return ring


def single_thread_cycles() -> dict[str, Callable[[int], None]]:
    """name -> cycle(n) doing n acquire+release pairs on one thread."""
    out: dict[str, Callable[[int], None]] = {}
    for name, core in _load_cores().items():
        ring = _ring(core)

        def cycle(n: int, acquire=ring.try_acquire, release=ring.release) -> None:
            for _ in range(n):
                release(acquire())

        out[name] = cycle

    d = deque(range(SLOTS))

    def deque_cycle(n: int, pop=d.popleft, push=d.append) -> None:
        for _ in range(n):
            push(pop())

    q: queue.SimpleQueue = queue.SimpleQueue()
    for i in range(SLOTS):
        q.put(i)

    def simplequeue_cycle(n: int, get=q.get, put=q.put) -> None:
        for _ in range(n):
            put(get())

    lock, items = threading.Lock(), list(range(SLOTS))

    def lock_list_cycle(n: int) -> None:
        for _ in range(n):
            with lock:
                i = items.pop()
            with lock:
                items.append(i)

    def empty_loop(n: int) -> None:
        for _ in range(n):
            pass

    out["collections.deque"] = deque_cycle
    out["queue.SimpleQueue"] = simplequeue_cycle
    out["threading.Lock+list"] = lock_list_cycle
    out["floor.empty_loop"] = empty_loop
    return out


def threaded_cycles() -> dict[str, Callable[[], bool]]:
    """name -> worker_cycle() doing one acquire+release, False if nothing was idle."""
    out: dict[str, Callable[[], bool]] = {}
    for name, core in _load_cores().items():
        ring = _ring(core)

        def cycle(acquire=ring.try_acquire, release=ring.release) -> bool:
            s = acquire()
            if s < 0:
                return False
            release(s)
            return True

        out[name] = cycle
    d = deque(range(SLOTS))

    def deque_cycle(pop=d.popleft, push=d.append) -> bool:
        try:
            s = pop()
        except IndexError:
            return False
        push(s)
        return True

    out["collections.deque"] = deque_cycle
    return out
