"""Unit tests of SlotRing, each run against the compiled core and the twin."""

from __future__ import annotations

import pytest


def ring_with(core, capacity: int, n: int):
    ring = core.SlotRing(capacity)
    for _ in range(n):
        ring.add()
    return ring


def snapshot(ring) -> tuple:
    return (ring.idle(), ring.in_use(), ring.size(), ring.idle_count(), ring.in_use_count())


@pytest.mark.parametrize("bad", ["8", 8.0, None, [8]])
def test_capacity_of_wrong_type_is_a_type_error(core, bad) -> None:
    with pytest.raises(TypeError, match="capacity must be an int"):
        core.SlotRing(bad)


def test_capacity_bool_is_rejected(core) -> None:
    with pytest.raises(TypeError, match="capacity must be an int, got bool"):
        core.SlotRing(True)


@pytest.mark.parametrize("bad", [0, -1, (1 << 20) + 1])
def test_capacity_out_of_bounds_is_a_value_error(core, bad) -> None:
    with pytest.raises(ValueError, match=f"capacity must be between 1 and 1048576, got {bad}"):
        core.SlotRing(bad)


def test_new_ring_is_empty(core) -> None:
    ring = core.SlotRing(5)
    assert ring.capacity == 5
    assert snapshot(ring) == ([], [], 0, 0, 0)
    assert ring.try_acquire() == -1
    ring.check_invariants()


def test_add_takes_the_lowest_absent_slot_and_makes_it_idle(core) -> None:
    ring = core.SlotRing(4)
    assert [ring.add() for _ in range(3)] == [0, 1, 2]
    assert ring.idle() == [0, 1, 2]
    assert ring.size() == 3 and ring.idle_count() == 3 and ring.in_use_count() == 0


def test_add_acquired_returns_a_held_slot_that_skips_the_ring(core) -> None:
    ring = ring_with(core, 4, 1)
    slot = ring.add(acquired=True)
    assert slot == 1
    assert ring.is_in_use(1) and ring.in_use() == [1]
    assert ring.idle() == [0]
    ring.release(1)
    assert ring.idle() == [0, 1]


def test_add_when_full_raises_and_changes_nothing(core) -> None:
    ring = ring_with(core, 3, 3)
    before = snapshot(ring)
    with pytest.raises(ValueError, match="add: all 3 slots are already in the pool"):
        ring.add()
    with pytest.raises(ValueError, match="add: all 3 slots are already in the pool"):
        ring.add(acquired=True)
    assert snapshot(ring) == before
    ring.check_invariants()


def test_try_acquire_hands_out_idle_slots_oldest_first(core) -> None:
    ring = ring_with(core, 8, 3)
    assert [ring.try_acquire() for _ in range(3)] == [0, 1, 2]
    assert ring.try_acquire() == -1
    ring.release(1)
    ring.release(0)
    assert ring.try_acquire() == 1
    assert ring.try_acquire() == 0


def test_release_makes_the_slot_idle_again(core) -> None:
    ring = ring_with(core, 2, 2)
    slot = ring.try_acquire()
    assert ring.is_in_use(slot) and ring.in_use_count() == 1
    ring.release(slot)
    assert not ring.is_in_use(slot)
    assert ring.idle() == [1, 0] and ring.in_use() == []
    ring.check_invariants()


def test_double_release_raises_and_changes_nothing(core) -> None:
    ring = ring_with(core, 4, 2)
    slot = ring.try_acquire()
    ring.release(slot)
    before = snapshot(ring)
    with pytest.raises(ValueError, match=f"release: slot {slot} is not in use"):
        ring.release(slot)
    assert snapshot(ring) == before
    ring.check_invariants()


def test_release_of_an_idle_slot_raises_and_changes_nothing(core) -> None:
    ring = ring_with(core, 4, 2)
    before = snapshot(ring)
    with pytest.raises(ValueError, match="release: slot 0 is not in use"):
        ring.release(0)
    assert snapshot(ring) == before


