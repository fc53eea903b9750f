"""Pure-Python twin of the compiled core (``src/_fastpool.pyx``).

Same class, same methods, same return values, same exceptions and messages; a
single re-entrant lock stands in for the atomics. It is the fallback where the
extension can't be built and the reference the compiled core is tested against.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

from ._constants import DEBUG_COUNTER_KEYS, MAX_COUNTERS
from ._constants import MAX_CAPACITY as MAX_CAPACITY  # (part of this module's interface)
from .errors import PoolInternalError

#: The twin has no debug build; its checks are always on. (Not shared with the
#: compiled core: there it says how the extension was compiled.)
DEBUG = False


def _as_slot(op: str, slot: Any) -> int:
    if not isinstance(slot, int):
        raise TypeError(f"{op}: slot must be an int, got {type(slot).__name__}")
    return slot


class SlotRing:
    """A fixed-capacity set of slots: idle indexes in released order (taken
    from the oldest end, or with ``lifo`` the newest) plus an in-use set."""

    __slots__ = ("_capacity", "_lock", "_idle", "_present", "_in_use", "_lifo", "_take")

    def __init__(self, capacity: int, *, lifo: bool = False) -> None:
        if not isinstance(capacity, int) or isinstance(capacity, bool):
            raise TypeError(f"capacity must be an int, got {type(capacity).__name__}")
        if not 1 <= capacity <= MAX_CAPACITY:
            raise ValueError(f"capacity must be between 1 and {MAX_CAPACITY}, got {capacity}")
        if type(lifo) is not bool:
            raise TypeError(f"lifo must be True or False, got {type(lifo).__name__}")
        self._capacity = capacity
        # Re-entrant: a garbage collection can run inside a locked section and call a
        # finalizer or weakref callback (SQLAlchemy returns a dropped connection so) that
        # releases or retires another slot on this ring from the same thread. A plain lock
        # would deadlock there; each operation touches only its own slot, so one nested
        # inside another leaves both consistent.
        self._lock = threading.RLock()
        # Oldest release at the left, newest at the right.
        self._idle: deque[int] = deque()
        self._present: set[int] = set()
        self._in_use: set[int] = set()
        self._lifo = lifo
        self._take = self._idle.pop if lifo else self._idle.popleft

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def lifo(self) -> bool:
        return self._lifo

    def _check_held(self, op: str, slot: int) -> None:
        # Caller holds the lock. Same order of checks as fp_release/fp_retire.
        if not 0 <= slot < self._capacity:
            raise IndexError(f"{op}: slot {slot} is out of range for capacity {self._capacity}")
        if slot not in self._present:
            raise ValueError(f"{op}: slot {slot} is not in the pool")
        if slot not in self._in_use:
            raise ValueError(f"{op}: slot {slot} is not in use")

    def try_acquire(self) -> int:
        with self._lock:
            if not self._idle:
                return -1
            slot = self._take()
            self._in_use.add(slot)
            return slot

    def try_acquire_oldest(self) -> int:
        with self._lock:
            if not self._idle:
                return -1
            slot = self._idle.popleft()
            self._in_use.add(slot)
            return slot

    def release(self, slot: int) -> None:
        slot = _as_slot("release", slot)
        with self._lock:
            self._check_held("release", slot)
            self._in_use.discard(slot)
            self._idle.append(slot)

    def add(self, *, acquired: bool = False) -> int:
        with self._lock:
            if len(self._present) >= self._capacity:
                raise ValueError(f"add: all {self._capacity} slots are already in the pool")
            slot = next(i for i in range(self._capacity) if i not in self._present)
            self._present.add(slot)
            if acquired:
                self._in_use.add(slot)
            else:
                self._idle.append(slot)
            return slot

    def retire(self, slot: int) -> None:
        slot = _as_slot("retire", slot)
        with self._lock:
            self._check_held("retire", slot)
            self._in_use.discard(slot)
            self._present.discard(slot)

    def idle_count(self) -> int:
        return len(self._idle)

    def in_use_count(self) -> int:
        return len(self._in_use)

    def size(self) -> int:
        return len(self._present)

    def is_in_use(self, slot: int) -> bool:
        slot = _as_slot("is_in_use", slot)
        if not 0 <= slot < self._capacity:
            raise IndexError(
                f"is_in_use: slot {slot} is out of range for capacity {self._capacity}"
            )
        return slot in self._in_use

    def in_use(self) -> list[int]:
        with self._lock:
            return sorted(self._in_use)

    def idle(self) -> list[int]:
        with self._lock:
            return list(self._idle)

    def check_invariants(self) -> None:
        with self._lock:
            idle = list(self._idle)
            held = set(self._in_use)
            present = set(self._present)
        problems = []
        if len(set(idle)) != len(idle):
            problems.append(f"an index is in the ring twice: {sorted(idle)}")
        both = set(idle) & held
        if both:
            problems.append(f"slots both idle and in use: {sorted(both)}")
        for s in idle:
            if s not in present:
                problems.append(f"slot {s} is in the ring but not in the pool")
        for s in sorted(held):
            if s not in present:
                problems.append(f"slot {s} is in use but not in the pool")
        if len(idle) + len(held) != len(present):
            problems.append(
                f"idle {len(idle)} + in use {len(held)} != slots in the pool {len(present)}"
            )
        if problems:
            raise PoolInternalError("check_invariants: " + "; ".join(problems))

    def debug_counters(self) -> dict[str, int]:
        return dict.fromkeys(DEBUG_COUNTER_KEYS, 0)

    def __repr__(self) -> str:
        return (
            f"<SlotRing capacity={self._capacity} size={self.size()} "
            f"idle={self.idle_count()} in_use={self.in_use_count()}>"
        )


class Counters:
    """Twin of the compiled ``Counters``: fixed int counters behind one lock."""

    __slots__ = ("_lock", "_values", "n")

    def __init__(self, n: int) -> None:
        if type(n) is not int or not 1 <= n <= MAX_COUNTERS:
            raise ValueError(f"n must be an int between 1 and {MAX_COUNTERS}, got {n!r}")
        self.n: int = n
        self._lock = threading.RLock()  # re-entrant for the same reason as SlotRing's
        self._values = [0] * n

    def _index(self, i: int) -> int:
        if not 0 <= i < self.n:
            raise IndexError(f"counter {i} out of range for {self.n} counters")
        return i

    def add(self, i: int, delta: int = 1) -> None:
        if not 0 <= i < self.n:  # inlined _index: this is on the twin's hot path
            raise IndexError(f"counter {i} out of range for {self.n} counters")
        with self._lock:
            self._values[i] += delta

    def add2(self, i: int, delta_i: int, j: int, delta_j: int) -> None:
        """Two adds for the price of one call (a histogram bucket and its sum)."""
        if not (0 <= i < self.n and 0 <= j < self.n):
            raise IndexError(f"counter {i} or {j} out of range for {self.n} counters")
        with self._lock:
            self._values[i] += delta_i
            self._values[j] += delta_j

    def get(self, i: int) -> int:
        return self._values[self._index(i)]

    def snapshot(self) -> list[int]:
        with self._lock:
            return list(self._values)

    def pop(self) -> list[int]:
        with self._lock:
            values, self._values = self._values, [0] * self.n
            return values
