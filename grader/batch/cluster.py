"""Grade a batch on a Dask distributed cluster: ``grade PATH... --cluster tls://HOST:8786`` or
``--cluster local:N``.

The coordinator (the ``grade`` command) keeps everything that touches the output folder: it
skips what is finished, orders the rest longest first, and writes each result, report, the
gradebook rows, ``grades.csv``, ``summary.html`` and the similarity as results arrive, exactly
as ``-j N`` does (grader/batch/run.py). A worker only grades:

- a task carries the submission as bytes with its file name and sha256 (workers need no shared
  file system), the job's plain data (deadline, tutors' scores), the coordinator's
  *fingerprint* (project version, rubric sha256, torch version, whether kernels are sandboxed,
  a keyed digest of the course secret), the task's key and a MAC over all of it under the course
  secret (grader/checks/secret.py);
- the worker checks the MAC (a client without the secret cannot make it grade) and compares the
  fingerprint with its own; a difference is answered with a ``refused`` record and the
  coordinator stops and names the worker and what differs;
- otherwise it writes the bytes into a private temporary folder and grades them with the
  batch's own machinery: a grading process as ``-j N`` uses (``batch.Worker``: the same sandbox,
  limits, rubric, grader budget, one fresh kernel per task, student code in a kernel of its own
  uid, never root: grader/kernel/sandbox.py), kept by the Dask worker across tasks so that the next
  task's kernel is started ahead (grader/kernel/kernelpool.py).

Security (README/docs "Many machines"): addresses are ``tls://`` only; scheduler, workers and
coordinator authenticate each other with mutual TLS under the course CA (grader/batch/cluster_tls.py),
``local:N`` with a CA made for that run in a 0700 folder of the grading user, every listener on
loopback. A task *always returns* one JSON string, never raises: ``{"kind": "result"|"error",
"key", "sha256", "rubric_sha256", "body", "mac"}`` with ``mac`` = HMAC-SHA256 under the course
secret over (kind, key, sha256, rubric_sha256, body), or ``{"kind": "refused", ...}``. The
coordinator reads results as data only: its Dask client accepts msgpack only
(``deserializers=["msgpack"]``) and, while connected, every unpickling path of Dask in its
process refuses (:func:`no_unpickling`: the ``__Pickled__`` frames Dask decodes regardless of
the deserializers, the result type of ``key-in-memory``, task exceptions and tracebacks,
``client.run`` errors, ``warn`` events). A result is accepted only when its MAC, key, sha256 and
rubric sha256 are those of the task sent; anything else gives that submission an ``error``
result (the batch goes on), as does a task that failed in Dask (its exception is not read).

Faults: a worker that dies mid-task (SIGKILL, a lost machine) makes the scheduler run the task
on another worker (Dask reschedules tasks of lost workers, up to
``distributed.scheduler.allowed-failures`` times, then the submission gets an ``error`` result);
the submission is recorded once, when its result arrives; the task's grading process (and its
kernel) dies with the worker (batch.py's PR_SET_PDEATHSIG). A finished task's answer is fetched
into the coordinator the moment it is done (on Dask's callback thread) and the task released on
the cluster, so a worker lost afterwards takes no finished work with it (Dask would run it
again). A coordinator that is killed loses nothing that was written: the same command resumes. A
scheduler that cannot be reached within the connect timeout is a :class:`~grader.errors.ClusterError` (exit 2).

Dask is an optional extra (``pip install "sheet11-grader[cluster]"``); without it ``--cluster``
says how to install it and ``-j N`` works as always.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from queue import Empty, SimpleQueue
from typing import Any

from grader.batch.cluster_guard import TASK_FAILED, PickleRefused, data_only_client, no_unpickling
from grader.batch.cluster_local import STARTUP_TIMEOUT, local_cluster
from grader.batch.cluster_records import (
    UNVERIFIED,
    Fingerprint,
    Unverified,
    answer_mac,
    differences,
    fingerprint,
    task_mac,
    verify_answer,
)
from grader.batch.cluster_worker import (
    _current_key,
    _grade_here,
    _secret,
    _this_worker,
    _worker_setup,
    _worker_state,
    release_grader,
    worker_fingerprint,
)
from grader.batch.daskproc import DASK_SETTINGS, ENV_RUBRIC, ENV_SANDBOX, SATURATION, parse_address, require_dask
from grader.checks.manifest import project_version
from grader.errors import ClusterError
from grader.kernel.sandbox import choose_sandbox
from grader.result import SubmissionResult
from grader.rubric import Rubric

# What other modules, the tests and the benchmarks import from here (the front door of the
# cluster batch), though it lives in the sibling modules named above.
__all__ = ["CONNECT_TIMEOUT", "ENV_RUBRIC", "ENV_SANDBOX", "IN_FLIGHT_PER_WORKER", "STARTUP_TIMEOUT",
           "TASK_FAILED", "UNVERIFIED", "Fingerprint", "PickleRefused", "answer_mac", "check_scheduler",
           "check_workers", "connect", "data_only_client", "differences", "executor", "fingerprint",
           "grade_on_cluster", "grade_remote", "grade_task", "local_cluster", "no_unpickling",
           "project_version", "release_grader", "task_mac", "verify_answer", "worker_fingerprint",
           "_collect", "_worker_setup", "_worker_state"]

CONNECT_TIMEOUT = 10.0  # s to reach a scheduler before giving up (exit 2); --connect-timeout
# Submissions in flight at once per worker thread: enough to keep every worker busy while the
# next result is written (the second waits on the scheduler, which hands it to the first worker
# that is free, with no round trip to the coordinator), few enough that the coordinator never
# holds a whole course in memory.
IN_FLIGHT_PER_WORKER = 2

log = logging.getLogger("grader")


def grade_remote(key: str, name: str, data: bytes, sha256: str, job: dict[str, Any], expected: dict[str, Any],
                 mac: str) -> str:
    """The task a worker runs for one submission. It never raises (a raised exception would
    reach the coordinator as a pickle): it returns one JSON string, a signed ``result`` or
    ``error`` record, or a ``refused`` record where the worker's setup differs or the task's MAC
    does not check out."""
    secret = _secret()
    rubric_sha256 = str(expected.get("rubric_sha256", ""))

    def signed(kind: str, body: dict[str, Any]) -> str:
        text = json.dumps(body, ensure_ascii=False)
        assert secret is not None
        return json.dumps({"kind": kind, "key": key, "sha256": sha256, "rubric_sha256": rubric_sha256,
                           "body": text, "mac": answer_mac(secret, kind, key, sha256, rubric_sha256, text)})

    def refused(differences: list[str]) -> str:
        return json.dumps({"kind": "refused", "worker": _this_worker(), "differences": differences})

    try:
        if secret is None:
            return refused(["course secret: the worker has none (copy the coordinator's secret file there, see "
                            "grader/checks/secret.py)"])
        import hmac
        running = _current_key()
        if not hmac.compare_digest(task_mac(secret, key, name, sha256, job, expected), str(mac)) or \
                (running is not None and running != key):
            return refused(["the task does not carry the course's MAC (sent by a client without the course "
                            "secret, or for another task); nothing was graded"])
        _worker_setup()
        mine: Fingerprint = _worker_state["fingerprint"]
        differ = differences(Fingerprint.from_json(expected), mine)
        if differ:
            return refused(differ)
        return signed("result", grade_task(name, data, sha256, job).to_json())
    except Exception as exc:  # noqa: BLE001 - answered as data: the coordinator reads no exception
        if secret is None:
            return refused([f"the worker failed before it could sign its answer: {type(exc).__name__}"])
        return signed("error", {"message": "the grader could not grade this submission; a tutor will look at it",
                                "detail": f"{type(exc).__name__}: {exc}"[:4000]})


def grade_task(name: str, data: bytes, sha256: str, job: dict[str, Any]) -> SubmissionResult:
    """Grade one submission's bytes on this worker (checked: the bytes have the sha256 sent,
    the name is a plain file name, never a path into the worker's file system)."""
    from grader.batch.run import Job
    if hashlib.sha256(data).hexdigest() != sha256:
        raise ValueError(f"{name}: the bytes that arrived do not have the sha256 that was sent")
    if not name or name in (".", "..") or "/" in name or "\0" in name:
        raise ValueError(f"not a plain file name: {name!r}")
    rubric, mode, rubric_path = _worker_setup()
    folder = tempfile.mkdtemp(prefix="sheet11-task-")
    try:
        path = Path(folder) / name
        path.write_bytes(data)
        grading = Job(path, str(job["folder"]), sha256, job.get("deadline"), job.get("submitted"),
                      str(job.get("submitted_source", "")), job.get("manual") or {})
        return _grade_here(grading, rubric, rubric_path, mode, bool(job.get("more", True)))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# -- the coordinator side ---------------------------------------------------------------------
