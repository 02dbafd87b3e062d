"""Grade a batch on a Dask distributed cluster: ``grade PATH... --cluster tcp://HOST:8786`` or
``--cluster local:N``.

The coordinator (the ``grade`` command) keeps everything that touches the output folder: it
skips what is finished, orders the rest longest first, and writes each result, report, the
gradebook rows, ``grades.csv``, ``summary.html`` and the similarity as results arrive, exactly
as ``-j N`` does (grader/batch/run.py). A worker only grades:

- a task carries the submission as bytes with its file name and sha256 (workers need no shared
  file system), the job's plain data (deadline, tutors' scores) and the coordinator's
  *fingerprint*: project version, rubric sha256, torch version and whether kernels are sandboxed;
- the worker compares that with its own and refuses the task (:class:`WorkerMismatch`) when
  any differs; the coordinator stops and names the worker and what differs;
- otherwise it writes the bytes into a private temporary folder and grades them with the
  batch's own machinery: a grading process as ``-j N`` uses (``batch.Worker``: the same sandbox,
  limits, rubric, grader budget, one fresh kernel per task), kept by the Dask worker across tasks
  so that the next task's kernel is started ahead (grader/kernel/kernelpool.py); it returns the
  ``result.json`` data as a JSON string. Nothing of the grader's is unpickled on the
  coordinator beyond Dask's own call.

Faults: a worker that dies mid-task (SIGKILL, a lost machine) makes the scheduler run the task
on another worker (Dask reschedules tasks of lost workers, up to
``distributed.scheduler.allowed-failures`` times, then the submission gets an ``error`` result);
the submission is recorded once, when its result arrives; the task's grading process (and its
kernel) dies with the worker (batch.py's PR_SET_PDEATHSIG). A coordinator that is killed loses
nothing that was written: the same command resumes. A scheduler that cannot be reached within
the connect timeout is a :class:`~grader.errors.ClusterError` (exit 2).

Dask is an optional extra (``pip install "sheet11-grader[cluster]"``); without it ``--cluster``
says how to install it and ``-j N`` works as always.
"""
from __future__ import annotations

import atexit
import hashlib
import json
import logging
import os
import re
import select
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from grader.errors import ClusterError, UsageError
from grader.kernel.sandbox import choose_sandbox
from grader.result import SubmissionResult
from grader.rubric import Rubric, load_rubric

# The environment a worker grades with: set by `grade worker` and by `--cluster local:N` for the
# worker processes it starts, read by the task on the worker.
ENV_RUBRIC = "SHEET11_RUBRIC"
ENV_SANDBOX = "SHEET11_SANDBOX"

CONNECT_TIMEOUT = 10.0  # s to reach a scheduler before giving up (exit 2); --connect-timeout
# Submissions in flight at once per worker thread: enough to keep every worker busy while the
# next result is written (the second waits on the scheduler, which hands it to the first worker
# that is free, with no round trip to the coordinator), few enough that the coordinator never
# holds a whole course in memory.
IN_FLIGHT_PER_WORKER = 2
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

log = logging.getLogger("grader")

INSTALL_HINT = ('the cluster mode needs Dask distributed, an optional extra: '
                'pip install "sheet11-grader[cluster]" (or pip install "dask[distributed]")')


class WorkerMismatch(Exception):
    """Raised on a worker that refuses a task; the message is JSON (worker, differences)."""


@dataclass(frozen=True)
class Fingerprint:
    """What must be the same on the coordinator and every worker for results to be the same."""

    version: str
    rubric_sha256: str
    torch: str
    sandboxed: bool
    # A keyed digest of the course secret the hidden inputs are drawn under (grader/checks/secret.py),
    # never the secret itself; "" where the worker has none.
    secret_id: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"version": self.version, "rubric_sha256": self.rubric_sha256, "torch": self.torch,
                "sandboxed": self.sandboxed, "secret_id": self.secret_id}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Fingerprint:
        return cls(str(data["version"]), str(data["rubric_sha256"]), str(data["torch"]), bool(data["sandboxed"]),
                   str(data.get("secret_id", "")))


def project_version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("sheet11-grader")
    except PackageNotFoundError:
        return "unknown"


def fingerprint(rubric: Rubric, sandboxed: bool, create_secret: bool = True) -> Fingerprint:
    import hmac

    import torch

    from grader.checks.secret import load_secret
    from grader.errors import SecretError
    try:
        secret = load_secret(create=create_secret)
        secret_id = hmac.new(secret, b"sheet11 cluster fingerprint", "sha256").hexdigest()[:16]
    except SecretError:
        secret_id = ""
    return Fingerprint(project_version(), rubric.sha256, str(torch.__version__), sandboxed, secret_id)


