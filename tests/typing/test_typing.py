"""Static types: the package is clean under ``mypy --strict`` and pyright, its
psycopg pools type a user's program (user_program.py) the way psycopg_pool's
do, pyright --verifytypes finds its public symbols typed, and the compiled
core's stub matches the built module.

Type checking doesn't depend on the core in use, so the tests running mypy or
pyright run once: in the compiled-core pass of scripts/test (FASTPOOL_IMPL=c),
skipped in the other. The signatures declared for type checkers only are
compared with each core's run-time ones. test_dbapi_types.py checks the
generic pool's and the drop-ins' types the same way.
mypy and pyright come with the ``test`` dependency group; pyright runs on the
machine's Node.js, with the pyright release its PyPI package bundles.
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import io
import json
import os
import re
import subprocess
import sys
import tokenize
from pathlib import Path
from typing import Any

import pytest

from tests.support.passes import core_independent


def _checker_test(test: Any) -> Any:
    """A test running mypy or pyright: once per scripts/test, on a Python they support."""
    supported = pytest.mark.skipif(
        sys.version_info < (3, 10),
        reason="the pinned mypy needs Python >= 3.10 (see the test group)",
    )
    return core_independent(supported(test))


ROOT = Path(__file__).resolve().parents[2]
PROGRAM = Path(__file__).with_name("user_program.py")
STUBTEST_ALLOWLIST = Path(__file__).with_name("stubtest_allowlist.txt")

# What must stay typed for a user whatever else changes (pyright --verifytypes
# lists a member under the class that defines it: open/close/wait are the pool
# core's, which the psycopg pools and the DB-API Pool share).
_POOL_MEMBERS = ("__init__", "getconn", "putconn", "connection", "check_connection")
_CORE_MEMBERS = ("open", "close", "wait")
_NULL_POOL_MEMBERS = ("__init__", "getconn", "putconn", "wait")
KEY_SYMBOLS = [
    f"fastpool.{module}.{cls}.{member}"
    for module, cls, members in (
        ("pool", "ConnectionPool", _POOL_MEMBERS),
        ("pool", "PoolCore", _CORE_MEMBERS),
        ("null_pool", "NullConnectionPool", _NULL_POOL_MEMBERS),
        ("pool_async", "AsyncConnectionPool", _POOL_MEMBERS),
        ("pool_async", "AsyncPoolCore", _CORE_MEMBERS),
        ("null_pool_async", "AsyncNullConnectionPool", _NULL_POOL_MEMBERS),
        (
            "dbapi",
            "Pool",
            ("__init__", "getconn", "putconn", "connection", "add_connection", "filled"),
        ),
    )
    for member in members
] + [f"fastpool.abc.{name}" for name in ("CT", "ACT", "ConnectionCB", "AsyncConnectionCB")]
MIN_COMPLETENESS = 0.95


def _tool(module: str) -> list[str]:
    if importlib.util.find_spec(module) is None:
        pytest.fail(f"{module} is not installed: pip install --group test")
    return [sys.executable, "-m", module]


def _run(cmd: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd, cwd=cwd, env={**os.environ, **env}, capture_output=True, text=True, timeout=600
    )


@pytest.fixture(scope="module")
def mypy_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Shared by this module's mypy runs (they all analyse psycopg), kept out of the tree.
    return tmp_path_factory.mktemp("mypy_cache")


def _pyright_json(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    try:
        out: dict[str, Any] = json.loads(proc.stdout)
    except json.JSONDecodeError:
        pytest.fail(
            f"pyright gave no JSON report (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
    return out


# The package ------------------------------------------------------------------


@_checker_test
def test_package_is_clean_under_mypy_strict(mypy_cache: Path) -> None:
    # The settings are pyproject.toml's [tool.mypy] (strict, the whole package).
    proc = _run(_tool("mypy") + ["--strict", "--cache-dir", str(mypy_cache)], cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Success: no issues found" in proc.stdout


@_checker_test
def test_package_is_clean_under_pyright() -> None:
    # The settings are pyproject.toml's [tool.pyright] (standard mode, the package).
    proc = _run(_tool("pyright") + ["--outputjson", "--pythonpath", sys.executable], cwd=ROOT)
    report = _pyright_json(proc)
    problems = [
        f"{d['file']}:{d['range']['start']['line'] + 1}: {d['severity']}: {d['message']}"
        for d in report["generalDiagnostics"]
        if d["severity"] in ("error", "warning")
    ]
    assert not problems, "\n".join(problems)
    assert report["summary"]["filesAnalyzed"] > 10
    assert proc.returncode == 0, proc.stdout + proc.stderr


@_checker_test
def test_public_symbols_have_known_types(tmp_path: Path) -> None:
    proc = _run(
        _tool("pyright")
        + [
            "--verifytypes",
            "fastpool",
            "--ignoreexternal",
            "--outputjson",
            "--pythonpath",
            sys.executable,
        ],
        cwd=tmp_path,
        PYTHONPATH=str(ROOT),
    )
    report = _pyright_json(proc)["typeCompleteness"]
    assert Path(report["packageRootDirectory"]) == ROOT / "fastpool"
    assert report["pyTypedPath"], "py.typed must ship"
    symbols = {s["name"]: s for s in report["symbols"]}
    untyped = [
        f"{name}: {'; '.join(d['message'] for d in s['diagnostics'])}"
        for name, s in symbols.items()
        if not s["isTypeKnown"]
    ]
    missing = [name for name in KEY_SYMBOLS if name not in symbols]
    assert not missing, missing
    key_untyped = [name for name in KEY_SYMBOLS if not symbols[name]["isTypeKnown"]]
    assert not key_untyped, key_untyped
    score = report["completenessScore"]
    assert score >= MIN_COMPLETENESS, f"{score:.1%} of public symbols typed:\n" + "\n".join(untyped)


@_checker_test
@pytest.mark.c_extension
def test_compiled_core_stub_matches_the_module(mypy_cache: Path) -> None:
    if importlib.util.find_spec("fastpool._fastpool") is None:
        if os.environ.get("FASTPOOL_IMPL") == "c":
            pytest.fail("FASTPOOL_IMPL=c but fastpool._fastpool isn't built")
        pytest.skip("compiled core not built")
    proc = _run(
        _tool("mypy.stubtest")
        + [
            "fastpool._fastpool",
            "--allowlist",
            str(STUBTEST_ALLOWLIST),
            "--mypy-config-file",
            str(ROOT / "pyproject.toml"),
        ],
        cwd=ROOT,
        MYPYPATH=str(ROOT),
        FASTPOOL_IMPL="c",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


# Signatures declared for type checkers only ------------------------------------------


def _declared_for_type_checkers(module: str, cls: str) -> dict[str, ast.FunctionDef]:
    """The methods ``cls`` declares in an ``if TYPE_CHECKING:`` block of its body."""
    tree = ast.parse((ROOT / "fastpool" / f"{module}.py").read_text())
    (cls_node,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls]
    return {
        f.name: f
        for block in cls_node.body
        if isinstance(block, ast.If) and ast.unparse(block.test) == "TYPE_CHECKING"
        for f in block.body
        if isinstance(f, ast.FunctionDef)
    }


def _declared_params(f: ast.FunctionDef) -> list[tuple[str, str, object]]:
    a = f.args
    no_default = inspect.Parameter.empty
    positional = a.posonlyargs + a.args
    pos_defaults = [no_default] * (len(positional) - len(a.defaults)) + [
        eval(ast.unparse(d)) for d in a.defaults
    ]
    out = [(p.arg, "POSITIONAL_OR_KEYWORD", d) for p, d in zip(positional, pos_defaults)]
    out += [
        (p.arg, "KEYWORD_ONLY", no_default if d is None else eval(ast.unparse(d)))
        for p, d in zip(a.kwonlyargs, a.kw_defaults)
    ]
    assert a.vararg is None and a.kwarg is None, f.name
    return out


def _runtime_params(func: Any) -> list[tuple[str, str, object]]:
    return [(p.name, p.kind.name, p.default) for p in inspect.signature(func).parameters.values()]


def test_signatures_declared_for_type_checkers_match_the_runtime() -> None:
    # ConnectionPool's getconn/putconn/connection come from the core at run
    # time; the null pools' constructors forward to their base's (min_size 0;
    # use_lifo refused). What type checkers are told must be what runs.
    from fastpool import AsyncConnectionPool, ConnectionPool

    declared = _declared_for_type_checkers("pool", "ConnectionPool")
    assert set(declared) == {"getconn", "putconn", "connection"}
    for name, f in declared.items():
        assert _declared_params(f) == _runtime_params(getattr(ConnectionPool, name)), name
    for module, cls, base in (
        ("null_pool", "NullConnectionPool", ConnectionPool),
        ("null_pool_async", "AsyncNullConnectionPool", AsyncConnectionPool),
    ):
        declared = _declared_for_type_checkers(module, cls)
        assert set(declared) == {"__init__"}
        expected = [
            (n, k, 0 if n == "min_size" else d)
            for n, k, d in _runtime_params(base.__init__)
            if n != "use_lifo"
        ]
        assert _declared_params(declared["__init__"]) == expected, cls


# A user's program ---------------------------------------------------------------

_EXPECT = re.compile(r"#\s*(?:->\s*(?P<type>.+?)|error(?::\s*(?P<word>\S+))?)\s*$")


def _expectations() -> tuple[dict[int, str], dict[int, str | None]]:
    """The program's comments: {line: revealed type}, {line: word an error must mention}."""
    reveals: dict[int, str] = {}
    errors: dict[int, str | None] = {}
    source = PROGRAM.read_text()
    lines = source.splitlines()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        m = _EXPECT.fullmatch(tok.string) if tok.type == tokenize.COMMENT else None
        if m is None:
            continue
        n = tok.start[0]
        if m["type"] is not None:
            assert "reveal_type(" in lines[n - 1], f"line {n}: '# ->' without reveal_type"
            reveals[n] = m["type"]
        else:
            errors[n] = m["word"]
    return reveals, errors


