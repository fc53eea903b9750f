"""The sdist installs into a fresh virtualenv as a user would (pip, build
isolation): compiled where a C compiler works, the pure-Python core with a
warning where none does (CC=false); the wheel pip builds from it holds the
library only (no test helpers, no C sources), and the core tests from the
unpacked sdist pass against the installed package in both cases. Runs once, in
the compiled-core run of scripts/test (it builds its own installs, whatever
FASTPOOL_IMPL says)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile
import venv
from pathlib import Path

import pytest

from tests.support.passes import core_independent

ROOT = Path(__file__).resolve().parents[1]

pytestmark = core_independent  # installs its own builds


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 600) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, (
        f"{' '.join(cmd)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    )
    return proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def sdist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sdist")
    _run([sys.executable, "setup.py", "-q", "sdist", "-d", str(out)], cwd=ROOT)
    (path,) = out.glob("fastpool-*.tar.gz")
    return path


def test_sdist_holds_what_the_test_suite_needs(sdist: Path) -> None:
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    for needed in (
        "LICENSE",
        "conftest.py",
        "pyproject.toml",
        "setup.py",
        "src/_fastpool.pyx",
        "src/_pool_hotpath.pxi",
        "src/fp_atomic.h",
        "src/fp_attrs.h",
        "src/fastpool/_fastpool.pxd",
        "fastpool/py.typed",
        "fastpool/_fastpool.pyi",
        "tests/core/test_slotring.py",
        # the helpers the tests import as tests.support (never installed)
        "tests/__init__.py",
        "tests/support/__init__.py",
        "tests/support/threads.py",
        "tests/support/_fastpool_stress.pyx",
        "tests/support/postgres.py",
        "scripts/test",
        "tests/typing/user_program.py",
        "tests/typing/stubtest_allowlist.txt",
    ):
        assert needed in names, needed


def _assert_wheel_holds_the_library_only(
    sdist: Path, python: str, cwd: Path, env: dict[str, str], *, compiled: bool
) -> None:
    # pip built a wheel from the sdist and installed it: its RECORD lists the
    # wheel's files. They must be the sdist's fastpool/ files (the library),
    # plus the compiled core where it compiled: no test helpers, no sources.
    listing = _run(
        [
            python,
            "-c",
            "import importlib.metadata as m; print('\\n'.join(map(str, m.files('fastpool'))))",
        ],
        cwd=cwd,
        env=env,
    )
    installed = {
        f
        for f in listing.split()
        if "/__pycache__/" not in f and not f.startswith("fastpool-")  # pip's .pyc, dist-info
    }
    with tarfile.open(sdist) as tar:
        in_sdist = {m.name.split("/", 1)[1] for m in tar.getmembers() if m.isfile()}
    library = {n for n in in_sdist if n.startswith("fastpool/")}
    assert {"fastpool/pool.py", "fastpool/django/base.py", "fastpool/py.typed"} <= library
    assert not [f for f in installed if f.startswith(("fastpool/testing/", "tests/"))], installed
    assert not [f for f in installed if f.endswith((".pyx", ".pxi", ".c", ".h"))], installed
    compiled_core = {f for f in installed if re.fullmatch(r"fastpool/_fastpool\.[^/]+\.so", f)}
    assert len(compiled_core) == (1 if compiled else 0), installed
    assert installed - compiled_core == library, (installed - compiled_core) ^ library


@pytest.mark.parametrize("compiler", ["with a compiler", "without a compiler"])
def test_sdist_installs_in_a_fresh_virtualenv(sdist: Path, tmp_path: Path, compiler: str) -> None:
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = str(env_dir / "bin" / "python")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FASTPOOL_", "VIRTUAL_ENV", "PYTHONPATH"))
    }
    if compiler == "without a compiler":
        env["CC"] = "false"  # every compile fails, as where none is installed
    pip = [python, "-m", "pip", "--disable-pip-version-check"]
    log = _run([*pip, "install", "-v", str(sdist)], cwd=tmp_path, env=env)
    expected = "c" if compiler == "with a compiler" else "python"
    if expected == "python":
        assert log.count("fastpool could not compile its C core") == 1, log[-3000:]
    impl = _run(
        [python, "-c", "import fastpool; print(fastpool.__impl__, fastpool.__file__)"],
        cwd=tmp_path,
        env=env,
    ).split()
    assert impl[0] == expected
    assert str(env_dir) in impl[1]  # the installed package, not a source tree
    _assert_wheel_holds_the_library_only(sdist, python, tmp_path, env, compiled=expected == "c")

    # The core tests from the unpacked sdist, importing the installed package.
    with tarfile.open(sdist) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(tmp_path / "src", filter="data")
        else:  # Python < 3.12 without the backported filter
            tar.extractall(tmp_path / "src")
    (unpacked,) = (tmp_path / "src").iterdir()
    # Cython and setuptools build the test-only native-thread stress extension
    # (against the installed compiled core) for the core tests.
    test_requires = ["pytest>=8.3.4", "pytest-timeout>=2.3", "hypothesis>=6.100"]
    test_requires += ["Cython>=3.1", "setuptools>=77"]  # as [build-system] requires
    _run([*pip, "install", "-q", *test_requires], cwd=tmp_path, env=env)
    # Run from outside the unpacked tree so `fastpool` can only be the installed one.
    out = _run(
        [
            str(env_dir / "bin" / "pytest"),
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(unpacked),
            "-c",
            str(unpacked / "pyproject.toml"),
            str(unpacked / "tests" / "core"),
        ],
        cwd=tmp_path,
        env=env,
    )
    assert f"core implementation {expected!r}" in out
    assert " passed" in out and " failed" not in out
