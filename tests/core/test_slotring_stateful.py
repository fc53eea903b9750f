"""SlotRing against a simple model, as a hypothesis state machine, and the
compiled core against the twin on the same random operation sequences."""

from __future__ import annotations

from collections import deque

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    multiple,
    precondition,
    rule,
)

from fastpool import _pycore

CAPACITY = 6


def machine_for(core, lifo: bool):
    class SlotRingMachine(RuleBasedStateMachine):
        """Model: idle is a deque of indexes in the order they became idle
        (taken from the left, or with ``lifo`` from the right; the oldest is
        always the leftmost), held a set; absent = the rest."""

        held = Bundle("held")

        def __init__(self) -> None:
            super().__init__()
            self.ring = core.SlotRing(CAPACITY, lifo=lifo)
            assert self.ring.lifo is lifo
            self.idle: deque[int] = deque()
            self.in_use: set[int] = set()

        def absent(self) -> list[int]:
            return [s for s in range(CAPACITY) if s not in self.idle and s not in self.in_use]

        @precondition(lambda self: self.absent())
        @rule()
        def add_idle(self) -> None:
            slot = self.ring.add()
            assert slot == min(self.absent())
            self.idle.append(slot)

        @precondition(lambda self: self.absent())
        @rule(target=held)
        def add_acquired(self) -> int:
            slot = self.ring.add(acquired=True)
            assert slot == min(self.absent())
            self.in_use.add(slot)
            return slot

        @precondition(lambda self: not self.absent())
        @rule()
        def add_when_full_fails(self) -> None:
            with pytest.raises(ValueError, match="already in the pool"):
                self.ring.add()

        @rule(target=held)
        def acquire(self):
            slot = self.ring.try_acquire()
            if not self.idle:
                assert slot == -1
                return multiple()  # nothing new held
            assert slot == (self.idle.pop() if lifo else self.idle.popleft())
            self.in_use.add(slot)
            return slot

        @rule(target=held)
        def acquire_oldest(self):
            slot = self.ring.try_acquire_oldest()
            if not self.idle:
                assert slot == -1
                return multiple()
            assert slot == self.idle.popleft()
            self.in_use.add(slot)
            return slot

        @rule()
        def visit_each_idle_oldest_first(self) -> None:
            # What maintenance does (expiry sweep, check, drain): n claims of
            # the oldest, each given back at once, leave the order as it was.
            before = self.ring.idle()
            seen = []
            for _ in range(self.ring.idle_count()):
                slot = self.ring.try_acquire_oldest()
                seen.append(slot)
                self.ring.release(slot)
            assert seen == before == list(self.idle)

        @rule(slot=consumes(held))
        def release(self, slot) -> None:
            self.ring.release(slot)
            self.in_use.discard(slot)
            self.idle.append(slot)

        @rule(slot=consumes(held))
        def retire(self, slot) -> None:
            self.ring.retire(slot)
            self.in_use.discard(slot)

        @rule(slot=st.integers(min_value=0, max_value=CAPACITY - 1))
        def release_not_held_fails(self, slot: int) -> None:
            if slot in self.in_use:
                return
            with pytest.raises(ValueError):
                self.ring.release(slot)
            with pytest.raises(ValueError):
                self.ring.retire(slot)

        @invariant()
        def matches_model(self) -> None:
            assert self.ring.idle() == list(self.idle)
            assert self.ring.in_use() == sorted(self.in_use)
            assert self.ring.idle_count() == len(self.idle)
            assert self.ring.in_use_count() == len(self.in_use)
            assert self.ring.size() == len(self.idle) + len(self.in_use)
            self.ring.check_invariants()

    return SlotRingMachine


@pytest.mark.parametrize("lifo", [False, True], ids=["fifo", "lifo"])
def test_slotring_behaves_like_the_model(core, lifo) -> None:
    machine = machine_for(core, lifo)
    machine.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
    machine.TestCase().runTest()


OPS = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.booleans()),
        st.tuples(st.just("acquire"), st.just(None)),
        st.tuples(st.just("acquire_oldest"), st.just(None)),
        st.tuples(st.just("release"), st.integers(min_value=-2, max_value=9)),
        st.tuples(st.just("retire"), st.integers(min_value=-2, max_value=9)),
    ),
    max_size=80,
)


def _apply(ring, op: str, arg):
    try:
        if op == "add":
            return ("ok", ring.add(acquired=arg))
        if op == "acquire":
            return ("ok", ring.try_acquire())
        if op == "acquire_oldest":
            return ("ok", ring.try_acquire_oldest())
        if op == "release":
            return ("ok", ring.release(arg))
        return ("ok", ring.retire(arg))
    except Exception as ex:  # the exception itself is part of the behaviour compared
        return (type(ex).__name__, str(ex))


@pytest.mark.c_extension
@settings(max_examples=300, deadline=None)
@given(ops=OPS, lifo=st.booleans())
def test_compiled_core_and_twin_agree_on_every_step(c_core, ops, lifo) -> None:
    # Both twins at once: runs where the compiled core's tests do.
    c_ring, py_ring = c_core.SlotRing(7, lifo=lifo), _pycore.SlotRing(7, lifo=lifo)
    for op, arg in ops:
        assert _apply(c_ring, op, arg) == _apply(py_ring, op, arg), (op, arg)
        assert c_ring.idle() == py_ring.idle()
        assert c_ring.in_use() == py_ring.in_use()
        assert c_ring.idle_count() == py_ring.idle_count()
