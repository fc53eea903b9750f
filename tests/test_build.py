"""The build lists every compiled module, FASTPOOL_IMPL picks the core loudly,
and the typing artefacts ship."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _cython_modules() -> dict:
    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "CYTHON_MODULES" for t in node.targets
        ):
            return ast.literal_eval(node.value)
    raise AssertionError("setup.py has no CYTHON_MODULES")


def test_setup_lists_every_pyx_file() -> None:
    listed = sorted(_cython_modules().values())
    on_disk = sorted(f"src/{p.name}" for p in (ROOT / "src").glob("*.pyx"))
    assert listed == on_disk


def _impl_in_subprocess(env_value: str | None, prelude: str = "") -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("FASTPOOL_IMPL", None)
    if env_value is not None:
        env["FASTPOOL_IMPL"] = env_value
    code = prelude + "import fastpool; print(fastpool.__impl__)"
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )


def _compiled_available() -> bool:
    try:
        import fastpool._fastpool  # noqa: F401
    except ImportError:
        return False
    return True


def test_impl_python_selects_the_twin() -> None:
    proc = _impl_in_subprocess("python")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "python"


@pytest.mark.c_extension
def test_impl_c_selects_the_compiled_core() -> None:
    if not _compiled_available():
        pytest.skip("compiled core not built")
    proc = _impl_in_subprocess("c")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "c"


@pytest.mark.c_extension
def test_unset_impl_prefers_the_compiled_core() -> None:
    if not _compiled_available():
        pytest.skip("compiled core not built")
    proc = _impl_in_subprocess(None)
    assert proc.stdout.strip() == "c", proc.stderr


def test_invalid_impl_is_a_loud_import_error() -> None:
    proc = _impl_in_subprocess("rust")
    assert proc.returncode != 0
    assert "ImportError" in proc.stderr and "FASTPOOL_IMPL must be 'c' or 'python'" in proc.stderr


BLOCK_EXTENSION = """
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name == "fastpool._fastpool":
            raise ImportError("blocked for the test")
sys.meta_path.insert(0, _Block())
"""


def test_impl_c_never_falls_back_silently() -> None:
    proc = _impl_in_subprocess("c", prelude=BLOCK_EXTENSION)
    assert proc.returncode != 0
    assert (
        "FASTPOOL_IMPL=c but the compiled core fastpool._fastpool can't be imported" in proc.stderr
    )


def test_unset_impl_falls_back_to_the_twin_when_the_extension_is_missing() -> None:
    proc = _impl_in_subprocess(None, prelude=BLOCK_EXTENSION)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "python"


def test_typing_artefacts_ship() -> None:
    assert (ROOT / "fastpool" / "py.typed").exists()


@pytest.mark.c_extension
def test_stub_declares_every_public_name_of_the_extension() -> None:
    if not _compiled_available():
        pytest.skip("compiled core not built")
    import fastpool._fastpool as compiled

    stub = ast.parse((ROOT / "fastpool" / "_fastpool.pyi").read_text())
    declared: dict[str, set] = {}
    for node in stub.body:
        if isinstance(node, ast.ClassDef):
            declared[node.name] = {
                n.name
                for n in node.body
                if isinstance(n, ast.FunctionDef) and not n.name.startswith("__")
            }
        elif isinstance(node, ast.FunctionDef):
            declared[node.name] = set()
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            declared[node.target.id] = set()
    public = {n for n in dir(compiled) if not n.startswith("__")}
    assert public - {"DEBUG", "MAX_CAPACITY"} <= set(declared) | {"DEBUG", "MAX_CAPACITY"}, (
        public - set(declared)
    )
    for cls_name in ("SlotRing", "Counters", "PoolFastPath", "PoolHotPath", "ConnectionContext"):
        methods = {n for n in dir(getattr(compiled, cls_name)) if not n.startswith("_")}
        assert methods <= declared[cls_name] | {"capacity", "n"}, (
            cls_name,
            methods - declared[cls_name],
        )


def test_fast_paths_bump_the_right_stat_counters() -> None:
    # Both fast paths index the stat counters with fastpool._constants'
    # indexes (the compiled one copies them at import): a checkout and a
    # return that never leave the fast path show up as requests_num and
    # usage_ms in get_stats(), and as nothing else. Runs against the core this
    # run selected (scripts/test runs the suite once per FASTPOOL_IMPL).
    import time

    from fastpool import ConnectionPool
    from fastpool.base import Stats
    from tests.support.stubs import StubConnection

    StubConnection.reset_stats()
    with ConnectionPool(
        "", connection_class=StubConnection, min_size=1, max_size=1, open=True
    ) as pool:
        pool.wait()
        pool.pop_stats()  # the connect's own counters
        for _ in range(3):
            with pool.connection():
                time.sleep(0.002)  # usage_ms counts whole milliseconds
        stats = pool.get_stats()
        wait_counts, _ = pool.get_metrics().histograms["wait"]
    assert wait_counts[0] == 3  # no wait: each checkout took the fast path
    counted = {k: v for k, v in stats.items() if k in Stats.KEYS}
    assert set(counted) == {"requests_num", "usage_ms"}, counted
    assert counted["requests_num"] == 3
    assert counted["usage_ms"] >= 6


def test_fastpool_never_imports_psycopg_pool() -> None:
    # psycopg_pool is installed beside us (the benchmark compares against it):
    # a drop-in replacement must not lean on the package it replaces.
    pytest.importorskip("psycopg_pool")
    code = (
        "import sys, fastpool, fastpool.pool, fastpool.null_pool; "
        "print('psycopg_pool' in sys.modules)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


def test_the_library_never_imports_the_test_helpers() -> None:
    # tests/support (server launchers, stubs, fault injector) is not installed:
    # an import of it from fastpool/ would break every installed copy.
    offenders = []
    for path in sorted((ROOT / "fastpool").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            offenders += [
                f"{path.relative_to(ROOT)}:{node.lineno} {name}"
                for name in names
                if name.split(".")[0] in ("tests", "bench", "conftest")
            ]
    assert not offenders, offenders
    assert not (ROOT / "fastpool" / "testing").exists()
