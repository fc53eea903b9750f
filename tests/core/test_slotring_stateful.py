"""SlotRing against a simple model, as a hypothesis state machine, and the
compiled core against the twin on the same random operation sequences."""

from __future__ import annotations

import os
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

try:
    from fastpool import _fastpool
except ImportError:
    if os.environ.get("FASTPOOL_IMPL") == "c":
        raise
    _fastpool = None

IMPLEMENTATIONS = [pytest.param(_pycore, id="python")]
IMPLEMENTATIONS.append(
    pytest.param(_fastpool, id="c", marks=pytest.mark.c_extension)
    if _fastpool is not None
    else pytest.param(None, id="c", marks=pytest.mark.skip(reason="compiled core not built"))
)

CAPACITY = 6


def machine_for(core):
    class SlotRingMachine(RuleBasedStateMachine):
        """Model: idle is a FIFO of indexes, held a set; absent = the rest."""

        held = Bundle("held")

        def __init__(self) -> None:
            super().__init__()
            self.ring = core.SlotRing(CAPACITY)
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
            assert slot == self.idle.popleft()
            self.in_use.add(slot)
            return slot

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


@pytest.mark.parametrize("core", IMPLEMENTATIONS)
def test_slotring_behaves_like_the_model(core) -> None:
    machine = machine_for(core)
    machine.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
    machine.TestCase().runTest()


OPS = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.booleans()),
        st.tuples(st.just("acquire"), st.just(None)),
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
        if op == "release":
            return ("ok", ring.release(arg))
        return ("ok", ring.retire(arg))
    except Exception as ex:  # the exception itself is part of the behaviour compared
        return (type(ex).__name__, str(ex))


@pytest.mark.c_extension
@pytest.mark.skipif(_fastpool is None, reason="compiled core not built")
@settings(max_examples=300, deadline=None)
@given(ops=OPS)
def test_compiled_core_and_twin_agree_on_every_step(ops) -> None:
    c_ring, py_ring = _fastpool.SlotRing(7), _pycore.SlotRing(7)
    for op, arg in ops:
        assert _apply(c_ring, op, arg) == _apply(py_ring, op, arg), (op, arg)
        assert c_ring.idle() == py_ring.idle()
        assert c_ring.in_use() == py_ring.in_use()