def differences(coordinator: Fingerprint, worker: Fingerprint) -> list[str]:
    """What differs, in words: ``project version 0.1.0 here, 0.2.0 on the worker``."""
    out = []
    if worker.version != coordinator.version:
        out.append(f"project version: coordinator {coordinator.version}, worker {worker.version}")
    if worker.rubric_sha256 != coordinator.rubric_sha256:
        out.append(f"rubric sha256: coordinator {coordinator.rubric_sha256[:12]}, worker {worker.rubric_sha256[:12]}")
    if worker.torch != coordinator.torch:
        out.append(f"torch version: coordinator {coordinator.torch}, worker {worker.torch}")
    if worker.secret_id != coordinator.secret_id:
        out.append("course secret: the worker has none (copy the coordinator's secret file there, see "
                   "grader/checks/secret.py)" if not worker.secret_id else
                   f"course secret: coordinator {coordinator.secret_id[:8]}, worker {worker.secret_id[:8]} "
                   "(a keyed digest; the hidden inputs would differ)")
    if coordinator.sandboxed and not worker.sandboxed:
        out.append("sandbox: the coordinator's kernels are sandboxed, the worker's are not")
    return out


def parse_address(address: str) -> tuple[str, int]:
    """``("local", N)`` for ``local:N``, ``("remote", 0)`` for ``tcp://HOST:PORT``; else a UsageError."""
    local = _LOCAL.fullmatch(address)
    if local:
        n = int(local.group(1))
        if not 1 <= n <= 64:
            raise UsageError(f"--cluster {address}: local:N needs 1 <= N <= 64 worker processes")
        return "local", n
    if _TCP.fullmatch(address):
        return "remote", 0
    raise UsageError(f"--cluster {address!r} is not understood; give local:N (N worker processes on this "
                     "machine) or the scheduler's address, e.g. tcp://scheduler.example:8786")


def local_env(rubric_path: str | None, sandbox_mode: str) -> dict[str, str]:
    """The environment of a grading worker process: the rubric and sandbox mode its tasks use,
    one torch/OpenMP thread, and Dask's settings for grading (:data:`DASK_SETTINGS`)."""
    return {ENV_RUBRIC: str(Path(rubric_path).resolve()) if rubric_path else "", ENV_SANDBOX: sandbox_mode,
            "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", **dask_env()}


def dask_env(settings: dict[str, object] | None = None) -> dict[str, str]:
    """Dask settings as the environment variables Dask reads when it starts
    (``distributed.admin.tick.interval`` -> ``DASK_DISTRIBUTED__ADMIN__TICK__INTERVAL``)."""
    return {"DASK_" + "__".join(part.upper().replace("-", "_") for part in key.split(".")): str(value)
            for key, value in (DASK_SETTINGS if settings is None else settings).items()}


# -- the worker side --------------------------------------------------------------------------
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


def grade_remote(name: str, data: bytes, sha256: str, job: dict[str, Any], expected: dict[str, Any]) -> str:
    """The task a worker runs for one submission; returns the result's JSON as a string."""
    from grader.batch.run import Job
    # What arrived is what the coordinator hashed, and the name is a plain file name (the
    # coordinator sends Path.name), never a path into the worker's file system.
    if hashlib.sha256(data).hexdigest() != sha256:
        raise ValueError(f"{name}: the bytes that arrived do not have the sha256 that was sent")
    if not name or name in (".", "..") or "/" in name or "\0" in name:
        raise ValueError(f"not a plain file name: {name!r}")
    rubric, mode, rubric_path = _worker_setup()
    mine: Fingerprint = _worker_state["fingerprint"]
    differ = differences(Fingerprint.from_json(expected), mine)
    if differ:
        raise WorkerMismatch(json.dumps({"worker": _this_worker(), "differences": differ}))
    folder = tempfile.mkdtemp(prefix="sheet11-task-")
    try:
        path = Path(folder) / name
        path.write_bytes(data)
        grading = Job(path, str(job["folder"]), sha256, job.get("deadline"), job.get("submitted"),
                      str(job.get("submitted_source", "")), job.get("manual") or {})
        result = _grade_here(grading, rubric, rubric_path, mode, bool(job.get("more", True)))
        return json.dumps(result.to_json(), ensure_ascii=False)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


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


# -- the coordinator side ---------------------------------------------------------------------
def executor(address: str, connect_timeout: float = CONNECT_TIMEOUT) -> Callable[..., None]:
    """What ``run_batch(grade_all=...)`` grades with on the cluster at ``address``; a bad address
    is refused here, before anything is done."""
    parse_address(address)

    def grade_all(todo: list[Any], rubric: Rubric, rubric_path: str | None, sandbox_mode: str, jobs: int,
                  finished: Callable[[SubmissionResult, dict[str, str] | None], None]) -> None:
        from grader.batch.run import stopped_result
        grade_on_cluster(todo, rubric, rubric_path, sandbox_mode, address, finished,
                         lambda job, message, detail: stopped_result(rubric, job, message, detail),
                         connect_timeout)
    return grade_all

def require_dask() -> Any:
    """The ``distributed`` package, or a UsageError that says how to install it."""
    try:
        import distributed
    except ImportError:
        raise UsageError(INSTALL_HINT) from None
    return distributed


