"""The Dask processes grading runs on: their settings and their command lines, ``dask scheduler`` and ``dask worker``
with the course's TLS certificates, bound to loopback or to the route to the scheduler, HTTP on
127.0.0.1 and no dashboard (grader/batch/cluster.py starts them for ``--cluster local:N``;
``grade scheduler`` and ``grade worker``, grader/cli/cluster.py, become them).
"""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

from grader.batch.cluster_tls import REQUIRE_ENCRYPTION_ENV
from grader.errors import UsageError

# The environment a worker grades with: set by `grade worker` and by `--cluster local:N` for the
# worker processes it starts, read by the task on the worker.
ENV_RUBRIC = "SHEET11_RUBRIC"

ENV_SANDBOX = "SHEET11_SANDBOX"

# Dask's settings for grading, in the coordinator's LocalCluster and every worker process (as
# environment variables: dask_env); docs/performance.md, "Many machines", starts a remote scheduler with them.
# Each worker's grading process and kernel keep both cores busy, so Dask's own periodic work
# takes CPU from training directly: with Dask's defaults an idle LocalCluster of 2 workers used
# 11 % of a core (its statistical profiler samples every 10 ms, the event loops' tick every
# 20 ms, system monitors every 500 ms), with these 1.3 %.
SATURATION = "distributed.scheduler.worker-saturation"

DASK_SETTINGS: dict[str, object] = {
    # The scheduler gives a worker its next submission only when it is free, so the longest-first
    # order holds as with -j N (Dask's default, 1.1, binds a second one to a busy worker while
    # another may go idle).
    SATURATION: 1.0,
    "distributed.worker.profile.enabled": False,   # the dashboard's profile: nobody reads it here
    "distributed.admin.tick.interval": "1s",        # only detects a blocked event loop
    "distributed.admin.system-monitor.interval": "5s",  # the dashboard's CPU and network plots
    "distributed.worker.memory.monitor-interval": "1s",  # kernels have their own memory limits
}

_LOCAL = re.compile(r"local:(\d{1,3})")

_TCP = re.compile(r"(tcp|tls)://[A-Za-z0-9._\-\[\]:]+:\d{1,5}")

INSTALL_HINT = ('the cluster mode needs Dask distributed, an optional extra: '
                'pip install "sheet11-grader[cluster]" (or pip install "dask[distributed]")')

def parse_address(address: str) -> tuple[str, int]:
    """``("local", N)`` for ``local:N``, ``("remote", 0)`` for ``tls://HOST:PORT``; else a
    UsageError (``tcp://`` included: the grading cluster speaks mutual TLS only)."""
    local = _LOCAL.fullmatch(address)
    if local:
        n = int(local.group(1))
        if not 1 <= n <= 64:
            raise UsageError(f"--cluster {address}: local:N needs 1 <= N <= 64 worker processes")
        return "local", n
    remote = _TCP.fullmatch(address)
    if remote and remote.group(1) == "tls":
        return "remote", 0
    if remote:
        raise UsageError(f"--cluster {address}: tcp:// is neither encrypted nor authenticated, so anybody who "
                         "reaches the port could run code on the cluster; use tls://HOST:PORT (run `grade "
                         "cluster-credentials` once, copy the files it names to each machine, and start "
                         "`grade scheduler` and `grade worker tls://HOST:PORT`)")
    raise UsageError(f"--cluster {address!r} is not understood; give local:N (N worker processes on this "
                     "machine) or the scheduler's address, e.g. tls://scheduler.example:8786")

def local_env(rubric_path: str | None, sandbox_mode: str) -> dict[str, str]:
    """The environment of a grading worker process: the rubric and sandbox mode its tasks use,
    one torch/OpenMP thread, and Dask's settings for grading (:data:`DASK_SETTINGS`)."""
    return {ENV_RUBRIC: str(Path(rubric_path).resolve()) if rubric_path else "", ENV_SANDBOX: sandbox_mode,
            "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", **dask_env(),
            **REQUIRE_ENCRYPTION_ENV}