def executor(address: str, connect_timeout: float = CONNECT_TIMEOUT,
             credentials: str | Path | None = None) -> Callable[..., None]:
    """What ``run_batch(grade_all=...)`` grades with on the cluster at ``address``; a bad address
    is refused here, before anything is done. ``credentials``: the folder of the course's
    cluster credentials (default: beside the course secret, grader/batch/cluster_tls.py)."""
    parse_address(address)

    def grade_all(todo: list[Any], rubric: Rubric, rubric_path: str | None, sandbox_mode: str, jobs: int,
                  finished: Callable[[SubmissionResult, dict[str, str] | None], None]) -> None:
        from grader.batch.run import stopped_result
        grade_on_cluster(todo, rubric, rubric_path, sandbox_mode, address, finished,
                         lambda job, message, detail: stopped_result(rubric, job, message, detail),
                         connect_timeout, credentials)
    return grade_all


@contextmanager
def connect(address: str, rubric_path: str | None, sandbox_mode: str,
            connect_timeout: float = CONNECT_TIMEOUT, credentials: str | Path | None = None) -> Iterator[Any]:
    """A data-only, mutually authenticated Dask client for ``address``; ``local:N`` starts (and
    afterwards stops) :func:`local_cluster` with N workers grading with this rubric and sandbox."""
    kind, n = parse_address(address)
    require_dask()
    from contextlib import ExitStack

    from grader.batch.cluster_tls import course_security
    with ExitStack() as stack:
        if kind == "local":
            address, credentials = stack.enter_context(local_cluster(n, rubric_path, sandbox_mode))
        security = course_security("client", credentials)
        stack.enter_context(no_unpickling())
        try:
            client = data_only_client(address, security, connect_timeout)
        except (OSError, TimeoutError) as exc:
            raise ClusterError(f"the Dask scheduler at {address} could not be reached within "
                               f"{connect_timeout:g} s ({type(exc).__name__}: {exc}). Check the address, that "
                               "`grade scheduler` runs there, its port is open, and that this machine has the "
                               "course's client certificate (grade cluster-credentials)") from None
        stack.callback(client.close)
        yield client


