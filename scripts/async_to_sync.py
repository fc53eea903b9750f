#!/usr/bin/env python
"""Generate fastpool's sync modules from their hand-written async twins.

    python scripts/async_to_sync.py          # rewrite every generated file
    python scripts/async_to_sync.py --check  # exit 1, with a diff, if one is stale

The async module is the source: edit it, then run this script. Its output is
the sync module, which says at its top that it is generated.

The transformation, in order:

1. Marker blocks, the only places where sync and async code differ (both are
   ordinary Python, so the async module runs and is type-checked as written)::

       if True:  # ASYNC
           <async-only code>
       else:
           <sync-only code>       (the ``else:`` part is optional)

       if False:  # SYNC
           <sync-only code>       (dead code in the async module)

       <async line>  # sync: <sync line>
       # sync: <sync-only line>

   The sync output keeps only the sync body, one indent level out; a line
   with a ``# sync:`` comment becomes the code after it, at the same indent
   (for the few lines no block can hold: a parameter, an argument). Blocks
   may stand at module, class or function level and nest.

   Sync code in the async module uses the async names where ``RENAMES`` has
   one (``ACT``, not ``CT``): it is renamed like the rest. Names only sync
   code uses are imported in a SYNC block. Type checkers skip the ``else`` of
   ``if True``, but mypy still reads an ``if False`` body: a method the two
   pools define with different signatures goes in an ASYNC block and its
   ``else``, never in a SYNC block. A ``# type: ignore[code]`` in sync code
   needs ``unused-ignore`` among its codes (in the async module that code is
   unreachable, so the ignore is unused there).
2. Tokens (``tokenize``, so comments and layout survive): ``async`` before
   ``def``/``with``/``for`` and every ``await`` are dropped; names are renamed
   through ``RENAMES``, one explicit map for every file (``asyncio.Lock`` is
   the two names ``asyncio`` and ``Lock``: dotted names are matched as a run
   of tokens, see ``DOTTED_RENAMES``). Strings and comments get the same
   renames, as whole words, plus the phrases in ``TEXT_RENAMES``.
3. ``ruff check --fix`` for the import block only (sorting, and the imports
   only async code used), then ``ruff format``, so the output passes both.
"""

from __future__ import annotations

import argparse
import difflib
import io
import re
import subprocess
import sys
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# (hand-written async source, generated sync module)
GENERATED = [
    ("fastpool/pool_async.py", "fastpool/pool.py"),
    ("fastpool/null_pool_async.py", "fastpool/null_pool.py"),
]

RENAMES = {
    "ACT": "CT",
    "AbstractAsyncContextManager": "AbstractContextManager",
    "AsyncConnectFailedCB": "ConnectFailedCB",
    "AsyncConnection": "Connection",
    "AsyncConnectionCB": "ConnectionCB",
    "AsyncConnectionPool": "ConnectionPool",
    "AsyncConninfoParam": "ConninfoParam",
    "AsyncKwargsParam": "KwargsParam",
    "AsyncNullConnectionPool": "NullConnectionPool",
    "AsyncPoolCore": "PoolCore",
    "AsyncPoolHotPath": "PoolHotPath",
    "AsyncWaiter": "Waiter",
    "AsyncWorkers": "Workers",
    "PoolFastPath": "PoolHotPath",
    "__aenter__": "__enter__",
    "__aexit__": "__exit__",
    "_reclaim_orphans_async": "_reclaim_orphans",
    "async_workers": "workers",
    "null_pool_async": "null_pool",
    "pool_async": "pool",
}

# Dotted names, matched as NAME . NAME token runs (left side) and written as
# the right side.
DOTTED_RENAMES = {
    ("asyncio", "Lock"): "threading.Lock",
    ("asyncio", "sleep"): "time.sleep",
}

# Phrases in strings and comments (applied after RENAMES, as whole words).
TEXT_RENAMES = {
    "A background task": "A background thread",
    "async connections": "connections",
    "async with": "with",
    "await ": "",
    "An async pool": "A pool",
    "an async pool": "a pool",
    "async pool": "pool",
}

HEADER = (
    "# Generated from {source} by scripts/async_to_sync.py: do not edit.\n"
    "# Edit {source} and run `python scripts/async_to_sync.py`.\n"
)

_ASYNC_IF = re.compile(r"^(?P<indent>[ \t]*)if True:[ \t]*#[ \t]*ASYNC[ \t]*$")
_SYNC_IF = re.compile(r"^(?P<indent>[ \t]*)if False:[ \t]*#[ \t]*SYNC[ \t]*$")
_SYNC_LINE = re.compile(r"^(?P<indent>[ \t]*)(?:.*?)#[ \t]sync:[ \t](?P<code>.*)$")
_ASYNC_BEFORE = ("def", "with", "for")
_WORD_RENAMES = re.compile(r"\b(" + "|".join(map(re.escape, RENAMES)) + r")\b")
_PHRASES = re.compile("|".join(r"\b" + re.escape(p) for p in TEXT_RENAMES))


