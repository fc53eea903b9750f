"""Fixtures shared by tests/ and bench/ (the benchmark smoke test needs a server too).

* ``core`` / ``hotpath``: the twin under test (the slot ring and counters, the
  pool's fast path), compiled or pure Python: one parametrised fixture each,
  so a plain ``pytest`` tests both twins in one run; under FASTPOOL_IMPL only
  that implementation's (see ``_load_twin``). The compiled one is skipped (not
  silently replaced) when it isn't built, unless FASTPOOL_IMPL=c demands it.
* ``stress_ext``: the test-only native-thread stress extension, built for the
  session against the compiled core (``setup.py build_test_ext``).
* ``pg_dsn``: a DSN of a reachable PostgreSQL (FASTPOOL_TEST_DSN / libpq env,
  else 127.0.0.1:5432, else a private throwaway cluster started for the session).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Iterator

import pytest

import fastpool


def pytest_report_header(config: pytest.Config) -> list[str]:
    return [
        f"fastpool {fastpool.__version__}: core implementation {fastpool.__impl__!r}"
        f" (FASTPOOL_IMPL={os.environ.get('FASTPOOL_IMPL', '')!r}, debug build: {fastpool.__debug_core__})"
    ]


# The twins, by role and implementation: the compiled extension plays both
# roles; the pure-Python twin splits them in two modules.
TWINS = {
    "core": {"c": "fastpool._fastpool", "python": "fastpool._pycore"},
    "hotpath": {"c": "fastpool._fastpool", "python": "fastpool._pyhotpath"},
}
IMPLS = [pytest.param("c", marks=pytest.mark.c_extension), "python"]


def _load_twin(role: str, impl: str) -> ModuleType:
    # scripts/test runs the whole suite once per FASTPOOL_IMPL. A twin's tests
    # run in the pass of their own implementation only, so nothing runs twice
    # across the two passes; unset (a plain `pytest`, the sdist check, a
    # pure-Python install's CI) runs both, skipping the compiled one where it
    # isn't built.
    requested = os.environ.get("FASTPOOL_IMPL", "")
    if requested and requested != impl:
        pytest.skip(f"the {impl} twin's tests run in the FASTPOOL_IMPL={impl} pass")
    try:
        return importlib.import_module(TWINS[role][impl])
    except ImportError as exc:
        if impl == "python" or requested == "c":
            raise  # asked for the compiled core: failing to load it is an error
        pytest.skip(f"compiled core not built: {exc}")


@pytest.fixture(scope="session", params=IMPLS)
def core(request: pytest.FixtureRequest) -> ModuleType:
    """The slot ring and counters: ``fastpool._fastpool`` or ``fastpool._pycore``."""
    return _load_twin("core", request.param)


@pytest.fixture(scope="session", params=IMPLS)
def hotpath(request: pytest.FixtureRequest) -> ModuleType:
    """The pool's fast path: ``fastpool._fastpool`` or ``fastpool._pyhotpath``."""
    return _load_twin("hotpath", request.param)


@pytest.fixture(scope="session")
def c_core() -> ModuleType:
    """The compiled core only (tests comparing it with the twin run where the
    compiled core's tests do)."""
    return _load_twin("core", "c")


@pytest.fixture(scope="session")
def python_core() -> ModuleType:
    """The pure-Python twin only (tests of what only it has, its lock)."""
    return _load_twin("core", "python")


@pytest.fixture(scope="session")
def pg_server():
    """A running PostgreSQL for the whole session (see tests.support.postgres)."""
    from tests.support.postgres import test_server

    with test_server() as server:
        yield server


@pytest.fixture(scope="session")
def pg_dsn(pg_server) -> str:
    return pg_server.dsn


@pytest.fixture(scope="session")
def tpc_dsn(pg_server) -> Iterator[str]:
    """A server that can prepare two-phase transactions: the test server if its
    max_prepared_transactions allows it, else a private cluster configured so."""
    import psycopg

    with psycopg.connect(pg_server.dsn, autocommit=True) as conn:
        allowed = int(conn.execute("SHOW max_prepared_transactions").fetchone()[0])
    if allowed > 0:
        yield pg_server.dsn
        return
    from tests.support.postgres import find_bindir, start_private_server

    if find_bindir() is None:
        pytest.skip(
            "the test server has max_prepared_transactions = 0 and no server binaries"
            " are installed to start one that allows two-phase commit"
        )
    server = start_private_server()
    try:
        yield server.dsn
    finally:
        server.destroy()


