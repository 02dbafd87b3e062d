"""``grade worker`` and ``grade scheduler``: start Dask workers and a scheduler fit for grading
(grader/cluster.py).

It checks what a worker needs before it joins (Dask installed, the rubric readable, bubblewrap
able to confine kernels unless ``--sandbox none`` is asked for), sets one torch/OpenMP thread,
then becomes ``dask worker`` with one thread per worker process (``--nthreads 1``): each process
grades one submission at a time, as a ``-j N`` grading process does. ``grade scheduler`` is
``dask scheduler`` with the Dask settings grading needs (``cluster.DASK_SETTINGS``: a worker gets
its next submission only when it is free, so the longest-first order holds).

Both speak mutual TLS only, with the course's certificates (grader/cluster_tls.py; missing ones
are a UsageError naming ``grade cluster-credentials``, which this module also registers). The
scheduler listens on 127.0.0.1 unless ``--host`` is given; a worker listens on the address of
this machine that routes to the scheduler (or ``--host``), never on every interface; the Dask
HTTP servers of both listen on 127.0.0.1 with the dashboard off.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape

from grader.cli_common import boundary, rubric_option
from grader.errors import UsageError


@click.command("worker")
@click.argument("scheduler")
@click.option("--nworkers", default=1, show_default=True, type=click.IntRange(1, 256),
              help="Worker processes to start here (e.g. the number of cores).")
@rubric_option()
@click.option("--sandbox", "sandbox_mode", default="bwrap", show_default=True,
              type=click.Choice(["bwrap", "none"]),
              help="bwrap: refuse to start where bubblewrap cannot confine kernels; none: only for trusted notebooks.")
@click.option("--name", default=None, help="A name for the worker(s) in the scheduler's view.")
@click.option("--host", default=None, metavar="ADDR",
              help="The address to listen on (default: this machine's address on the route to the scheduler).")
def worker_command(scheduler: str, nworkers: int, rubric_path: str | None, sandbox_mode: str,
                   name: str | None, host: str | None) -> None:
    """Start grading worker(s) connected to the Dask SCHEDULER (tls://HOST:8786)."""
    console = Console(stderr=True)
    with boundary(console):
        if sandbox_mode == "none" and os.geteuid() == 0:
            # Confined kernels drop to an unprivileged uid of their own (grader/sandbox.py); an
            # unconfined one would run students' code as root on this machine.
            raise UsageError("grade worker --sandbox none as root would run students' code as root; use the "
                             "bubblewrap sandbox (its kernels drop to an unprivileged uid) or run the worker as "
                             "an unprivileged user")
        argv = worker_argv(scheduler, nworkers, rubric_path, sandbox_mode, name, host)
        env = worker_env(rubric_path, sandbox_mode)
        console.print(f"grading worker(s): {nworkers} process(es), sandbox {sandbox_mode}, "
                      f"rubric {rubric_path or 'rubrics/sheet11.toml'}; listening on {argv[argv.index('--host') + 1]}, "
                      f"connecting to {scheduler} (mutual TLS)", highlight=False)
        sys.stderr.flush()
        os.execve(argv[0], argv, env)  # becomes `dask worker`; Ctrl-C stops it as usual


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
    from grader.cluster import parse_address, require_dask
    from grader.cluster_tls import tls_argv
    from grader.rubric import load_rubric
    from grader.sandbox import choose_sandbox
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
    """This environment with the grading settings the tasks read (grader/cluster.py)."""
    from grader.cluster import local_env
    return {**os.environ, **local_env(rubric_path, sandbox_mode)}


@click.command("scheduler")
@click.option("--port", default=8786, show_default=True, type=click.IntRange(1, 65535),
              help="The port workers and the coordinator connect to.")
@click.option("--host", default="127.0.0.1", show_default=True, metavar="ADDR",
              help="The address to listen on; give this machine's address on the workers' network to reach them.")
def scheduler_command(port: int, host: str) -> None:
    """Start the Dask scheduler that grading workers and `grade --cluster` connect to."""
    console = Console(stderr=True)
    with boundary(console):
        argv = scheduler_argv(port, host)
        shown = f"[{host}]" if ":" in host else host
        console.print(f"Dask scheduler for grading on tls://{shown}:{port} (mutual TLS, course CA): start "
                      f"workers with `grade worker tls://{shown}:{port}`", highlight=False)
        sys.stderr.flush()
        os.execve(argv[0], argv, scheduler_env())  # becomes `dask scheduler`


def scheduler_argv(port: int, host: str = "127.0.0.1", credentials: str | Path | None = None) -> list[str]:
    """The ``dask scheduler`` command: mutual TLS with the course's scheduler certificate,
    listening on ``host`` only, its HTTP server on 127.0.0.1 and no dashboard."""
    from grader.cluster import require_dask
    from grader.cluster_tls import tls_argv
    require_dask()
    return [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", host, "--port", str(port),
            "--protocol", "tls", "--no-dashboard", "--dashboard-address", "127.0.0.1:0",
            *tls_argv("scheduler", credentials)]


def scheduler_env() -> dict[str, str]:
    """This environment with Dask's settings for grading (and encryption required)."""
    from grader.cluster import dask_env
    from grader.cluster_tls import REQUIRE_ENCRYPTION_ENV
    return {**os.environ, **dask_env(), **REQUIRE_ENCRYPTION_ENV}


@click.command("cluster-credentials")
@click.option("--force", is_flag=True, help="Replace existing credentials (every machine then needs the new files).")
def credentials_command(force: bool) -> None:
    """Make the course's cluster CA and the scheduler, worker and coordinator certificates."""
    console = Console(stderr=True)
    with boundary(console):
        from grader.cluster_tls import CA_KEY, make_credentials, where_to_copy
        folder = make_credentials(force=force)
        out = Console(highlight=False, soft_wrap=True)
        out.print(f"Cluster credentials made in {escape(str(folder))} (folder 0700, files 0600).")
        for machine, files in where_to_copy(folder):
            out.print(f"Copy to {machine}, into the same folder (beside its course secret), mode 0600:")
            for f in files:
                out.print(f"  {escape(f)}")
        out.print(f"Never copy {escape(str(folder / CA_KEY))}: with it anybody can make certificates the "
                  "cluster accepts. Every machine also needs the course secret (grader/secret.py).")
