"""One run: a fresh server for one (server set-up, endpoint, contender), health-
checked, warmed up, loaded by wrk, measured, stopped, and checked for anything
that makes its numbers untrustworthy. Such a run is *flagged* with the reasons;
the case reports it and leaves it out of every median and ratio."""

from __future__ import annotations

import importlib.util
import math
import os
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import process, sessions, trace, wrk
from .settings import Settings

ROOT = Path(__file__).resolve().parents[2]
POOLED_AT_MOST = {"dedicated", "no database"}  # the two contenders that are not a pool

# A traceback, or a line gunicorn or uvicorn logs at ERROR or CRITICAL level.
_TROUBLE = re.compile(r"Traceback \(most recent call last\)|\[(?:ERROR|CRITICAL)\]|^ERROR:", re.M)


@dataclass(frozen=True)
class ServerSetup:
    """A server and how many processes and threads it runs."""

    kind: str  # "gthread" (gunicorn) or "uvicorn"
    workers: int
    threads: int = 1  # per gunicorn worker; uvicorn runs one event loop per worker

    @classmethod
    def parse(cls, text: str) -> ServerSetup:
        """``gthread:WxT`` (W workers of T threads) or ``uvicorn:W``."""
        kind, _, shape = text.partition(":")
        try:
            if kind == "gthread":
                w, t = shape.split("x")
                setup = cls("gthread", int(w), int(t))
            elif kind == "uvicorn":
                setup = cls("uvicorn", int(shape or 1))
            else:
                raise ValueError
        except ValueError:
            raise ValueError(
                f"bad server set-up {text!r}: use gthread:WORKERSxTHREADS or uvicorn:WORKERS"
            ) from None
        if setup.workers < 1 or setup.threads < 1:
            raise ValueError(f"bad server set-up {text!r}: workers and threads must be positive")
        return setup

    @property
    def is_async(self) -> bool:
        return self.kind == "uvicorn"

    @property
    def key(self) -> str:
        if self.is_async:
            return f"uvicorn_{self.workers}"
        return f"gthread_{self.workers}x{self.threads}"

    def describe(self) -> str:
        workers = f"{self.workers} worker{'s' if self.workers > 1 else ''}"
        if self.is_async:
            return f"uvicorn (asyncio, {_uvicorn_loop()} loop, {_uvicorn_http()}), {workers}"
        return f"gunicorn gthread, {workers} × {self.threads} threads"

    def command(self, port: int) -> list[str]:
        if self.is_async:
            cmd = [sys.executable, "-m", "uvicorn", "bench.server.asgi:app"]
            cmd += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
            cmd += ["--no-access-log", "--lifespan", "on", "--timeout-graceful-shutdown", "10"]
            cmd += ["--loop", _uvicorn_loop(), "--http", _uvicorn_http()]
            return cmd + (["--workers", str(self.workers)] if self.workers > 1 else [])
        cmd = [sys.executable, "-m", "gunicorn", "bench.server.wsgi:app", "-k", "gthread"]
        cmd += ["--workers", str(self.workers), "--threads", str(self.threads)]
        cmd += ["--bind", f"127.0.0.1:{port}", "--log-level", "warning"]
        cmd += ["--graceful-timeout", "10", "--timeout", "60"]
        if self.workers > 1:
            # With this option each worker binds its own SO_REUSEPORT socket
            # (gunicorn 27's Arbiter.spawn_worker; without it the master binds one
            # they all share), so the kernel spreads new connections over the
            # workers by a hash of their addresses. On one shared socket whichever
            # worker wins each accept keeps that keep-alive connection for the
            # whole run: in half of the runs measured so, one worker took all of
            # wrk's connections. A gunicorn that still shares one socket is
            # caught by the balance check (run_balanced).
            cmd.append("--reuse-port")
        if _gunicorn_has("control_socket_disable"):
            # gunicorn 25+ opens a control socket at one fixed path by default:
            # servers running side by side would fight over it.
            cmd.append("--no-control-socket")
        return cmd

    def sessions_allowed(self, contender: str, pool_size: int, connections: int) -> int:
        """The most database sessions the server may hold: the pool size per
        worker; one per thread (gthread) or per request in flight (asyncio) for
        the dedicated ceiling; none without a database."""
        if contender == "no database":
            return 0
        if contender == "dedicated":
            return self.workers * self.threads if not self.is_async else connections
        return self.workers * pool_size