def dask_env(settings: dict[str, object] | None = None) -> dict[str, str]:
    """Dask settings as the environment variables Dask reads when it starts
    (``distributed.admin.tick.interval`` -> ``DASK_DISTRIBUTED__ADMIN__TICK__INTERVAL``)."""
    return {"DASK_" + "__".join(part.upper().replace("-", "_") for part in key.split(".")): str(value)
            for key, value in (DASK_SETTINGS if settings is None else settings).items()}

def require_dask() -> Any:
    """The ``distributed`` package, or a UsageError that says how to install it."""
    try:
        import distributed
    except ImportError:
        raise UsageError(INSTALL_HINT) from None
    return distributed



def routed_host(scheduler: str) -> str:
    """This machine's address on the route to the scheduler at ``scheduler`` (tls://HOST:PORT):
    the interface a worker listens on by default. No packet is sent (a UDP socket's connect only
    picks the route)."""
    import socket
    from urllib.parse import urlsplit
    parts = urlsplit(scheduler)
    host, port = parts.hostname or "", parts.port or 8786
    try:
        family, _, _, _, sockaddr = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect(sockaddr)
            return str(probe.getsockname()[0])
    except (OSError, IndexError) as exc:
        raise UsageError(f"no route to the scheduler {scheduler} from this machine ({exc}); check the address "
                         "or give --host ADDR") from None


def worker_argv(scheduler: str, nworkers: int, rubric_path: str | None, sandbox_mode: str,
                name: str | None = None, host: str | None = None, credentials: str | Path | None = None) -> list[str]:
    """The ``dask worker`` command for these settings, after checking that grading can run here:
    mutual TLS with the course's worker certificate (``credentials``: its folder, default beside
    the course secret), listening on ``host`` (default: :func:`routed_host`), its HTTP server on
    127.0.0.1 and no dashboard."""
    from grader.batch.cluster_tls import tls_argv
    from grader.kernel.sandbox import choose_sandbox
    from grader.rubric import load_rubric
    if parse_address(scheduler)[0] != "remote":
        raise UsageError(f"grade worker needs the scheduler's address (tls://HOST:8786), not {scheduler!r}")
    require_dask()
    tls = tls_argv("worker", credentials)
    load_rubric(rubric_path)       # a bad rubric is refused here, not in the first task
    choose_sandbox(sandbox_mode)   # bwrap: SandboxUnavailable (exit 2) where it cannot confine
    argv = [sys.executable, "-m", "distributed.cli.dask_worker", scheduler, "--nthreads", "1",
            "--nworkers", str(nworkers), "--host", host or routed_host(scheduler), "--protocol", "tls",
            "--no-dashboard", "--dashboard-address", "127.0.0.1:0", *tls]
    if name:
        argv += ["--name", name]
    return argv


def worker_env(rubric_path: str | None, sandbox_mode: str) -> dict[str, str]:
    """This environment with the grading settings the tasks read (grader/batch/cluster.py)."""
    return {**os.environ, **local_env(rubric_path, sandbox_mode)}


def scheduler_argv(port: int, host: str = "127.0.0.1", credentials: str | Path | None = None) -> list[str]:
    """The ``dask scheduler`` command: mutual TLS with the course's scheduler certificate,
    listening on ``host`` only, its HTTP server on 127.0.0.1 and no dashboard."""
    from grader.batch.cluster_tls import tls_argv
    require_dask()
    return [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", host, "--port", str(port),
            "--protocol", "tls", "--no-dashboard", "--dashboard-address", "127.0.0.1:0",
            *tls_argv("scheduler", credentials)]


def scheduler_env() -> dict[str, str]:
    """This environment with Dask's settings for grading (and encryption required)."""
    from grader.batch.cluster_tls import REQUIRE_ENCRYPTION_ENV
    return {**os.environ, **dask_env(), **REQUIRE_ENCRYPTION_ENV}
