"""scripts/test (and CI through it) runs the whole suite twice: with
FASTPOOL_IMPL=c, then with FASTPOOL_IMPL=python. Only tests whose outcome can
depend on the core that ``import fastpool`` loaded need both passes.

``core_independent`` marks the others, and runs them in the compiled-core pass
only (and in any run that does not ask for the pure-Python core): a test that
builds or installs its own copy of the package, starts its subprocesses with
FASTPOOL_IMPL=c whatever the pass, checks static types, runs the benchmark
(which measures both cores in one process whichever is loaded), or tests the
test helpers. The python pass would repeat it exactly, and CI has a time budget.
"""

from __future__ import annotations

import os

import pytest

core_independent = pytest.mark.skipif(
    os.environ.get("FASTPOOL_IMPL") == "python",
    reason="does not depend on the core in use: run once, in the FASTPOOL_IMPL=c pass",
)