def _indent_of(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _block(lines: list[str], start: int, indent: int) -> int:
    """The end (exclusive) of the block whose body starts at ``start``: the
    first non-blank line indented no deeper than ``indent``. Trailing blank
    lines are left outside the block."""
    end = start
    i = start
    while i < len(lines):
        line = lines[i]
        if line.strip():
            if _indent_of(line) <= indent:
                break
            end = i + 1
        i += 1
    return end


def _dedent(body: list[str], by: int) -> list[str]:
    out = []
    for line in body:
        if line.strip() and _indent_of(line) < by:
            # A line of a multi-line string less indented than its code: the
            # block is not safe to move.
            raise ValueError(f"can't dedent {line!r}")
        out.append(line[by:] if line.strip() else line)
    return out


def resolve_markers(lines: list[str], source: str) -> list[str]:
    """Step 1: keep the sync side of every marker block."""
    out: list[str] = []
    pending = list(lines)
    i = 0
    while i < len(pending):
        line = pending[i]
        async_if = _ASYNC_IF.match(line.rstrip("\n"))
        sync_if = _SYNC_IF.match(line.rstrip("\n"))
        if not (async_if or sync_if):
            sync_line = _SYNC_LINE.match(line.rstrip("\n"))
            if sync_line:
                line = sync_line["indent"] + sync_line["code"] + "\n"
            out.append(line)
            i += 1
            continue
        match = async_if or sync_if
        assert match is not None
        indent = len(match["indent"])
        body_end = _block(pending, i + 1, indent)
        body = pending[i + 1 : body_end]
        if not body:
            raise ValueError(f"{source}:{i + 1}: empty marker block")
        step = _indent_of(next(b for b in body if b.strip())) - indent
        sync_body: list[str] = []
        end = body_end
        if sync_if:
            sync_body = body
        else:
            after = body_end
            while after < len(pending) and not pending[after].strip():
                after += 1  # (the formatter may leave a blank line before the else)
            if after < len(pending) and pending[after].rstrip() == " " * indent + "else:":
                end = _block(pending, after + 1, indent)
                sync_body = pending[after + 1 : end]
        # Re-scan what is kept: blocks may nest.
        pending[i:end] = _dedent(sync_body, step)
    return out


def _rename_text(text: str) -> str:
    text = _WORD_RENAMES.sub(lambda m: RENAMES[m[1]], text)
    return _PHRASES.sub(lambda m: TEXT_RENAMES[m[0]], text)


def transform_tokens(code: str) -> str:
    """Step 2: drop ``async``/``await``, rename."""
    tokens = list(tokenize.generate_tokens(io.StringIO(code).readline))
    out: list[tokenize.TokenInfo] = []
    # Where a dropped token started: the next token takes its place (so a
    # line that began with it keeps its indent).
    dropped_at: tuple[int, int] | None = None
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if dropped_at is not None and tok.start[0] == dropped_at[0]:
            tok = tok._replace(start=dropped_at)
        dropped_at = None
        if tok.type == tokenize.NAME:
            nxt = tokens[i + 1] if i + 1 < len(tokens) else None
            drop_async = tok.string == "async" and nxt is not None and nxt.string in _ASYNC_BEFORE
            if drop_async or tok.string == "await":
                dropped_at = tok.start
                i += 1
                continue
            dotted = _dotted_rename(tokens, i)
            if dotted is not None:
                new, i = dotted
                out.append(tok._replace(string=new, end=tokens[i - 1].end))
                continue
            if tok.string in RENAMES:
                tok = tok._replace(string=RENAMES[tok.string])
        elif tok.type in (tokenize.STRING, tokenize.COMMENT):
            tok = tok._replace(string=_rename_text(tok.string))
        out.append(tok)
        i += 1
    return _untokenize(out)


def _dotted_rename(tokens: list[tokenize.TokenInfo], i: int) -> tuple[str, int] | None:
    for names, new in DOTTED_RENAMES.items():
        n = 2 * len(names) - 1
        run = tokens[i : i + n]
        if len(run) == n and all(
            t.string == (names[k // 2] if k % 2 == 0 else ".") for k, t in enumerate(run)
        ):
            return new, i + n
    return None


def _untokenize(tokens: list[tokenize.TokenInfo]) -> str:
    """Tokens back to source, keeping each line's layout: every token keeps its
    distance to the token before it on its line, so a dropped or renamed token
    only shifts what follows (ruff format tidies the spacing)."""
    rows: dict[int, list[str]] = {}
    last_end: dict[int, int] = {}  # per row: the end column of its last token
    for tok in tokens:
        if tok.type in (tokenize.ENDMARKER, tokenize.DEDENT):
            continue
        (srow, scol), (erow, ecol) = tok.start, tok.end
        parts = rows.setdefault(srow, [])
        parts.append(" " * max(scol - last_end.get(srow, 0), 0) + tok.string)
        last_end[erow] = ecol  # (a multi-line string's end row goes on after it)
    return "".join("".join(rows.get(row, [])) for row in range(1, max(rows, default=0) + 1))


def _ruff(args: list[str], code: str, filename: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "ruff", *args, "--stdin-filename", filename, "-"],
        input=code,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    if result.returncode not in (0, 1) or not result.stdout:
        raise RuntimeError(f"ruff {' '.join(args)} failed on {filename}:\n{result.stderr}")
    return result.stdout


def generate(source: str, target: str) -> str:
    """The sync module ``target`` as generated from the async ``source``."""
    code = (ROOT / source).read_text()
    code = "".join(resolve_markers(code.splitlines(keepends=True), source))
    code = transform_tokens(code)
    code = HEADER.format(source=source) + code
    code = _ruff(["check", "--quiet", "--fix", "--select", "I,F401", "--exit-zero"], code, target)
    return _ruff(["format"], code, target)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if a generated file is stale; write nothing"
    )
    args = parser.parse_args(argv)
    stale = 0
    for source, target in GENERATED:
        new = generate(source, target)
        path = ROOT / target
        old = path.read_text() if path.exists() else ""
        if old == new:
            continue
        if args.check:
            stale += 1
            print(
                f"{target} is stale: it differs from what {source} generates"
                " (edit the async source, then run `python scripts/async_to_sync.py`)"
            )
            diff = list(
                difflib.unified_diff(
                    old.splitlines(), new.splitlines(), target, "new", n=1, lineterm=""
                )
            )
            print("\n".join(diff[:40] + (["..."] if len(diff) > 40 else [])))
        else:
            path.write_text(new)
            print(f"wrote {target}")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
