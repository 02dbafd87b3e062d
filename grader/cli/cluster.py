"""``grade worker`` and ``grade scheduler``: start Dask workers and a scheduler fit for grading
(grader/batch/cluster.py).

It checks what a worker needs before it joins (Dask installed, the rubric readable, bubblewrap
able to confine kernels unless ``--sandbox none`` is asked for), sets one torch/OpenMP thread,
then becomes ``dask worker`` with one thread per worker process (``--nthreads 1``): each process
grades one submission at a time, as a ``-j N`` grading process does. ``grade scheduler`` is
``dask scheduler`` with the Dask settings grading needs (``cluster.DASK_SETTINGS``: a worker gets
its next submission only when it is free, so the longest-first order holds).
"""
from __future__ import annotations

import os
import sys

import click
from rich.console import Console

from grader.cli.common import boundary, rubric_option
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
def worker_command(scheduler: str, nworkers: int, rubric_path: str | None, sandbox_mode: str,
                   name: str | None) -> None:
    """Start grading worker(s) connected to the Dask SCHEDULER (tcp://HOST:8786)."""
    console = Console(stderr=True)
    with boundary(console):
        argv = worker_argv(scheduler, nworkers, rubric_path, sandbox_mode, name)
        env = worker_env(rubric_path, sandbox_mode)
        console.print(f"grading worker(s): {nworkers} process(es), sandbox {sandbox_mode}, "
                      f"rubric {rubric_path or 'rubrics/sheet11.toml'}; connecting to {scheduler}",
                      highlight=False)
        sys.stderr.flush()
        os.execve(argv[0], argv, env)  # becomes `dask worker`; Ctrl-C stops it as usual


def worker_argv(scheduler: str, nworkers: int, rubric_path: str | None, sandbox_mode: str,
                name: str | None = None) -> list[str]:
    """The ``dask worker`` command for these settings, after checking that grading can run here."""
    from grader.batch.cluster import parse_address, require_dask
    from grader.kernel.sandbox import choose_sandbox
    from grader.rubric import load_rubric
    if parse_address(scheduler)[0] != "remote":
        raise UsageError(f"grade worker needs the scheduler's address (tcp://HOST:8786), not {scheduler!r}")
    require_dask()
    load_rubric(rubric_path)       # a bad rubric is refused here, not in the first task
    choose_sandbox(sandbox_mode)   # bwrap: SandboxUnavailable (exit 2) where it cannot confine
    argv = [sys.executable, "-m", "distributed.cli.dask_worker", scheduler, "--nthreads", "1",
            "--nworkers", str(nworkers)]
    if name:
        argv += ["--name", name]
    return argv


def worker_env(rubric_path: str | None, sandbox_mode: str) -> dict[str, str]:
    """This environment with the grading settings the tasks read (grader/batch/cluster.py)."""
    from grader.batch.cluster import local_env
    return {**os.environ, **local_env(rubric_path, sandbox_mode)}


@click.command("scheduler")
@click.option("--port", default=8786, show_default=True, type=click.IntRange(1, 65535),
              help="The port workers and the coordinator connect to.")
def scheduler_command(port: int) -> None:
    """Start the Dask scheduler that grading workers and `grade --cluster` connect to."""
    console = Console(stderr=True)
    with boundary(console):
        argv = scheduler_argv(port)
        console.print(f"Dask scheduler for grading on port {port}: start workers with "
                      f"`grade worker tcp://THIS-HOST:{port}`", highlight=False)
        sys.stderr.flush()
        os.execve(argv[0], argv, scheduler_env())  # becomes `dask scheduler`


def scheduler_argv(port: int) -> list[str]:
    """The ``dask scheduler`` command."""
    from grader.batch.cluster import require_dask
    require_dask()
    return [sys.executable, "-m", "distributed.cli.dask_scheduler", "--port", str(port)]


def scheduler_env() -> dict[str, str]:
    """This environment with Dask's settings for grading."""
    from grader.batch.cluster import dask_env
    return {**os.environ, **dask_env()}