def _without_modules(type_text: str) -> str:
    # mypy qualifies names (psycopg.connection.Connection); pyright doesn't.
    return re.sub(r"\b[A-Za-z_]\w*\.(?=[A-Za-z_])", "", type_text)


def _check_mypy(tmp_path: Path, cache: Path) -> tuple[dict[int, str], dict[int, list[str]]]:
    proc = _run(
        _tool("mypy")
        + [
            "--strict",
            "--no-error-summary",
            "--show-error-codes",
            "--no-pretty",
            "--cache-dir",
            str(cache),
            str(PROGRAM),
        ],
        cwd=tmp_path,  # no project configuration: a user's plain --strict
        MYPYPATH=str(ROOT),
    )
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    reveals: dict[int, str] = {}
    errors: dict[int, list[str]] = {}
    for out in proc.stdout.splitlines():
        m = re.match(r"(.+?):(\d+): (error|note): (.*)$", out)
        if m is None or Path(m[1]).name != PROGRAM.name:
            continue
        n, kind, message = int(m[2]), m[3], m[4]
        revealed = re.fullmatch(r'Revealed type is "(.*)"', message)
        if revealed:
            reveals[n] = _without_modules(revealed[1])
        elif kind == "error":
            errors.setdefault(n, []).append(message)
    return reveals, errors