def check_workers(client: Any, mine: Fingerprint) -> int:
    """Every connected worker's fingerprint against the coordinator's; returns how many workers.

    Raises :class:`ClusterError` naming each worker that differs and what differs."""
    prints = client.run(worker_fingerprint)
    if not prints:
        raise ClusterError("the Dask cluster has no workers; start some with `grade worker tls://HOST:8786`")
    bad = []
    for worker, data in sorted(prints.items()):
        differ = differences(mine, Fingerprint.from_json(data))
        if differ:
            bad.append(f"{worker}: " + "; ".join(differ))
    if bad:
        raise ClusterError("worker(s) refused: their grading setup differs from this coordinator's, so "
                           "their results would not be comparable:\n  " + "\n  ".join(bad)
                           + "\nInstall the same project version, rubric and torch on every worker.")
    return len(prints)


def _saturation(dask_scheduler: Any) -> float:
    # What the running scheduler uses (read from its settings when it started).
    return float(dask_scheduler.WORKER_SATURATION)


def check_scheduler(client: Any) -> bool:
    """Whether the scheduler holds a submission back until a worker is free (``grade
    scheduler`` and ``--cluster local:N`` start it so); logs a warning with what to do if not."""
    try:
        saturation = float(client.run_on_scheduler(_saturation))
    except Exception:  # noqa: BLE001 - a scheduler we may not ask still grades correctly
        return False
    if saturation != DASK_SETTINGS[SATURATION]:
        log.warning("the Dask scheduler binds submissions to busy workers (worker-saturation %g), so "
                    "the batch may take longer than it needs; start it with `grade scheduler`", saturation)
        return False
    return True