def test_release_of_a_slot_never_added_raises(core) -> None:
    ring = ring_with(core, 4, 2)
    before = snapshot(ring)
    with pytest.raises(ValueError, match="release: slot 3 is not in the pool"):
        ring.release(3)
    assert snapshot(ring) == before


@pytest.mark.parametrize("bad", [-1, 4, 10**30, -(10**30)])
def test_release_out_of_range_is_an_index_error(core, bad) -> None:
    ring = ring_with(core, 4, 4)
    ring.try_acquire()
    before = snapshot(ring)
    with pytest.raises(IndexError, match=f"release: slot {bad} is out of range for capacity 4"):
        ring.release(bad)
    assert snapshot(ring) == before


@pytest.mark.parametrize("bad", ["0", 0.0, None])
def test_release_of_a_non_int_is_a_type_error(core, bad) -> None:
    ring = ring_with(core, 4, 1)
    ring.try_acquire()
    with pytest.raises(TypeError, match="release: slot must be an int"):
        ring.release(bad)
    assert ring.in_use() == [0]


def test_retire_takes_a_held_slot_out_and_add_reuses_its_index(core) -> None:
    ring = ring_with(core, 4, 3)
    slot = ring.try_acquire()
    ring.retire(slot)
    assert ring.size() == 2 and ring.in_use() == [] and slot not in ring.idle()
    ring.check_invariants()
    assert ring.add() == slot  # the lowest absent index again
    assert ring.idle()[-1] == slot


def test_retire_of_an_idle_slot_raises_and_changes_nothing(core) -> None:
    ring = ring_with(core, 4, 2)
    before = snapshot(ring)
    with pytest.raises(ValueError, match="retire: slot 1 is not in use"):
        ring.retire(1)
    assert snapshot(ring) == before


def test_retire_twice_raises(core) -> None:
    ring = ring_with(core, 4, 2)
    slot = ring.try_acquire()
    ring.retire(slot)
    with pytest.raises(ValueError, match=f"retire: slot {slot} is not in the pool"):
        ring.retire(slot)
    with pytest.raises(ValueError, match=f"release: slot {slot} is not in the pool"):
        ring.release(slot)
    ring.check_invariants()


def test_retire_out_of_range_is_an_index_error(core) -> None:
    ring = ring_with(core, 4, 1)
    with pytest.raises(IndexError, match="retire: slot 9 is out of range for capacity 4"):
        ring.retire(9)


def test_in_use_lists_held_slots_in_ascending_order(core) -> None:
    ring = ring_with(core, 130, 130)  # more than two bitmap words
    held = [ring.try_acquire() for _ in range(130)]
    for s in held[::2]:
        ring.release(s)
    assert ring.in_use() == sorted(held[1::2])
    assert ring.in_use_count() == 65 and ring.idle_count() == 65
    ring.check_invariants()


def test_is_in_use_checks_its_argument(core) -> None:
    ring = ring_with(core, 2, 1)
    with pytest.raises(IndexError, match="is_in_use: slot 2 is out of range"):
        ring.is_in_use(2)
    with pytest.raises(TypeError, match="is_in_use: slot must be an int"):
        ring.is_in_use("0")


def test_capacity_not_a_power_of_two_uses_every_slot(core) -> None:
    ring = ring_with(core, 7, 7)
    assert sorted(ring.try_acquire() for _ in range(7)) == list(range(7))
    assert ring.try_acquire() == -1
    for s in range(7):
        ring.release(s)
    assert ring.idle() == list(range(7))


def test_ring_survives_many_laps(core) -> None:
    # The ring has 2x capacity cells; indexes wrap around many times.
    ring = ring_with(core, 3, 3)
    order = []
    for _ in range(1000):
        s = ring.try_acquire()
        order.append(s)
        ring.release(s)
    assert order[:6] == [0, 1, 2, 0, 1, 2]
    assert ring.idle_count() == 3
    ring.check_invariants()


# -- lifo=True: the slot released last is handed out first ----------------------


