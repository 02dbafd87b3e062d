"""``grade worker`` and ``grade scheduler``: start Dask workers and a scheduler fit for grading
(grader/batch/cluster.py).

It checks what a worker needs before it joins (Dask installed, the rubric readable, bubblewrap
able to confine kernels unless ``--sandbox none`` is asked for), sets one torch/OpenMP thread,
then becomes ``dask worker`` with one thread per worker process (``--nthreads 1``): each process
grades one submission at a time, as a ``-j N`` grading process does. ``grade scheduler`` is
``dask scheduler`` with the Dask settings grading needs (``daskproc.DASK_SETTINGS``: a worker gets
its next submission only when it is free, so the longest-first order holds).

Both speak mutual TLS only, with the course's certificates (grader/batch/cluster_tls.py; missing ones
are a UsageError naming ``grade cluster-credentials``, which this module also registers). The
scheduler listens on 127.0.0.1 unless ``--host`` is given; a worker listens on the address of
this machine that routes to the scheduler (or ``--host``), never on every interface; the Dask
HTTP servers of both listen on 127.0.0.1 with the dashboard off.
"""
from __future__ import annotations

import os
import sys

import click
from rich.console import Console
from rich.markup import escape

from grader.batch.daskproc import scheduler_argv, scheduler_env, worker_argv, worker_env
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
@click.option("--host", default=None, metavar="ADDR",
              help="The address to listen on (default: this machine's address on the route to the scheduler).")
def worker_command(scheduler: str, nworkers: int, rubric_path: str | None, sandbox_mode: str,
                   name: str | None, host: str | None) -> None:
    """Start grading worker(s) connected to the Dask SCHEDULER (tls://HOST:8786)."""
    console = Console(stderr=True)
    with boundary(console):
        if sandbox_mode == "none" and os.geteuid() == 0:
            # Confined kernels drop to an unprivileged uid of their own (grader/kernel/sandbox.py); an
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


@click.command("cluster-credentials")
@click.option("--force", is_flag=True, help="Replace existing credentials (every machine then needs the new files).")
def credentials_command(force: bool) -> None:
    """Make the course's cluster CA and the scheduler, worker and coordinator certificates."""
    console = Console(stderr=True)
    with boundary(console):
        from grader.batch.cluster_tls import CA_KEY, make_credentials, where_to_copy
        folder = make_credentials(force=force)
        out = Console(highlight=False, soft_wrap=True)
        out.print(f"Cluster credentials made in {escape(str(folder))} (folder 0700, files 0600).")
        for machine, files in where_to_copy(folder):
            out.print(f"Copy to {machine}, into the same folder (beside its course secret), mode 0600:")
            for f in files:
                out.print(f"  {escape(f)}")
        out.print(f"Never copy {escape(str(folder / CA_KEY))}: with it anybody can make certificates the "
                  "cluster accepts. Every machine also needs the course secret (grader/checks/secret.py).")
