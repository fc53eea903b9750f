"""Choose the core implementation: the compiled ``_fastpool`` or the Python twin.

``FASTPOOL_IMPL`` (read once, at import):

* unset: the compiled core if it imports, else the twin;
* ``c``: the compiled core or a loud ImportError (never a silent fallback);
* ``python``: the twin.
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import TYPE_CHECKING, Any

_requested = os.environ.get("FASTPOOL_IMPL", "").strip().lower()
if _requested not in ("", "c", "python"):
    raise ImportError(f"FASTPOOL_IMPL must be 'c' or 'python' (or unset), got {_requested!r}")

# The names each implementation provides: the ring and counters (the twin's
# in fastpool._pycore) and the pool's fast path (the twin's in
# fastpool._pyhotpath); the compiled extension has both.
_RING_NAMES = ("DEBUG", "MAX_CAPACITY", "Counters", "SlotRing")
_HOT_PATH_NAMES = (
    "AsyncConnectionContext",
    "AsyncPoolHotPath",
    "ConnectionContext",
    "PoolFastPath",
    "PoolHotPath",
    "SlotRecord",
    "commit_sends_nothing",
    "monotonic",
)


def _names(ring_module: ModuleType, hot_path_module: ModuleType) -> dict[str, Any]:
    return {
        **{name: getattr(ring_module, name) for name in _RING_NAMES},
        **{name: getattr(hot_path_module, name) for name in _HOT_PATH_NAMES},
    }


def _compiled_core() -> dict[str, Any]:
    """The compiled core's names; ImportError where it isn't built."""
    from . import _fastpool

    return _names(_fastpool, _fastpool)


def _python_core() -> dict[str, Any]:
    from . import _pycore, _pyhotpath

    return _names(_pycore, _pyhotpath)


if TYPE_CHECKING:
    # Type checkers see the twin; the compiled core has the same interface
    # (fastpool/_fastpool.pyi, checked against it by stubtest).
    from ._pycore import DEBUG, MAX_CAPACITY, Counters, SlotRing
    from ._pyhotpath import (
        AsyncConnectionContext,
        AsyncPoolHotPath,
        ConnectionContext,
        PoolFastPath,
        PoolHotPath,
        SlotRecord,
        commit_sends_nothing,
        monotonic,
    )

    IMPL = "python"
else:
    if _requested == "python":
        _chosen, IMPL = _python_core(), "python"
    elif _requested == "c":
        try:
            _chosen = _compiled_core()
        except ImportError as exc:
            raise ImportError(
                "FASTPOOL_IMPL=c but the compiled core fastpool._fastpool can't be imported "
                f"({exc}); build it with `pip install -e .` (Cython and a C compiler needed)"
            ) from exc
        IMPL = "c"
    else:
        try:
            _chosen, IMPL = _compiled_core(), "c"
        except ImportError:  # no compiler at install time: the twin has the same semantics
            _chosen, IMPL = _python_core(), "python"
    globals().update(_chosen)
    del _chosen

__all__ = [
    "DEBUG",
    "IMPL",
    "MAX_CAPACITY",
    "AsyncConnectionContext",
    "AsyncPoolHotPath",
    "ConnectionContext",
    "Counters",
    "PoolFastPath",
    "PoolHotPath",
    "SlotRecord",
    "SlotRing",
    "commit_sends_nothing",
    "monotonic",
]