@contextmanager
def connect(address: str, rubric_path: str | None, sandbox_mode: str,
            connect_timeout: float = CONNECT_TIMEOUT) -> Iterator[Any]:
    """A Dask client for ``address``; ``local:N`` starts (and afterwards stops) a LocalCluster of
    N single-threaded worker processes grading with this rubric and sandbox mode."""
    kind, n = parse_address(address)
    distributed = require_dask()
    cluster = None
    try:
        if kind == "local":
            # dashboard_address ":0": the scheduler's HTTP server always listens; on a port of
            # its own, so a second local cluster (or Jupyter's on 8787) does not collide.
            import dask
            with dask.config.set(DASK_SETTINGS):  # the scheduler's, in this process
                cluster = distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                                   dashboard_address=":0",
                                                   env=local_env(rubric_path, sandbox_mode), silence_logs=50)
            client = distributed.Client(cluster, timeout=connect_timeout)
        else:
            client = distributed.Client(address, timeout=connect_timeout)
    except (OSError, TimeoutError) as exc:
        if cluster is not None:
            cluster.close()
        raise ClusterError(f"the Dask scheduler at {address} could not be reached within "
                           f"{connect_timeout:g} s ({type(exc).__name__}: {exc}). Check the address and "
                           "that `dask scheduler` runs there and its port is open") from None
    try:
        yield client
    finally:
        try:
            client.close()
        finally:
            if cluster is not None:
                cluster.close()


def check_workers(client: Any, mine: Fingerprint) -> int:
    """Every connected worker's fingerprint against the coordinator's; returns how many workers.

    Raises :class:`ClusterError` naming each worker that differs and what differs."""
    prints = client.run(worker_fingerprint)
    if not prints:
        raise ClusterError("the Dask cluster has no workers; start some with `grade worker tcp://HOST:8786`")
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
                     connect_timeout: float = CONNECT_TIMEOUT) -> None:
    """Grade ``todo`` (batch Jobs, in order) on the cluster; ``finished`` gets each result as it
    arrives (in this process); ``failed(job, message, detail)`` makes the result of a submission
    the cluster could not grade."""
    distributed = require_dask()
    mine = fingerprint(rubric, choose_sandbox(sandbox_mode).confined)
    expected = mine.to_json()
    with connect(address, rubric_path, sandbox_mode, connect_timeout) as client:
        workers = check_workers(client, mine)
        check_scheduler(client)
        window = max(2, IN_FLIGHT_PER_WORKER * workers)
        queue = list(reversed(todo))  # pop() takes the next in order
        jobs_of: dict[Any, Any] = {}
        arriving = distributed.as_completed()

        def submit() -> None:
            job = queue.pop()
            data = job.path.read_bytes()
            # more: as -j N, a kernel is started ahead only while every worker has another task
            # to come; a kernel started during the last tasks would take CPU from them for nothing.
            meta = {"folder": job.folder, "deadline": job.deadline, "submitted": job.submitted,
                    "submitted_source": job.submitted_source, "manual": dict(job.manual),
                    "more": len(queue) >= workers}
            future = client.submit(grade_remote, job.path.name, data, job.sha256, meta, expected,
                                   key=f"grade-{job.sha256[:16]}-{len(jobs_of)}", pure=False)
            jobs_of[future] = job
            arriving.add(future)

        try:
            while queue and len(jobs_of) < window:
                submit()
            for future in arriving:
                job = jobs_of.pop(future)
                result = _collect(future, job, failed, distributed)
                if queue:
                    submit()
                finished(replace(result, folder=job.folder), None)
        except BaseException:
            for future in list(jobs_of):
                future.cancel()
            raise
        finally:
            # The kernels the workers started ahead for a next task that will not come.
            try:
                client.run(release_grader, wait=True)
            except Exception:  # noqa: BLE001 - a worker that is gone has nothing left to release
                pass


def _collect(future: Any, job: Any, failed: Callable[[Any, str, str], SubmissionResult],
             distributed: Any) -> SubmissionResult:
    """The result of one finished task (an ``error`` result where the cluster failed it)."""
    try:
        text = future.result()
    except WorkerMismatch as exc:
        try:
            info = json.loads(str(exc.args[0]))
            who, what = info["worker"], "; ".join(info["differences"])
        except (ValueError, KeyError, TypeError, IndexError):
            who, what = "a worker", str(exc)
        raise ClusterError(f"worker {who} refused {job.path.name}: {what}. Install the same project "
                           "version, rubric and torch on every worker; finished results are kept.") from None
    except distributed.KilledWorker as exc:
        return failed(job, "the grading machines failed on this submission repeatedly; a tutor will look at it",
                      f"Dask KilledWorker: {exc}")
    except Exception as exc:  # noqa: BLE001 - one submission's failure never stops the batch
        return failed(job, "the grader could not grade this submission; a tutor will look at it",
                      f"{type(exc).__name__}: {exc}"[:4000])
    try:
        data = json.loads(text)
        result = SubmissionResult.from_json(data)
    except (ValueError, TypeError, KeyError, RecursionError) as exc:
        return failed(job, "the grader could not read its own result for this submission; a tutor will look at it",
                      f"{type(exc).__name__}: {exc}")
    return result
