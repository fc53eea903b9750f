"""Start a server in its own process group, wait until it answers, read the CPU
time of all its processes, and stop it by its own process id.

A server runs in a new session (``start_new_session``), so its process group id
is its pid: every worker it forks is in that group, which is how the CPU time
is summed and how the stop is checked. Nothing here signals any process that
the runner did not start."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class ServerFailed(RuntimeError):
    """The server did not come up; the message ends with its stderr."""


def free_port() -> int:
    """A port free on 127.0.0.1 now. Another process could take it before the
    server binds it: the health check's run id tells our server from any other."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path  # the server's stdout and stderr

    @property
    def pid(self) -> int:
        return self.proc.pid

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""


def start(cmd: list[str], env: dict[str, str], cwd: Path, port: int, log: Path) -> Server:
    out: IO[bytes] = log.open("wb")
    try:
        proc = subprocess.Popen(
            cmd,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: pgid == pid
        )
    finally:
        out.close()  # the child has its own descriptor
    return Server(proc, port, log)


def wait_healthy(server: Server, token: str, workers: int = 1, timeout: float = 60.0) -> float:
    """Poll GET /health, a new connection each time, until it answers ``token``
    from ``workers`` different worker processes; returns the seconds it took.

    Every worker must have answered, not just the first one up: a worker still
    importing the app or opening its pool is not accepting yet, and the load
    generator's keep-alive connections would all go to (and stay with) the ones
    that are, so a two-worker server would be measured as a one-worker one."""
    t0 = time.monotonic()
    seen: set[int] = set()
    while True:
        if server.proc.poll() is not None:
            raise ServerFailed(
                f"the server exited with code {server.proc.returncode} before it was healthy:\n"
                + server.log_text()[-4000:]
            )
        try:
            with urllib.request.urlopen(server.url("/health"), timeout=2) as resp:
                body = resp.read().decode()
            if token not in body:
                raise ServerFailed(f"another server answers on port {server.port}: {body[:200]!r}")
            seen.add(int(json.loads(body)["pid"]))
            if len(seen) >= workers:
                return time.monotonic() - t0
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        if time.monotonic() - t0 > timeout:
            raise ServerFailed(
                f"{len(seen)} of {workers} workers answered within {timeout:.0f} s:\n"
                + server.log_text()[-4000:]
            )
        time.sleep(0.05)


def _stat_fields(pid: str) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (which may hold
    spaces and parentheses, so split after its last ')')."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # the process ended meanwhile
        return None
    return text[text.rindex(")") + 2 :].split()


def group_pids(pgid: int) -> list[int]:
    """The live processes of process group ``pgid`` (zombies, already ended and
    waiting for their parent to reap them, are not counted)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(entry)
            if fields is not None and int(fields[2]) == pgid and fields[0] != "Z":
                pids.append(int(entry))
    return pids


def group_cpu_seconds(pgid: int) -> float:
    """User + system CPU time of every live process in the group (and of the
    children they reaped): the whole server, master and workers."""
    return sum(group_cpu_by_pid(pgid).values())


def group_cpu_by_pid(pgid: int) -> dict[int, float]:
    """As ``group_cpu_seconds``, process by process."""
    seconds = {}
    for pid in group_pids(pgid):
        fields = _stat_fields(str(pid))
        if fields is not None:
            # utime, stime, cutime, cstime: fields 14-17 of stat(5), 11-14 here
            seconds[pid] = sum(int(f) for f in fields[11:15]) / CLOCK_TICKS
    return seconds


def busiest_share(before: dict[int, float], after: dict[int, float]) -> float:
    """The share of the group's CPU time between two readings taken by the
    process that used most of it (nan if the group used none)."""
    used = [after[pid] - before.get(pid, 0.0) for pid in after]
    total = sum(used)
    return max(used) / total if total > 0 else float("nan")


@dataclass
class Stopped:
    graceful: bool  # it ended on SIGTERM within the grace period
    left: list[int]  # processes of its group still there after SIGKILL (should be none)
    returncode: int | None


def stop(server: Server, grace: float = 15.0) -> Stopped:
    """SIGTERM the server's process group (its pid), wait; SIGKILL the group if
    it is still there; then check that no process of the group is left."""
    pgid = server.pid
    graceful = True
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        server.proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        graceful = False
    deadline = time.monotonic() + grace
    # The leader may be gone while workers still finish: wait for the whole group.
    while group_pids(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if group_pids(pgid):
        graceful = False
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        server.proc.wait(timeout=10)
        time.sleep(0.2)
    return Stopped(graceful, group_pids(pgid), server.proc.returncode)
