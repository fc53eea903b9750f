"""MkDocs hook: publish the plots that scripts/bench writes under
bench/results/ as assets/ of the site, so the docs show the latest runs
without a second copy in the repository."""

from __future__ import annotations

import os
from typing import Any

from mkdocs.structure.files import File, Files

_RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "bench", "results")
# plot under bench/results -> its place in the site
PLOTS = {
    "latest.png": "assets/benchmark.png",
    "async/latest.png": "assets/benchmark-async.png",
    "server/latest.png": "assets/benchmark-server.png",
}


def on_files(files: Files, config: Any) -> Files:
    for src, dest in PLOTS.items():
        path = os.path.normpath(os.path.join(_RESULTS, src))
        if os.path.exists(path):
            files.append(File.generated(config, dest, abs_src_path=path))
    return files
