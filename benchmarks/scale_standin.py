"""The stand-in for a submission's grading in the scale benchmark (benchmarks/scale.py), loaded
into every Dask worker process with ``dask worker --preload benchmarks/scale_standin.py``.

Everything around the grading stays real: the task (``grader.batch.cluster.grade_remote``) checks
the coordinator's MAC and this worker's fingerprint, and signs its answer with the course secret
exactly as for a real submission. Only the worker-side grading function,
``grader.batch.cluster.grade_task``, is replaced in this process by :func:`grade_task`, which

- checks the bytes and the file name as the real one does (sha256 of the bytes sent, a plain
  file name);
- sleeps for the submission's duration from the plan the benchmark wrote (``SHEET11_SCALE_PLAN``:
  a JSON object ``sha256 -> [seconds to sleep, seconds of the real run it stands for]``; the
  first is the second divided by the benchmark's time compression);
- returns a real, valid graded :class:`~grader.result.SubmissionResult`: every question of the
  rubric this worker grades with at full points, the group the file name names, ``seconds`` the
  real duration it stands for (so a re-run orders longest first from it);
- appends one JSON line when it starts and one when it ends to its own log file in
  ``SHEET11_SCALE_LOG`` (``{"event": "start"|"done", "sha256", "pid", "t"}``), from which the
  benchmark counts submissions graded more than once.

Nothing of this is in the grader: production code has no hook for it. Dying is not the stand-in's
job: the benchmark SIGKILLs worker processes itself (their pids are in ``SHEET11_SCALE_LOG`` as
``pid-<pid>`` files, written at :func:`dask_setup`).
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

from grader.batch import cluster
from grader.result import QuestionResult, SubmissionResult
from grader.submission.naming import parse_filename

PLAN_ENV = "SHEET11_SCALE_PLAN"
LOG_ENV = "SHEET11_SCALE_LOG"

_plan: dict[str, list[float]] = {}


def _log(event: str, sha256: str) -> None:
    line = json.dumps({"event": event, "sha256": sha256, "pid": os.getpid(), "t": time.time()}) + "\n"
    path = Path(os.environ[LOG_ENV]) / f"log-{os.getpid()}.jsonl"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, line.encode())  # one write of one line: whole, even if the process dies next
    finally:
        os.close(fd)


def grade_task(name: str, data: bytes, sha256: str, job: dict[str, Any]) -> SubmissionResult:
    """Stands in for ``grader.batch.cluster.grade_task``: same arguments, same checks, a real result."""
    if hashlib.sha256(data).hexdigest() != sha256:
        raise ValueError(f"{name}: the bytes that arrived do not have the sha256 that was sent")
    if not name or name in (".", "..") or "/" in name or "\0" in name:
        raise ValueError(f"not a plain file name: {name!r}")
    if not _plan:
        _plan.update(json.loads(Path(os.environ[PLAN_ENV]).read_text()))
    sleep_s, real_s = _plan[sha256]
    rubric = cluster._worker_setup()[0]
    _log("start", sha256)
    time.sleep(sleep_s)
    questions = {q.id: QuestionResult(q.id, q.title, q.points, q.points, "auto" if q.automatic else "pending")
                 for q in rubric.questions.values()}
    group = tuple({"name": n, "student_id": i, "email": ""} for n, i in parse_filename(name).pairs)
    result = SubmissionResult(submission=name, sha256=sha256, status="graded", group=group, questions=questions,
                              flags=(), max_points=rubric.max_points, seconds=real_s, folder=str(job["folder"]),
                              rubric_sha256=rubric.sha256, notebook_name=name)
    _log("done", sha256)
    return result


cluster.grade_task = grade_task  # what grade_remote calls in this worker process


def _setup_without_torch() -> None:
    """What ``cluster._worker_setup`` keeps (rubric, sandbox mode, fingerprint), made as it makes
    them except that torch's version is read from its package metadata instead of importing torch:
    a real worker imports torch for its grading process anyway; the stand-in does not grade, and
    80 worker processes with torch imported would take 18 GB of this 24 GB machine (with: about
    230 MB each, without: about 100 MB). The coordinator still compares the fingerprint."""
    import hmac
    from importlib.metadata import version

    from grader.checks.secret import load_secret
    from grader.kernel.sandbox import choose_sandbox
    from grader.rubric import load_rubric
    rubric_path = os.environ.get(cluster.ENV_RUBRIC) or None
    mode = os.environ.get(cluster.ENV_SANDBOX) or "auto"
    rubric = load_rubric(rubric_path)
    secret_id = hmac.new(load_secret(create=False), b"sheet11 cluster fingerprint", "sha256").hexdigest()[:16]
    mine = cluster.Fingerprint(cluster.project_version(), rubric.sha256, version("torch"),
                               choose_sandbox(mode).confined, secret_id)
    cluster._worker_state.update(rubric=rubric, rubric_path=rubric_path, mode=mode, fingerprint=mine)


def dask_setup(worker: Any) -> None:
    """Dask calls this when the worker starts: load the rubric and fingerprint now (as the first
    task would) and tell the benchmark this process's pid."""
    _setup_without_torch()
    (Path(os.environ[LOG_ENV]) / f"pid-{os.getpid()}").write_text(str(worker.name))
