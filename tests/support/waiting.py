"""Polling until something the pool does in the background has happened.

Tests wait for a state (a refill, a shrink, a log record) rather than sleeping a
fixed time: on a loaded machine a fixed sleep is either too short (flaky) or
wastes time. The timeout only bounds a failing test."""

from __future__ import annotations

import asyncio
import time
from typing import Callable

DEFAULT_TIMEOUT = 20.0
POLL = 0.005


def wait_until(
    predicate: Callable[[], object], what: str = "condition", timeout: float = DEFAULT_TIMEOUT
) -> None:
    """Return once ``predicate()`` is true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(POLL)


async def async_wait_until(
    predicate: Callable[[], object], what: str = "condition", timeout: float = DEFAULT_TIMEOUT
) -> None:
    """``wait_until`` for a test running in an event loop (the loop keeps running)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        await asyncio.sleep(POLL)
