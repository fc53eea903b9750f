"""The sync pool modules are generated from the async ones
(``scripts/async_to_sync.py``): the committed files must be what the script
writes today, or an edit of the async source (or of a generated file) went
unnoticed."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "async_to_sync", ROOT / "scripts" / "async_to_sync.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("async_to_sync", module)
    spec.loader.exec_module(module)
    return module


GENERATOR = _generator()


@pytest.mark.parametrize("source,target", GENERATOR.GENERATED, ids=lambda p: Path(p).name)
def test_generated_module_is_up_to_date(source: str, target: str) -> None:
    committed = (ROOT / target).read_text()
    assert committed.startswith(GENERATOR.HEADER.format(source=source))
    if committed != GENERATOR.generate(source, target):
        pytest.fail(
            f"{target} is stale: it is generated from {source}. Edit {source} (not {target})"
            " and run `python scripts/async_to_sync.py`",
            pytrace=False,
        )


def test_generator_drops_async_and_keeps_the_sync_side() -> None:
    source = (
        "if True:  # ASYNC\n"
        "    import asyncio\n"
        "else:\n"
        "    import threading\n"
        "\n"
        "\n"
        "class AsyncConnectionPool:\n"
        "    async def __aenter__(self) -> AsyncConnectionPool:\n"
        "        await asyncio.sleep(0)  # yield to the loop\n"
        "        async with self._lock:\n"
        "            pass\n"
        "        return self\n"
        "\n"
        "    if False:  # SYNC\n"
        "\n"
        "        def fork(self) -> None:\n"
        "            threading.Lock()\n"
        "\n"
        "    def mode(self) -> str:\n"
        '        return "async"  # sync: return "sync"\n'
    )
    code = GENERATOR.transform_tokens(
        "".join(GENERATOR.resolve_markers(source.splitlines(keepends=True), "example"))
    )
    assert (
        code.split()
        == (
            "import threading\n"
            "class ConnectionPool:\n"
            "    def __enter__(self) -> ConnectionPool:\n"
            "        time.sleep(0)  # yield to the loop\n"
            "        with self._lock:\n"
            "            pass\n"
            "        return self\n"
            "    def fork(self) -> None:\n"
            "        threading.Lock()\n"
            "    def mode(self) -> str:\n"
            '        return "sync"\n'
        ).split()
    )
