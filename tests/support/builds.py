"""Run code against a variant build of the compiled core (see the
``build_core_variant`` fixture in conftest.py: debug, sanitizers)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path


def run_on_build(
    work: Path, code: str, *, timeout: float, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` (dedented) in a fresh interpreter that imports fastpool from
    ``work``, on its compiled core (FASTPOOL_IMPL=c), with ``env`` added."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=work,
        env=dict(os.environ, FASTPOOL_IMPL="c", PYTHONPATH=str(work), **env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