def _uvicorn_loop() -> str:
    return "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"


def _uvicorn_http() -> str:
    return "httptools" if importlib.util.find_spec("httptools") else "h11"


def _gunicorn_has(setting: str) -> bool:
    import gunicorn.config

    return any(s.name == setting for s in gunicorn.config.KNOWN_SETTINGS)


@dataclass(frozen=True)
class Run:
    server: ServerSetup
    endpoint: str  # a path without the slash: select1, txn, nodb (or the self-test)
    contender: str
    dsn: str
    table: str
    pool_size: int
    seconds: int  # measured wrk run
    warmup: int  # wrk run before it, not measured (0: none)
    connections: int  # wrk connections


# A run of a several-worker server in which one process used more than this
# share of the server's CPU measured (nearly) one worker, not the set-up it
# claims: it is re-run on a fresh server, and flagged if it stays so.
UNBALANCED_SHARE = 0.75
BALANCE_RERUNS = 2


def balance_verdict(busiest_share: float, workers: int, reruns_done: int) -> str:
    """What to do with a clean run, from its busiest process's share of the
    server's CPU: "keep" it, "rerun" it on a fresh server, or "flag" it (still
    unbalanced after ``BALANCE_RERUNS`` re-runs)."""
    # nan (the server used no CPU) is not judged: other checks flag such a run
    if workers < 2 or not busiest_share > UNBALANCED_SHARE:
        return "keep"
    return "rerun" if reruns_done < BALANCE_RERUNS else "flag"


def run_balanced(run: Run) -> tuple[float, dict[str, Any]]:
    """``run_once``, repeated on a fresh server while one worker of several did
    nearly all the work. The attempts set aside count in no figure; their
    shares are kept in ``info["unbalanced_reruns"]`` for the table."""
    set_aside: list[float] = []
    while True:
        value, info = run_once(run)
        if info["flagged"]:  # its own reasons say more than its split
            break
        share = info.get("busiest_process_cpu_share", math.nan)
        verdict = balance_verdict(share, run.server.workers, len(set_aside))
        if verdict == "keep":
            break
        if verdict == "flag":
            info["flagged"].append(
                f"unbalanced workers: one did {share:.0%} of the server's CPU "
                f"(limit {UNBALANCED_SHARE:.0%}), after {len(set_aside)} re-runs"
            )
            break
        set_aside.append(share)
    info["unbalanced_reruns"] = set_aside
    return value, info


_runs = 0


def _next_app_name() -> str:
    global _runs
    _runs += 1
    return f"fastpool-bench-{os.getpid()}-{_runs}"


def _server_env(settings: Settings) -> dict[str, str]:
    import fastpool

    env = dict(os.environ)
    env.update(settings.to_env())
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["FASTPOOL_IMPL"] = fastpool.__impl__  # the core this benchmark process runs on
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _trouble(log: str) -> str:
    """The first worrying part of a server log ('' if none), password masked."""
    m = _TROUBLE.search(log)
    if m is None:
        return ""
    from tests.support.postgres import mask_password

    return mask_password(log[m.start() : m.start() + 1500])


