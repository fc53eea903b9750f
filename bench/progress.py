"""A progress line for the long runs (a full comparison takes the better part
of an hour): which case, which implementation, which repeat, time elapsed and
time left. Shown on stderr only when stderr is a terminal (and tqdm is
installed); a log or CI gets the tables alone."""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Any

#: set by compare.run to name the case in progress, e.g. "[3/9] pool_contended"
case_label = ""


class Progress:
    def __init__(self, total: int, label: str | None = None) -> None:
        self.label = case_label if label is None else label
        self.bar: Any = None
        if not sys.stderr.isatty():
            return
        try:
            from tqdm import tqdm
        except ImportError:
            return
        # no monitor thread: nothing extra should run while a case is timed
        tqdm.monitor_interval = 0
        self.bar = tqdm(
            total=total,
            file=sys.stderr,
            leave=False,
            dynamic_ncols=True,
            bar_format="{desc} | {n_fmt}/{total_fmt} runs | {elapsed} elapsed, {remaining} left",
        )

    def start(self, what: str) -> None:
        """Say what runs now (the description stays until the next start)."""
        if self.bar is not None:
            self.bar.set_description_str(f"{self.label} · {what}" if self.label else what)

    def done(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
