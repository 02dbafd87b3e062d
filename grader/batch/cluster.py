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

import atexit
import hashlib
import json
import logging
import os
import select
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from queue import Empty, SimpleQueue
from typing import Any

from grader.batch.daskproc import (
    DASK_SETTINGS,
    ENV_RUBRIC,
    ENV_SANDBOX,
    SATURATION,
    parse_address,
    require_dask,
)
from grader.checks.manifest import project_version
from grader.errors import ClusterError
from grader.kernel.sandbox import choose_sandbox
from grader.result import SubmissionResult
from grader.rubric import Rubric, load_rubric

CONNECT_TIMEOUT = 10.0  # s to reach a scheduler before giving up (exit 2); --connect-timeout
# Submissions in flight at once per worker thread: enough to keep every worker busy while the
# next result is written (the second waits on the scheduler, which hands it to the first worker
# that is free, with no round trip to the coordinator), few enough that the coordinator never
# holds a whole course in memory.
IN_FLIGHT_PER_WORKER = 2

log = logging.getLogger("grader")


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


def _secret() -> bytes | None:
    """This process's course secret (None where it has none), read once."""
    if "secret" not in _worker_state:
        from grader.checks.secret import load_secret
        from grader.errors import SecretError
        try:
            _worker_state["secret"] = load_secret(create=False)
        except SecretError:
            _worker_state["secret"] = None
    return _worker_state["secret"]


def _canonical(data: Any) -> str:
    return json.dumps(data, sort_keys=True, ensure_ascii=True, separators=(",", ":"))


def task_mac(secret: bytes, key: str, name: str, sha256: str, job: dict[str, Any], expected: dict[str, Any]) -> str:
    """The coordinator's MAC over a task: a worker grades only what carries it."""
    from grader.checks.secret import derive
    return derive(secret, "sheet11 cluster task", key, name, sha256, _canonical(job), _canonical(expected)).hex()


def answer_mac(secret: bytes, kind: str, key: str, sha256: str, rubric_sha256: str, body: str) -> str:
    """The worker's MAC over its answer to the task ``key``."""
    from grader.checks.secret import derive
    return derive(secret, "sheet11 cluster answer", kind, key, sha256, rubric_sha256, body).hex()


def _current_key() -> str | None:
    try:
        from distributed import get_worker
        return str(get_worker().get_current_task())
    except (ImportError, ValueError):
        return None


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


class PickleRefused(TypeError):
    """What Dask gets in place of anything it would have unpickled in the coordinator's process
    under :func:`no_unpickling`: an inert exception (returned, not raised, so that a message
    holding a pickle does not break the client's connection; where Dask expects an exception,
    this is the exception)."""


def _refuse(*args: Any, **kwargs: Any) -> Any:
    return PickleRefused("not unpickled: the coordinator reads no pickle from the cluster (results are JSON data "
                         "only)")


class _PickleWithoutLoads:
    """The ``pickle`` module as Dask's client module sees it under :func:`no_unpickling`."""

    loads = staticmethod(_refuse)
    load = staticmethod(_refuse)

    def __getattr__(self, name: str) -> Any:
        import pickle
        return getattr(pickle, name)


@contextmanager
def no_unpickling() -> Iterator[None]:
    """While this holds, Dask unpickles nothing in this process.

    Read from distributed 2026.8's source, these are the ways bytes from the cluster are
    unpickled in a client's process, and each is closed here:

    - the ``loads`` of ``distributed.protocol.pickle``: the ``__Pickled__`` frames of every message (decoded
      whatever the client's ``deserializers`` say), the ``pickle`` and ``dask`` serializer families
      (``type-serialized``), numpy frames, and task exceptions and tracebacks
      (``core.clean_exception``, which a ``task-erred`` report and ``client.run`` errors go through);
    - ``distributed.client.loads`` (the same function bound at import): the result type of a
      ``key-in-memory`` report and the pickled RPC errors of ``client.run``;
    - the ``loads`` of ``distributed.client.pickle``: ``warn`` events a worker posts to the client.

    The coordinator has no scheduler in its process (``local:N`` starts it as a subprocess), so
    nothing in this process needs to unpickle while the client runs."""
    import distributed.client
    import distributed.protocol.pickle as dask_pickle
    saved = (dask_pickle.loads, distributed.client.loads, distributed.client.pickle)
    dask_pickle.loads = _refuse
    distributed.client.loads = _refuse
    distributed.client.pickle = _PickleWithoutLoads()  # type: ignore[assignment]
    try:
        yield
    finally:
        dask_pickle.loads, distributed.client.loads, distributed.client.pickle = saved


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
        log_file = open(folder / "cluster.log", "wb")  # noqa: SIM115 - closed below
        try:
            def start(argv: list[str], env: dict[str, str]) -> None:
                procs.append(subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=log_file,
                                              stderr=subprocess.STDOUT, start_new_session=True,
                                              preexec_fn=_die_with_parent))  # noqa: PLW1509
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
            _stop(proc)
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


