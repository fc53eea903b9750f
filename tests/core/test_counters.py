"""Unit tests of Counters, each run against the compiled core and the twin."""

from __future__ import annotations

import pytest

from fastpool._constants import MAX_COUNTERS


def test_counters_start_at_zero_and_add(core) -> None:
    c = core.Counters(3)
    assert c.n == 3
    assert c.snapshot() == [0, 0, 0]
    c.add(0)
    c.add(2, 5)
    c.add(2, -2)
    assert [c.get(i) for i in range(3)] == [1, 0, 3]


def test_add2_adds_to_two_counters(core) -> None:
    c = core.Counters(4)
    c.add2(1, 2, 3, 40)
    c.add2(1, 1, 1, 1)
    assert c.snapshot() == [0, 4, 0, 40]


def test_pop_returns_the_values_and_zeroes_them(core) -> None:
    c = core.Counters(2)
    c.add(0, 7)
    c.add(1, 9)
    assert c.pop() == [7, 9]
    assert c.snapshot() == [0, 0]


@pytest.mark.parametrize("bad", [-1, 3])
def test_an_index_out_of_range_is_an_index_error_and_changes_nothing(core, bad) -> None:
    c = core.Counters(3)
    with pytest.raises(IndexError, match=f"counter {bad} out of range for 3 counters"):
        c.add(bad)
    with pytest.raises(IndexError, match=f"counter 0 or {bad} out of range for 3 counters"):
        c.add2(0, 1, bad, 1)
    with pytest.raises(IndexError, match=f"counter {bad} out of range"):
        c.get(bad)
    assert c.snapshot() == [0, 0, 0]


@pytest.mark.parametrize("bad", [0, MAX_COUNTERS + 1, 2.0, True])
def test_a_count_of_counters_outside_the_limit_is_a_value_error(core, bad) -> None:
    with pytest.raises(ValueError, match=f"n must be an int between 1 and {MAX_COUNTERS}"):
        core.Counters(bad)


def test_the_largest_count_of_counters_is_accepted(core) -> None:
    assert core.Counters(MAX_COUNTERS).n == MAX_COUNTERS
