"""The worker side of a cluster batch: what a Dask worker keeps between tasks and the grading
process it grades in (grader/batch/cluster.py's :func:`~grader.batch.cluster.grade_remote` is
the task itself).

A worker reads its rubric and sandbox mode from its environment (``ENV_RUBRIC``,
``ENV_SANDBOX``: ``grade worker`` sets them), loads the rubric, chooses the sandbox and makes its
fingerprint once, and reads the course secret once (never creating one). It grades in a
``batch.Worker`` (the process a ``-j N`` batch grades in: the same sandbox, limits, budget,
kernel pool and failure handling), kept across tasks so that the next task's kernel is started
ahead; :func:`release_grader` ends it when the coordinator's batch is done.
"""
from __future__ import annotations

import atexit
import os
import select
import time
from typing import Any

from grader.batch.cluster_records import fingerprint
from grader.batch.daskproc import ENV_RUBRIC, ENV_SANDBOX
from grader.kernel.sandbox import choose_sandbox
from grader.result import SubmissionResult
from grader.rubric import Rubric, load_rubric

_worker_state: dict[str, Any] = {}


def _worker_setup() -> tuple[Rubric, str, str | None]:
    """The rubric and sandbox this worker grades with (from its environment), loaded once."""
    if "rubric" not in _worker_state:
        rubric_path = os.environ.get(ENV_RUBRIC) or None
        mode = os.environ.get(ENV_SANDBOX) or "auto"
        rubric = load_rubric(rubric_path)
        sandbox = choose_sandbox(mode)
        _worker_state.update(rubric=rubric, rubric_path=rubric_path, mode=mode,
                             fingerprint=fingerprint(rubric, sandbox.confined, create_secret=False))
    return _worker_state["rubric"], _worker_state["mode"], _worker_state["rubric_path"]


def worker_fingerprint() -> dict[str, Any]:
    """This worker's fingerprint as plain data (``client.run`` calls it on every worker)."""
    _worker_setup()
    return dict(_worker_state["fingerprint"].to_json())


def _this_worker() -> str:
    try:
        from distributed import get_worker
        return str(get_worker().address)
    except (ImportError, ValueError):
        return f"pid {os.getpid()}"


def _secret() -> bytes | None:
    """This process's course secret (None where it has none), read once."""
    if "secret" not in _worker_state:
        from grader.checks.secret import load_secret
        from grader.errors import SecretError
        try:
            _worker_state["secret"] = load_secret(create=False)
        except SecretError:
            _worker_state["secret"] = None
    secret = _worker_state["secret"]
    return secret if isinstance(secret, bytes) else None


def _current_key() -> str | None:
    try:
        from distributed import get_worker
        return str(get_worker().get_current_task())
    except (ImportError, ValueError):
        return None


def _grade_here(job: Any, rubric: Rubric, rubric_path: str | None, mode: str, more: bool = True) -> SubmissionResult:
    """Grade ``job`` in this Dask worker's grading process: a ``batch.Worker`` (the process a
    ``-j N`` batch grades in, with its budget, kernel pool and failure handling), kept across
    tasks so that it starts the next task's kernel ahead while it grades this one (``more``:
    the coordinator expects another task for every worker after this one)."""
    from grader.batch import run as batch
    got: list[SubmissionResult] = []

    def finished(result: SubmissionResult, pages: dict[str, str] | None) -> None:
        got.append(result)

    def fail(worker: Any, message: str, detail: str) -> None:
        # As batch._grade_all does: the process is ended, the submission gets an error result,
        # and the next task starts a fresh grading process.
        _worker_state.pop("grader", None)
        worker.kill()
        if worker.job is None:
            message = "the grader could not start a worker for this submission; a tutor will look at it"
        finished(batch.stopped_result(rubric, job, message, detail), None)

    worker = _worker_state.get("grader")
    if worker is None:
        worker = _worker_state["grader"] = batch.Worker(rubric_path, mode, rubric.budget.memory_mb, [])
        atexit.register(_close_grader, worker)
    sent = False
    while not got:
        if worker.ready and not sent:
            worker.send(job, rubric.budget.seconds, more=more)  # more: the next task finds its kernel
            sent = True
        wait = max(0.0, worker.deadline - time.monotonic())
        readable, _, _ = select.select([worker.replies], [], [], min(wait, 5.0))
        if readable:
            ok, reply = batch.read_reply(worker, fail)
            if not ok:
                break
            if reply is not None:
                batch._handle(worker, reply, rubric, finished, fail)
        if not got and worker.deadline < time.monotonic():
            if worker.job is None:
                fail(worker, "", f"a worker did not start within {batch.STARTUP_SECONDS:g} s")
            else:
                fail(worker, f"{batch.OVER_BUDGET}: grading took longer than {rubric.budget.seconds:g} s and was "
                     "stopped; a tutor will look at it", f"stopped after {time.monotonic() - worker.started:.0f} s")
    return got[0]


def release_grader() -> bool:
    """End this Dask worker's grading process, its kernels (the one started ahead) included;
    the coordinator calls it on every worker when a batch is done (``client.run``)."""
    worker = _worker_state.pop("grader", None)
    if worker is None:
        return False
    _close_grader(worker)
    return True


def _close_grader(worker: Any) -> None:
    """Let the grading process stop its kernels (and remove their folders and cgroups) and go."""
    if getattr(worker, "closed", False):
        return
    worker.closed = True
    try:
        os.close(worker.jobs)  # end of jobs: it closes its kernel pool and exits
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and os.waitpid(worker.pid, os.WNOHANG)[0] == 0:
            time.sleep(0.1)
    except (OSError, ChildProcessError):
        pass
    worker.kill()