def _stop(proc: Any) -> None:
    import signal
    import subprocess
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except OSError:
            pass
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        proc.wait()


TASK_FAILED = "the task failed on the cluster; its exception was not read (the coordinator reads no pickle)"


def data_only_client(address: str, security: Any, timeout: float) -> Any:
    """A Dask client that sends and accepts msgpack only (never a pickle from the cluster; the
    rest is closed by :func:`no_unpickling`), authenticated by ``security``.

    Its report stream from the scheduler is read without deserializing (nothing the client needs
    there is serialized; a task's exception is, and is not read: the failed future's exception
    says so), and it takes no ``print``/``warn`` events from workers."""
    distributed = require_dask()
    client = distributed.Client(address, security=security, timeout=timeout, set_as_default=False,
                                serializers=["msgpack"], deserializers=["msgpack"])
    for topic in ("print", "warn"):  # events a worker posts; nothing of theirs is shown here
        client.unsubscribe_topic(topic)
    client.scheduler_comm.comm.deserialize = False
    handle_erred = client._stream_handlers["task-erred"]

    def task_erred(key: Any = None, exception: Any = None, traceback: Any = None, **rest: Any) -> Any:
        return handle_erred(key=key, exception=TASK_FAILED, traceback=None)

    client._stream_handlers["task-erred"] = task_erred
    client._state_handlers["erred"] = task_erred
    return client


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


UNVERIFIED = ("the grading machine's answer for this submission could not be verified, so it was not used; "
              "a tutor will look at it")


class _Unverified(Exception):
    pass


def verify_answer(text: object, key: str, job: Any, secret: bytes, rubric_sha256: str) -> tuple[str, dict[str, Any]]:
    """``(kind, body)`` of a worker's answer to the task ``key`` for ``job``, after checking that
    it is a JSON record of this task (key, submission sha256, rubric sha256) with a valid MAC
    under the course secret. Raises ``_Unverified`` (the reason) otherwise; a ``refused``
    record is a :class:`ClusterError`."""
    import hmac
    if not isinstance(text, str) or len(text) > 64 * 1024 * 1024:
        raise _Unverified(f"the answer is not a JSON string but {type(text).__name__}")
    try:
        record = json.loads(text)
    except (ValueError, RecursionError):
        raise _Unverified("the answer is not JSON") from None
    if not isinstance(record, dict):
        raise _Unverified("the answer is not a JSON object")
    if record.get("kind") == "refused":
        who = str(record.get("worker", "a worker"))[:200]
        what = "; ".join(str(d)[:500] for d in record.get("differences", []) if isinstance(d, str))[:2000]
        raise ClusterError(f"worker {who} refused {job.path.name}: {what}. Install the same project "
                           "version, rubric, torch and course secret on every worker; finished results are kept.")
    fields = {name: record.get(name) for name in ("kind", "key", "sha256", "rubric_sha256", "body", "mac")}
    if not all(isinstance(v, str) for v in fields.values()) or fields["kind"] not in ("result", "error"):
        raise _Unverified("the answer does not have the fields of a signed record")
    kind, body = str(fields["kind"]), str(fields["body"])
    good = answer_mac(secret, kind, key, job.sha256, rubric_sha256, body)
    if not hmac.compare_digest(good, str(fields["mac"])):
        raise _Unverified("its MAC under the course secret is wrong")
    if fields["key"] != key or fields["sha256"] != job.sha256 or fields["rubric_sha256"] != rubric_sha256:
        raise _Unverified("it names another task, submission or rubric")  # the MAC was over the ones sent
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        raise _Unverified("its body is not JSON") from None
    if not isinstance(data, dict):
        raise _Unverified("its body is not a JSON object")
    return kind, data


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
    except _Unverified as exc:
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