def run_once(run: Run) -> tuple[float, dict[str, Any]]:
    """Requests/s of one run, and everything else measured; ``info["flagged"]``
    lists what went wrong (empty for a clean run)."""
    app_name = _next_app_name()
    allowed = run.server.sessions_allowed(run.contender, run.pool_size, run.connections)
    info: dict[str, Any] = {
        "unit": "requests/s",
        "higher_is_better": True,
        "sessions_allowed": allowed,
        "flagged": [],
    }
    flagged: list[str] = info["flagged"]
    sampler = sessions.Sampler(run.dsn, app_name)
    with tempfile.TemporaryDirectory(prefix="fastpool-bench-server-") as tmp:
        settings = Settings(
            contender=run.contender,
            dsn=sessions.with_app_name(run.dsn, app_name),
            pool_size=run.pool_size,
            autocommit=run.endpoint != "txn",
            table=run.table,
            run_id=app_name,
            trace_dir=tmp,  # the pools that trace write their requests' times here at exit
        )
        port = process.free_port()
        server = process.start(
            run.server.command(port), _server_env(settings), ROOT, port, Path(tmp) / "server.log"
        )
        result: wrk.WrkResult | None = None
        cpu = 0.0
        try:
            info["startup_s"] = process.wait_healthy(server, app_name, run.server.workers)
            url = server.url("/" + run.endpoint)
            if run.warmup:
                warm = wrk.run(url, run.warmup, run.connections)
                if sum(warm.errors.values()):
                    flagged.append(f"errors while warming up: {_errors_text(warm.errors)}")
            cpu0 = process.group_cpu_by_pid(server.pid)
            measured_from = trace.monotonic()
            result = wrk.run(url, run.seconds, run.connections)
            measured_to = trace.monotonic()
            cpu1 = process.group_cpu_by_pid(server.pid)
            cpu = sum(cpu1.values()) - sum(cpu0.values())
            # With several workers, each keeps the wrk connections it accepted
            # (keep-alive) for the whole run, and the kernel does not share them
            # out evenly: one worker holding most of them serves the run at
            # about one worker's throughput, whatever the pool.
            info["busiest_process_cpu_share"] = process.busiest_share(cpu0, cpu1)
            # how busy the machine was (a shared 2-core machine: other work moves the numbers)
            info["loadavg_1min"] = os.getloadavg()[0]
            if server.proc.poll() is not None:
                flagged.append(f"the server exited during the run (code {server.proc.returncode})")
        except process.ServerFailed as exc:
            flagged.append(f"server failed: {str(exc).splitlines()[0]}")
            info["log"] = _trouble(str(exc)) or str(exc)[-1500:]
        except wrk.WrkFailed as exc:
            flagged.append(str(exc).splitlines()[0])
        finally:
            info["sessions_max"] = sampler.stop()
            stopped = process.stop(server)
            log = server.log_text()
            info["sessions_left"] = sampler.left_after()
            sampler.close()
        if result is not None:
            # the connection wait and hold of the measured requests (trace.py)
            info.update(trace.summarize(tmp, measured_from, measured_to))
    if result is not None:
        info.update(
            requests=result.requests,
            p50_ms=result.p50_ms,
            p99_ms=result.p99_ms,
            max_ms=result.max_ms,
            cpu_us_per_req=cpu / result.requests * 1e6 if result.requests else float("nan"),
            errors=sum(result.errors.values()),
            error_kinds=result.errors,
        )
        if result.requests == 0:
            flagged.append("no request completed")
        if result.errors["status"]:
            flagged.append(f"{result.errors['status']} responses with HTTP status >= 400")
        socket_errors = {k: v for k, v in result.errors.items() if k != "status" and v}
        if socket_errors:
            flagged.append(f"socket errors: {_errors_text(socket_errors)}")
    trouble = _trouble(log)
    if trouble:
        flagged.append("traceback or error in the server log")
        info.setdefault("log", trouble)
    if info["sessions_max"] > allowed:
        flagged.append(f"{info['sessions_max']} database sessions, at most {allowed} expected")
    if info["sessions_left"]:
        flagged.append(f"{info['sessions_left']} database sessions left after the server stopped")
    if not stopped.graceful:
        flagged.append("the server did not stop on SIGTERM (killed)")
    if stopped.left:
        flagged.append(f"server processes left after SIGKILL: {stopped.left}")
    return (result.rps if result is not None else 0.0), info


def _errors_text(errors: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in errors.items() if v)
