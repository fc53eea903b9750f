"""Run a function in many threads for concurrency tests, failing loudly."""

from __future__ import annotations

import sys
import threading
from typing import Any, Callable


class ReraiseThread(threading.Thread):
    """A thread whose exception is re-raised by join(), so a failing worker
    fails the test instead of printing a traceback nobody reads."""

    def run(self) -> None:
        self.exc: BaseException | None = None
        try:
            super().run()
        except BaseException as ex:  # noqa: BLE001 - handed to join()
            self.exc = ex

    def join(self, timeout: float | None = None) -> None:
        super().join(timeout)
        if self.exc is not None:
            raise self.exc


def run_threads(
    target: Callable[[int], Any], count: int, *, switch_interval: float | None = None
) -> None:
    """Call ``target(i)`` for i in range(count), each in its own thread, and join
    them all; re-raise the first worker exception. ``switch_interval`` shortens
    the GIL switch interval meanwhile, to force more interleavings."""
    old = sys.getswitchinterval()
    if switch_interval is not None:
        sys.setswitchinterval(switch_interval)
    try:
        threads = [ReraiseThread(target=target, args=(i,)) for i in range(count)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(old)
