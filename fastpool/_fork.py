"""The pools made with ``fork_safe=True``, re-initialised in a forked child
(gunicorn ``--preload``, multiprocessing) so the child never uses the sockets
of its parent's connections."""

from __future__ import annotations

import os
import weakref
from typing import Any, Callable, TypeVar

_PoolT = TypeVar("_PoolT")

# pool -> what a forked child calls with it. Weak: a pool's entry goes with it.
_reinit: weakref.WeakKeyDictionary[Any, Callable[[Any], None]] = weakref.WeakKeyDictionary()


def reinit_in_forked_child(pool: _PoolT, reinit: Callable[[_PoolT], None]) -> None:
    """Have a child process forked while ``pool`` lives call ``reinit(pool)``
    (``reinit`` must not be bound to ``pool``: that would keep it alive)."""
    _reinit[pool] = reinit


def _after_fork_in_child() -> None:
    for pool, reinit in list(_reinit.items()):
        reinit(pool)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
