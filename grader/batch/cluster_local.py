"""``--cluster local:N``: a Dask scheduler and N grading workers on this machine, as
subprocesses on 127.0.0.1 with mutual TLS under a CA made for the run (grader/batch/cluster.py).

The credentials live in a fresh 0700 folder of the grading user (no other account can read its
keys, so none can join) and are removed with the processes when the batch ends; the processes
die with the coordinator (PR_SET_PDEATHSIG) and are stopped workers first, then the scheduler.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from grader.batch.cluster_guard import data_only_client, no_unpickling
from grader.errors import ClusterError

STARTUP_TIMEOUT = 180.0  # s for local:N's scheduler and workers to start on a loaded machine


def _die_with_parent() -> None:
    from grader.batch.run import _die_with_parent as die
    die()


@contextmanager
def local_cluster(n: int, rubric_path: str | None, sandbox_mode: str,
                  startup_timeout: float = STARTUP_TIMEOUT) -> Iterator[tuple[str, Path]]:
    """``--cluster local:N``: a scheduler and N single-threaded grading workers on this machine,
    as subprocesses (``grade scheduler``'s and ``grade worker``'s commands), on 127.0.0.1 only,
    with mutual TLS under a CA made for this run in a fresh 0700 folder of this user (no other
    account can read its keys, so none can join). Yields the scheduler's address and the
    credentials folder; stops both and removes the folder afterwards."""
    import subprocess

    from grader.batch.cluster_tls import make_credentials
    from grader.batch.daskproc import scheduler_argv, scheduler_env, worker_argv, worker_env
    folder = Path(tempfile.mkdtemp(prefix="sheet11-cluster-"))  # mode 0700
    procs: list[subprocess.Popen[bytes]] = []
    try:
        credentials = make_credentials(folder / "tls", days=1, name=f"sheet11 run {os.getpid()}")
        address_file = folder / "scheduler.json"
        log_file = open(folder / "cluster.log", "wb")
        try:
            def start(argv: list[str], env: dict[str, str]) -> None:
                procs.append(subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=log_file,
                                              stderr=subprocess.STDOUT, start_new_session=True,
                                              preexec_fn=_die_with_parent))
            start(scheduler_argv(0, "127.0.0.1", credentials) + ["--scheduler-file", str(address_file)],
                  scheduler_env())
            deadline = time.monotonic() + startup_timeout
            address = ""
            while not address:
                if procs[0].poll() is not None or time.monotonic() > deadline:
                    raise ClusterError("the local Dask scheduler did not start: "
                                       + (folder / "cluster.log").read_text(errors="replace")[-2000:])
                try:
                    address = str(json.loads(address_file.read_text())["address"])
                except (OSError, ValueError, KeyError):
                    time.sleep(0.2)
            start(worker_argv(address, n, rubric_path, sandbox_mode, host="127.0.0.1", credentials=credentials),
                  worker_env(rubric_path, sandbox_mode))
            _wait_for_workers(address, credentials, n, deadline, folder / "cluster.log")
            yield address, credentials
        finally:
            log_file.close()
    finally:
        for proc in reversed(procs):  # the workers (and their nannies) first, then the scheduler
            stop_process_group(proc)
        shutil.rmtree(folder, ignore_errors=True)


def _wait_for_workers(address: str, credentials: Path, n: int, deadline: float, log_path: Path) -> None:
    from grader.batch.cluster_tls import course_security
    with no_unpickling():
        client = data_only_client(address, course_security("client", credentials),
                                  max(1.0, deadline - time.monotonic()))
        try:
            client.wait_for_workers(n, timeout=max(1.0, deadline - time.monotonic()))
        except TimeoutError:
            raise ClusterError(f"the {n} local Dask worker(s) did not start: "
                               + log_path.read_text(errors="replace")[-2000:]) from None
        finally:
            client.close()


def stop_process_group(proc: Any, timeout: float = 15) -> None:
    """SIGTERM the process group ``proc`` leads, SIGKILL it after ``timeout`` s, and reap ``proc``."""
    import signal
    import subprocess
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except OSError:
            pass
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        proc.wait()