def _check_pyright(tmp_path: Path) -> tuple[dict[int, str], dict[int, list[str]]]:
    # Not the project's configuration: a user's, in pyright's default (standard) mode.
    config = {"typeCheckingMode": "standard", "extraPaths": [str(ROOT)]}
    (tmp_path / "pyrightconfig.json").write_text(json.dumps(config))
    proc = _run(
        _tool("pyright")
        + ["--outputjson", "--pythonpath", sys.executable, "-p", str(tmp_path), str(PROGRAM)],
        cwd=tmp_path,
    )
    reveals: dict[int, str] = {}
    errors: dict[int, list[str]] = {}
    for d in _pyright_json(proc)["generalDiagnostics"]:
        if Path(d["file"]).name != PROGRAM.name:
            continue
        n, message = d["range"]["start"]["line"] + 1, d["message"]
        if d["severity"] == "information" and message.startswith("Type of "):
            reveals[n] = message.rsplit(' is "', 1)[1][:-1]
        elif d["severity"] == "error":
            errors.setdefault(n, []).append(message)
    return reveals, errors


@_checker_test
@pytest.mark.parametrize("checker", ["mypy", "pyright"])
def test_user_program_types(checker: str, tmp_path: Path, mypy_cache: Path) -> None:
    expected_reveals, expected_errors = _expectations()
    assert len(expected_reveals) > 20 and len(expected_errors) > 10  # the program was read
    if checker == "mypy":
        reveals, errors = _check_mypy(tmp_path, mypy_cache)
    else:
        reveals, errors = _check_pyright(tmp_path)

    wrong = [
        f"line {n}: revealed {reveals.get(n)!r}, expected {want!r}"
        for n, want in sorted(expected_reveals.items())
        if reveals.get(n) != want
    ]
    wrong += [
        f"line {n}: reveal_type without '# ->': {t!r}"
        for n, t in reveals.items()
        if n not in expected_reveals
    ]
    wrong += [
        f"line {n}: unexpected error: {errors[n]}"
        for n in sorted(errors.keys() - expected_errors.keys())
    ]
    wrong += [
        f"line {n}: no error (expected one)" for n in sorted(expected_errors.keys() - errors.keys())
    ]
    wrong += [
        f"line {n}: the error doesn't mention {word!r}: {errors[n]}"
        for n, word in sorted(expected_errors.items())
        if word and n in errors and not any(word in msg for msg in errors[n])
    ]
    assert not wrong, f"{checker} on {PROGRAM.name}:\n" + "\n".join(wrong)