def lifo_ring(core, capacity: int, n: int):
    ring = core.SlotRing(capacity, lifo=True)
    for _ in range(n):
        ring.add()
    return ring


def test_rings_are_fifo_unless_asked(core) -> None:
    assert core.SlotRing(2).lifo is False
    assert core.SlotRing(2, lifo=True).lifo is True


@pytest.mark.parametrize("bad", [1, 0, "yes", None])
def test_lifo_must_be_a_bool(core, bad) -> None:
    with pytest.raises(TypeError, match=f"lifo must be True or False, got {type(bad).__name__}"):
        core.SlotRing(4, lifo=bad)


def test_lifo_hands_out_the_slot_released_last(core) -> None:
    ring = lifo_ring(core, 8, 4)
    assert ring.idle() == [0, 1, 2, 3]  # oldest first: add() made them idle in this order
    assert [ring.try_acquire() for _ in range(4)] == [3, 2, 1, 0]
    assert ring.try_acquire() == -1
    for s in (2, 0, 3, 1):
        ring.release(s)
    assert ring.idle() == [2, 0, 3, 1] and ring.idle_count() == 4
    assert ring.try_acquire() == 1
    ring.release(1)
    assert ring.try_acquire() == 1  # one caller keeps getting the same slot
    ring.check_invariants()


def test_try_acquire_oldest_takes_the_slot_released_longest_ago(core) -> None:
    for ring in (ring_with(core, 8, 4), lifo_ring(core, 8, 4)):
        assert ring.try_acquire_oldest() == 0
        assert ring.idle() == [1, 2, 3] and ring.in_use() == [0]
        ring.release(0)
        assert ring.idle() == [1, 2, 3, 0]
        ring.check_invariants()


def test_try_acquire_oldest_of_one_and_of_none(core) -> None:
    ring = lifo_ring(core, 2, 1)
    assert ring.try_acquire_oldest() == 0
    assert ring.try_acquire_oldest() == -1
    assert ring.idle() == [] and ring.in_use() == [0]
    ring.release(0)
    assert ring.try_acquire() == 0


def test_lifo_visiting_every_idle_slot_once_keeps_their_order(core) -> None:
    # Maintenance (expiry sweep, check(), drain()): n times, claim the oldest
    # and give it back.
    ring = lifo_ring(core, 8, 5)
    assert [ring.try_acquire_oldest() for _ in range(2)] == [0, 1]
    ring.release(1)  # an order unlike the slot numbers
    ring.release(0)
    before = ring.idle()
    visited = []
    for _ in range(ring.idle_count()):
        slot = ring.try_acquire_oldest()
        visited.append(slot)
        ring.release(slot)
    assert visited == before == [2, 3, 4, 1, 0]
    assert ring.idle() == before


def test_lifo_retire_and_add_reuse(core) -> None:
    ring = lifo_ring(core, 4, 3)
    slot = ring.try_acquire()
    assert slot == 2
    ring.retire(slot)
    assert ring.idle() == [0, 1] and ring.size() == 2
    assert ring.add() == 2  # the lowest absent index, on top
    assert ring.try_acquire() == 2
    assert ring.add(acquired=True) == 3
    assert ring.in_use() == [2, 3] and ring.idle_count() == 2
    ring.check_invariants()


def test_lifo_errors_are_the_fifo_ones(core) -> None:
    ring = lifo_ring(core, 4, 2)
    ring.try_acquire()
    before = snapshot(ring)
    for call, msg in (
        (lambda: ring.release(0), "release: slot 0 is not in use"),
        (lambda: ring.release(3), "release: slot 3 is not in the pool"),
        (lambda: ring.retire(0), "retire: slot 0 is not in use"),
    ):
        with pytest.raises(ValueError, match=msg):
            call()
    with pytest.raises(IndexError, match="release: slot 9 is out of range for capacity 4"):
        ring.release(9)
    assert snapshot(ring) == before
    ring.check_invariants()