def grade_on_cluster(todo: list[Any], rubric: Rubric, rubric_path: str | None, sandbox_mode: str,
                     address: str, finished: Callable[[SubmissionResult, dict[str, str] | None], None],
                     failed: Callable[[Any, str, str], SubmissionResult],
                     connect_timeout: float = CONNECT_TIMEOUT, credentials: str | Path | None = None) -> None:
    """Grade ``todo`` (batch Jobs, in order) on the cluster; ``finished`` gets each result as it
    arrives (in this process); ``failed(job, message, detail)`` makes the result of a submission
    the cluster could not grade, or whose answer could not be verified."""
    from grader.checks.secret import load_secret
    require_dask()
    mine = fingerprint(rubric, choose_sandbox(sandbox_mode).confined)
    secret = load_secret()
    expected = mine.to_json()
    with connect(address, rubric_path, sandbox_mode, connect_timeout, credentials) as client:
        workers = check_workers(client, mine)
        check_scheduler(client)
        window = max(2, IN_FLIGHT_PER_WORKER * workers)
        queue = list(reversed(todo))  # pop() takes the next in order
        jobs_of: dict[str, Any] = {}
        futures: dict[str, Any] = {}
        arrived: SimpleQueue[_Fetched] = SimpleQueue()
        sent = 0

        def fetch(future: Any) -> None:
            # On Dask's callback thread, the moment a task is done: its answer is brought here and
            # the task released on the cluster at once, so that a worker lost after it (or while
            # this process writes other results) loses nothing finished, and Dask does not run
            # a finished submission again (benchmarks/scale.py: with a tenth of the workers
            # killed, answers waiting on them were graded twice).
            if future.cancelled():
                return
            try:
                fetched = _Fetched(str(future.key), future.result(), None)
            except BaseException as exc:  # noqa: BLE001 - handed to _collect, which reads no exception
                fetched = _Fetched(str(future.key), None, exc)
            future.release()
            arrived.put(fetched)

        def submit() -> None:
            nonlocal sent
            job = queue.pop()
            data = job.path.read_bytes()
            # more: as -j N, a kernel is started ahead only while every worker has another task
            # to come; a kernel started during the last tasks would take CPU from them for nothing.
            meta = {"folder": job.folder, "deadline": job.deadline, "submitted": job.submitted,
                    "submitted_source": job.submitted_source, "manual": dict(job.manual),
                    "more": len(queue) >= workers}
            key = f"grade-{job.sha256[:16]}-{sent}-{os.urandom(4).hex()}"
            sent += 1
            mac = task_mac(secret, key, job.path.name, job.sha256, meta, expected)
            future = client.submit(grade_remote, key, job.path.name, data, job.sha256, meta, expected, mac,
                                   key=key, pure=False)
            jobs_of[key], futures[key] = job, future
            future.add_done_callback(fetch)

        try:
            while queue and len(jobs_of) < window:
                submit()
            while jobs_of:
                try:
                    fetched = arrived.get(timeout=1.0)
                except Empty:
                    continue
                job = jobs_of.pop(fetched.key)
                futures.pop(fetched.key, None)
                if queue:
                    submit()
                finished(replace(_collect(fetched, job, failed, secret, rubric.sha256), folder=job.folder), None)
        except BaseException:
            for future in list(futures.values()):
                future.cancel()
            raise
        finally:
            # The kernels the workers started ahead for a next task that will not come.
            try:
                client.run(release_grader, wait=True)
            except Exception:  # noqa: BLE001 - a worker that is gone has nothing left to release
                pass


@dataclass(frozen=True)
class _Fetched:
    """A finished task's answer as fetched on Dask's callback thread: ``result()`` gives the
    answer or raises what fetching it raised (read by :func:`_collect` as a future is)."""

    key: str
    value: Any
    error: BaseException | None

    def result(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.value


def _collect(future: Any, job: Any, failed: Callable[[Any, str, str], SubmissionResult],
             secret: bytes, rubric_sha256: str) -> SubmissionResult:
    """The result of one finished task (an ``error`` result where the cluster failed it or its
    answer could not be verified)."""
    try:
        text = future.result()
    except Exception as exc:  # noqa: BLE001 - one submission's failure never stops the batch
        # A task of ours never raises, so this is Dask's failure (a worker lost repeatedly:
        # KilledWorker) or an answer that was no data; its exception is never unpickled here.
        what = str(exc) if str(exc) == TASK_FAILED else f"its answer could not be read as data ({type(exc).__name__})"
        return failed(job, "the grading machines failed on this submission (or sent an answer that was not data); "
                      "a tutor will look at it", f"Dask task {future.key}: {what}"[:1000])
    try:
        kind, data = verify_answer(text, str(future.key), job, secret, rubric_sha256)
    except Unverified as exc:
        log.warning("%s: the answer of task %s was refused: %s", job.path.name, future.key, exc)
        return failed(job, UNVERIFIED, f"refused the answer of task {future.key}: {exc}")
    if kind == "error":
        return failed(job, str(data.get("message", ""))[:2000] or UNVERIFIED, str(data.get("detail", ""))[:4000])
    try:
        result = SubmissionResult.from_json(data)
    except (ValueError, TypeError, KeyError, RecursionError) as exc:
        return failed(job, "the grader could not read its own result for this submission; a tutor will look at it",
                      f"{type(exc).__name__}: {exc}")
    if result.sha256 != job.sha256:
        return failed(job, UNVERIFIED, "the result names another submission's sha256")
    return result