@pytest.fixture
def closing_pools() -> Iterator[list]:
    """Pools a test appends here are closed at teardown, after checking their books."""
    created: list = []
    yield created
    for p in created:
        if not p.closed:
            p._ring.check_invariants()
        p.close()


@pytest.fixture
def psycopg_warnings(caplog: pytest.LogCaptureFixture):
    """``psycopg_warnings()``: the WARNING+ records captured so far on psycopg's
    loggers (``psycopg``, ``psycopg.pool``) as (logger, level, text), object
    addresses masked, for comparing two runs' logs."""
    import logging
    import re

    caplog.set_level(logging.WARNING, logger="psycopg")

    def records() -> list[tuple[str, str, str]]:
        return [
            (r.name, r.levelname, re.sub(r"0x[0-9a-f]+", "0x?", r.getMessage()))
            for r in caplog.records
            if r.name in ("psycopg", "psycopg.pool") and r.levelno >= logging.WARNING
        ]

    return records


@pytest.fixture
def admin(pg_dsn: str) -> Iterator["psycopg.Connection"]:  # noqa: F821
    """A connection outside any pool, for killing backends and checking data."""
    import psycopg

    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        yield conn


ROOT = Path(__file__).resolve().parent


def build_test_extensions(tree: Path, out: Path, **env: str) -> None:
    """Build the test-only compiled modules of the source tree ``tree`` into
    ``out`` (``setup.py build_test_ext``: never part of a wheel)."""
    proc = subprocess.run(
        [
            sys.executable,
            "setup.py",
            "-q",
            "build_test_ext",
            "-b",
            str(out),
            "-t",
            str(out / "tmp"),
        ],
        cwd=tree,
        env=dict(os.environ, **env),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, f"test extension build failed:\n{proc.stdout}\n{proc.stderr}"


@pytest.fixture(scope="session")
def stress_ext(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    """The native-thread stress harness (tests/support/_fastpool_stress.pyx),
    built for the session against the compiled core under test. Runs where the
    compiled core's tests do (see ``_load_twin``)."""
    _load_twin("core", "c")
    pytest.importorskip("Cython", reason="Cython builds the test-only stress extension")
    out = tmp_path_factory.mktemp("stress_ext")
    build_test_extensions(ROOT, out)
    (path,) = out.glob("_fastpool_stress.*")
    spec = importlib.util.spec_from_file_location("_fastpool_stress", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def build_core_variant(tmp_path_factory: pytest.TempPathFactory):
    """``build_core_variant(name, **env)``: the compiled core and the stress
    extension built from the sources into a temporary directory with extra
    build environment (e.g. FASTPOOL_DEBUG=1), leaving the installed build
    alone. Returns the directory to put first on PYTHONPATH."""
    import shutil

    def build(name: str, **env: str) -> Path:
        pytest.importorskip("Cython")
        work = tmp_path_factory.mktemp(name)
        for f in ("setup.py", "pyproject.toml", "README.md", "MANIFEST.in"):
            shutil.copy(ROOT / f, work / f)
        shutil.copytree(ROOT / "src", work / "src")
        shutil.copytree(
            ROOT / "fastpool",
            work / "fastpool",
            ignore=shutil.ignore_patterns("*.so", "__pycache__"),
        )
        (work / "tests" / "support").mkdir(parents=True)
        shutil.copy(ROOT / "tests" / "support" / "_fastpool_stress.pyx", work / "tests" / "support")
        proc = subprocess.run(
            [sys.executable, "setup.py", "-q", "build_ext", "--inplace"],
            cwd=work,
            env=dict(os.environ, FASTPOOL_REQUIRE_EXTENSIONS="1", **env),
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, f"{name} build failed:\n{proc.stdout}\n{proc.stderr}"
        build_test_extensions(work, work, **env)
        return work

    return build