def test_lifo_survives_many_cycles(core) -> None:
    # Every push and pop moves the top word's version: many updates of one
    # slot must not confuse the stack.
    ring = lifo_ring(core, 3, 3)
    for i in range(3000):
        s = ring.try_acquire() if i % 5 else ring.try_acquire_oldest()
        ring.release(s)
    assert sorted(ring.idle()) == [0, 1, 2] and ring.idle_count() == 3
    ring.check_invariants()


def test_repr_shows_the_counts(core) -> None:
    ring = ring_with(core, 4, 2)
    ring.try_acquire()
    assert repr(ring) == "<SlotRing capacity=4 size=2 idle=1 in_use=1>"


def test_debug_counters_have_the_documented_keys(core) -> None:
    assert set(core.SlotRing(1).debug_counters()) == {"acquires", "releases", "adds", "retires"}


MISUSES = [
    ("release idle", lambda r: r.release(1)),
    ("release absent", lambda r: r.release(3)),
    ("release negative", lambda r: r.release(-5)),
    ("release huge", lambda r: r.release(2**70)),
    ("release str", lambda r: r.release("1")),
    ("retire idle", lambda r: r.retire(1)),
    ("retire absent", lambda r: r.retire(3)),
    ("is_in_use out of range", lambda r: r.is_in_use(8)),
    ("add full", lambda r: [r.add() for _ in range(10)]),
]


@pytest.mark.parametrize("name,misuse", MISUSES, ids=[m[0] for m in MISUSES])
def test_both_implementations_report_misuse_identically(c_core, name, misuse) -> None:
    # Both twins at once: runs where the compiled core's tests do.
    from fastpool import _pycore

    outcomes = []
    for mod in (c_core, _pycore):
        ring = ring_with(mod, 4, 2)
        ring.try_acquire()
        with pytest.raises(Exception) as info:
            misuse(ring)
        outcomes.append((type(info.value), str(info.value), snapshot(ring)))
    assert outcomes[0] == outcomes[1]


def test_a_collection_inside_a_locked_operation_can_release_another_slot(python_core) -> None:
    """A garbage collection may run inside any operation of the pure-Python ring, with its lock
    held, and call a callback that returns another connection to the same ring from the same
    thread (SQLAlchemy returns dropped connections from weakref callbacks). That nested release
    must neither deadlock nor corrupt the ring. (The compiled ring takes no lock.)"""
    import gc
    import inspect
    import sys
    import threading

    ring = ring_with(python_core, 8, 2)
    held = ring.try_acquire()
    released: list[int] = []

    add_code = python_core.SlotRing.add.__code__
    lines, first = inspect.getsourcelines(add_code)
    locked_from = first + next(i for i, line in enumerate(lines) if "with self._lock" in line)

    def inside_a_ring_operation() -> bool:
        """True when called (by the collector) with add()'s lock held."""
        frame = sys._getframe(2)
        while frame is not None:
            if frame.f_code is add_code:
                return frame.f_lineno > locked_from
            frame = frame.f_back
        return False

    def release_during_collection(phase: str, info: dict) -> None:
        if phase == "start" and not released and inside_a_ring_operation():
            released.append(held)
            ring.release(held)

    def operate() -> None:
        old = gc.get_threshold()
        gc.callbacks.append(release_during_collection)
        gc.set_threshold(1)  # collect at (nearly) every tracked allocation: add() makes one
        try:
            for _ in range(10_000):
                ring.retire(ring.add(acquired=True))
                if released:
                    break
        finally:
            gc.set_threshold(*old)
            gc.callbacks.remove(release_during_collection)

    worker = threading.Thread(target=operate, daemon=True)
    worker.start()
    worker.join(60)  # a hang detector, not a speed limit: it returns in milliseconds
    assert not worker.is_alive(), "a release nested in a ring operation deadlocked"
    assert released == [held], "no collection ran inside add(): the test did not test"
    assert ring.in_use() == []
    assert sorted(ring.idle()) == [0, 1]
    ring.check_invariants()
