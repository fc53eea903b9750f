"""Choose the core implementation: the compiled ``_fastpool`` or the Python twin.

``FASTPOOL_IMPL`` (read once, at import):

* unset: the compiled core if it imports, else the twin;
* ``c``: the compiled core or a loud ImportError (never a silent fallback);
* ``python``: the twin.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

_requested = os.environ.get("FASTPOOL_IMPL", "").strip().lower()
if _requested not in ("", "c", "python"):
    raise ImportError(f"FASTPOOL_IMPL must be 'c' or 'python' (or unset), got {_requested!r}")

if TYPE_CHECKING:
    from ._pycore import DEBUG, MAX_CAPACITY, Counters, SlotRing
    from ._pyhotpath import (
        ConnectionContext,
        PoolFastPath,
        PoolHotPath,
        SlotRecord,
        commit_sends_nothing,
        monotonic,
    )

    IMPL = "python"
elif _requested == "python":
    from ._pycore import DEBUG, MAX_CAPACITY, Counters, SlotRing
    from ._pyhotpath import (
        ConnectionContext,
        PoolFastPath,
        PoolHotPath,
        SlotRecord,
        commit_sends_nothing,
        monotonic,
    )

    IMPL = "python"
elif _requested == "c":
    try:
        from ._fastpool import (
            DEBUG,
            MAX_CAPACITY,
            ConnectionContext,
            Counters,
            PoolFastPath,
            PoolHotPath,
            SlotRecord,
            SlotRing,
            commit_sends_nothing,
            monotonic,
        )
    except ImportError as exc:
        raise ImportError(
            "FASTPOOL_IMPL=c but the compiled core fastpool._fastpool can't be imported "
            f"({exc}); build it with `pip install -e .` (Cython and a C compiler needed)"
        ) from exc
    IMPL = "c"
else:
    try:
        from ._fastpool import (
            DEBUG,
            MAX_CAPACITY,
            ConnectionContext,
            Counters,
            PoolFastPath,
            PoolHotPath,
            SlotRecord,
            SlotRing,
            commit_sends_nothing,
            monotonic,
        )
    except ImportError:  # no compiler at install time: the twin has the same semantics
        from ._pycore import DEBUG, MAX_CAPACITY, Counters, SlotRing
        from ._pyhotpath import (
            ConnectionContext,
            PoolFastPath,
            PoolHotPath,
            SlotRecord,
            commit_sends_nothing,
            monotonic,
        )

        IMPL = "python"
    else:
        IMPL = "c"

__all__ = [
    "DEBUG",
    "IMPL",
    "MAX_CAPACITY",
    "ConnectionContext",
    "Counters",
    "PoolFastPath",
    "PoolHotPath",
    "SlotRecord",
    "SlotRing",
    "commit_sends_nothing",
    "monotonic",
]
