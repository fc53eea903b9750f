"""Run wrk (the HTTP load generator, Debian's ``wrk`` package) and read its
numbers from a small Lua ``done`` hook that prints them as one JSON line.

wrk keeps a fixed number of connections busy (a closed loop): each sends its
next request when the previous answer arrives, so latencies are those of a
server kept at that concurrency, not of a fixed arrival rate."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

MARK = "WRK-JSON "

# summary.errors.status counts responses with a status of 400 or more.
_DONE_HOOK = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '%s{"requests": %d, "duration_us": %d, "connect": %d, "read": %d, "write": %d, '
    .. '"status": %d, "timeout": %d, "p50_us": %d, "p99_us": %d, "max_us": %d}\\n',
    "MARK", summary.requests, summary.duration, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(99), latency.max))
end
""".replace("MARK", MARK)


class WrkMissing(RuntimeError):
    pass


class WrkFailed(RuntimeError):
    pass


def wrk_path() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise WrkMissing(
            "wrk (an HTTP load generator) is not installed: scripts/bench installs Debian's "
            "wrk package; by hand: apt-get install wrk"
        )
    return path


def version() -> str:
    proc = subprocess.run([wrk_path(), "--version"], capture_output=True, text=True, timeout=10)
    first = (proc.stdout or proc.stderr).splitlines()
    return first[0].split(" [")[0].removeprefix("wrk ") if first else "unknown"


@dataclass
class WrkResult:
    requests: int
    seconds: float
    errors: dict[str, int]  # connect, read, write, timeout (socket) and status (>= 400)
    p50_ms: float
    p99_ms: float
    max_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def run(url: str, seconds: int, connections: int, threads: int = 1) -> WrkResult:
    """Load ``url`` for ``seconds`` with ``connections`` connections. One wrk
    thread: on two cores, wrk must not take the server's CPU (one thread drives
    tens of thousands of requests a second)."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(_DONE_HOOK)
        script = Path(f.name)
    try:
        cmd = [wrk_path(), f"-t{threads}", f"-c{connections}", f"-d{seconds}s"]
        cmd += ["--timeout", "10s", "-s", str(script), url]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    finally:
        script.unlink()
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith(MARK)), None)
    if proc.returncode != 0 or line is None:
        raise WrkFailed(f"wrk failed (exit {proc.returncode}): {proc.stdout}{proc.stderr}")
    d = json.loads(line[len(MARK) :])
    return WrkResult(
        requests=d["requests"],
        seconds=d["duration_us"] / 1e6,
        errors={k: d[k] for k in ("connect", "read", "write", "timeout", "status")},
        p50_ms=d["p50_us"] / 1e3,
        p99_ms=d["p99_us"] / 1e3,
        max_ms=d["max_us"] / 1e3,
    )
