"""The grading processes of a batch on this machine: each grades one submission at a time under
the rubric's ``[budget]``, and the batch's process hands them the jobs and reads their replies.

- A :class:`Worker` is forked from the batch's process, in a session of its own (Ctrl-C reaches
  only the batch) and dies with it (``PR_SET_PDEATHSIG``; its kernels follow). It inherits what
  the batch grades with (a :class:`~grader.grade.Context` made once: the rubric and the sandbox
  already loaded and chosen, grader/batch/settings.py), sets its address-space limit
  (``grader_memory_mb`` above what it had), keeps a kernel started ahead for its next
  submission (grader/kernel/kernelpool.py), and reads one JSON line per job, writing one JSON
  line per reply. Nothing is unpickled.
- :func:`grade_locally` runs ``jobs`` workers over the queue: a submission that takes longer
  than ``grader_seconds`` has its worker and everything the worker started killed
  (:func:`kill_tree`) and gets an ``error`` result (over the grader's budget); a worker that
  dies, or sends what cannot be read, likewise; a fresh worker takes the next submission.
- With more than one worker, a worker left without work (the queue is empty) frees its CPU: the
  batch hands out a spare-slot token (grader/kernel/spare.py) for a submission still being graded,
  whose vanilla-RNN comparison may then run in a second kernel (grader/checks/recall_side.py).
  With one worker there is no token.

grader/batch/run.py is the front door: every name here that other modules use is importable from there.
"""
from __future__ import annotations

import ctypes
import json
import os
import resource
import select
import signal
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import psutil
import torch

from grader.batch import interrupt
from grader.batch.job import Job, grade_job, stopped_result
from grader.batch.settings import Finished
from grader.grade import Context
from grader.kernel.kernelpool import KernelPool
from grader.kernel.spare import TokenPipe
from grader.result import SubmissionResult
from grader.rubric import Rubric

__all__ = ["IDLE_EXIT_SECONDS", "OVER_BUDGET", "STARTUP_SECONDS", "Worker", "grade_locally", "kill_tree",
           "read_reply"]

STARTUP_SECONDS = 300.0  # for a worker to be ready (it only sets up; nothing of a submission)
OVER_BUDGET = "over the grader's budget"
# Seconds an idle worker has, at the end of a batch, to close its pool and exit by itself.
IDLE_EXIT_SECONDS = 20.0


# -- in the worker ------------------------------------------------------------------------------
def _own_context(rubric_path: str | None, sandbox_mode: str) -> Context:
    """A worker without an inherited context (a Dask worker's grading process) makes its own."""
    from grader.kernel.sandbox import choose_sandbox
    from grader.rubric import load_rubric
    return Context.create(load_rubric(rubric_path), choose_sandbox(sandbox_mode), 1)


def _worker_loop(jobs_fd: int, replies_fd: int, ctx: Context, memory_mb: int, spare: TokenPipe | None = None) -> None:
    """The body of a forked worker: read a job (one JSON line), write a reply (one JSON line).

    ``ctx``: what the batch grades with (inherited); ``spare``: the batch's spare slots
    (grader/kernel/spare.py), inherited; None with ``-j 1``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # Ctrl-C is the batch's to handle
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    # Only the soft limit: a kernel started from here sets its own (prlimit), above this one.
    have = psutil.Process().memory_info().vms
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    soft = have + memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (soft if hard == resource.RLIM_INFINITY else min(soft, hard), hard))
    torch.set_num_threads(1)
    # The next submission's kernel starts while this one is graded (grader/kernel/kernelpool.py).
    pool = KernelPool(ctx.sandbox, ctx.rubric.limits, 1)
    ctx = replace(ctx, kernels=pool, spare=spare)
    pool.prime()
    with pool:
        _serve(jobs_fd, replies_fd, ctx, pool, memory_mb)


def _serve(jobs_fd: int, replies_fd: int, ctx: Any, pool: Any, memory_mb: int) -> None:
    reader = os.fdopen(jobs_fd, "rb")
    writer = os.fdopen(replies_fd, "wb")
    writer.write(b'{"ready": true}\n')
    writer.flush()
    for line in reader:
        raw = json.loads(line)
        job = Job(Path(raw["path"]), raw["folder"], raw["sha256"], raw["deadline"], raw["submitted"],
                  raw["submitted_source"], raw["manual"])
        pool.more = bool(raw.get("more", True))
        reply: dict[str, Any]
        try:
            result, pages = grade_job(job, ctx)
            reply = {"result": result.to_json(), "pages": pages}
        except MemoryError:
            reply = {"over_budget": f"it needed more than the grader's {memory_mb} MB of memory"}
        writer.write(json.dumps(reply, ensure_ascii=True).encode("ascii") + b"\n")
        writer.flush()
        if "over_budget" in reply:
            return  # the heap may be left fragmented; a fresh worker takes the next one


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Linux: SIGKILL this process when the process that forked it ends."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")


class Worker:
    """A forked grading process with a job pipe and a reply pipe."""

    def __init__(self, rubric_path: str | None, sandbox_mode: str, memory_mb: int, close: list[int],
                 spare: TokenPipe | None = None, *, ctx: Context | None = None) -> None:
        """``ctx``: what the batch grades with, made once in this process and inherited by the fork
        (the local batch); without it the worker reads ``rubric_path`` and chooses ``sandbox_mode``
        itself (a Dask worker's grading process: grader/batch/cluster.py)."""
        job_r, job_w = os.pipe()
        rep_r, rep_w = os.pipe()
        parent = os.getpid()
        pid = interrupt.fork()
        if pid == 0:  # the worker; it never returns into the caller's code
            code = 0
            try:
                os.setsid()  # its own session: Ctrl-C at the terminal reaches only the batch
                # ... and it dies with the batch, even one killed with SIGKILL; its kernels follow
                # (each dies with this process from its launch on: grader/kernel/sandbox.py's launch
                # guard, then bwrap's --die-with-parent and its PID namespace). Set in this
                # process, after the fork (a death signal is not inherited), and then checked:
                # a batch that died before the prctl would never send it.
                _die_with_parent()
                if os.getppid() != parent:
                    return
                for fd in (job_w, rep_r, *close):
                    try:
                        os.close(fd)
                    except OSError:
                        pass
                _worker_loop(job_r, rep_w, ctx or _own_context(rubric_path, sandbox_mode), memory_mb, spare)
            except BaseException:  # noqa: BLE001 - report to the batch by exiting, never raise
                traceback.print_exc()
                code = 1
            finally:
                os._exit(code)
        os.close(job_r)
        os.close(rep_w)
        self.pid, self.jobs, self.replies = pid, job_w, rep_r
        self.buffer = b""
        self.reaped = False  # waited for: its pid may belong to another process now
        self.job: Job | None = None
        self.ready = False
        self.deadline = time.monotonic() + STARTUP_SECONDS
        self.started = time.monotonic()

    def fds(self) -> list[int]:
        return [self.jobs, self.replies]

    def send(self, job: Job, seconds: float, more: bool = True) -> None:
        """``more``: another job will likely follow, so the worker starts its kernel ahead."""
        line = json.dumps({"path": str(job.path), "folder": job.folder, "sha256": job.sha256,
                           "deadline": job.deadline, "submitted": job.submitted,
                           "submitted_source": job.submitted_source, "manual": job.manual,
                           "more": more}).encode() + b"\n"
        self.job = job
        self.started = time.monotonic()
        self.deadline = self.started + seconds
        os.write(self.jobs, line)  # a few hundred bytes: the pipe takes it at once

    def read(self) -> dict[str, Any] | None:
        """What arrived; a complete reply, or ``None`` while it is incomplete. ``EOFError`` when
        the worker is gone."""
        chunk = os.read(self.replies, 1 << 20)
        if not chunk:
            raise EOFError
        self.buffer += chunk
        if b"\n" not in self.buffer:
            return None
        line, self.buffer = self.buffer.split(b"\n", 1)
        reply = json.loads(line)
        if not isinstance(reply, dict):
            raise ValueError("a worker's reply is not a JSON object")
        return reply

    def close_jobs(self) -> None:
        """No job will follow: the worker's job loop ends, and it closes what it started ahead
        (its pool's kernel, that kernel's folder and cgroup) and exits on its own."""
        try:
            os.close(self.jobs)
        except OSError:
            pass

    def exited(self) -> bool:
        """Whether the worker has ended (then it is reaped)."""
        if not self.reaped:
            try:
                self.reaped = os.waitpid(self.pid, os.WNOHANG)[0] != 0
            except ChildProcessError:
                self.reaped = True
        return self.reaped

    def kill(self) -> None:
        """Stop the worker and everything it started (kernels, their children), then reap it."""
        if self.reaped:  # never signal a pid that may have been given to another process
            self.close_jobs()
            try:
                os.close(self.replies)
            except OSError:
                pass
            return
        kill_tree(self.pid)
        for fd in self.fds():
            try:
                os.close(fd)
            except OSError:
                pass
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass
        self.reaped = True

    def exit_note(self) -> str:
        if self.reaped:
            return ""
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            return ""
        self.reaped = pid != 0
        if pid and os.WIFSIGNALED(status):
            return f" (signal {os.WTERMSIG(status)})"
        return ""


def kill_tree(pid: int) -> None:
    """SIGKILL ``pid`` and all its descendants. Each is stopped first, so none can start another
    while the tree is listed; kernels run in sessions of their own, so a process group is not
    enough."""
    try:
        root = psutil.Process(pid)
        root.send_signal(signal.SIGSTOP)
    except psutil.Error:
        return
    seen: dict[int, psutil.Process] = {pid: root}
    for _ in range(5):  # until no new descendant appears
        try:
            found = [p for p in root.children(recursive=True) if p.pid not in seen]
        except psutil.Error:
            break
        if not found:
            break
        for p in found:
            seen[p.pid] = p
            try:
                p.send_signal(signal.SIGSTOP)
            except psutil.Error:
                pass
    for p in seen.values():
        try:
            p.send_signal(signal.SIGKILL)
        except psutil.Error:
            pass


# -- in the batch's process ---------------------------------------------------------------------
class _Local:
    """``jobs`` workers over a queue of jobs; ``finished`` is called in this process for each."""

    def __init__(self, todo: list[Job], ctx: Context, jobs: int, finished: Finished) -> None:
        self.queue = deque(todo)
        self.ctx, self.rubric, self.jobs, self.finished = ctx, ctx.rubric, jobs, finished
        self.budget = ctx.rubric.budget
        self.workers: list[Worker] = []
        self.idle: list[Worker] = []  # told that no job follows; they end on their own
        # A worker left without work frees its CPU for another's second kernel; with one worker
        # there is never a spare slot.
        self.spare = TokenPipe.create() if jobs > 1 else None

    def run(self) -> None:
        try:
            for _ in range(min(self.jobs, len(self.queue))):
                self.spawn()
            while self.workers:
                self.assign()
                if not self.workers:
                    break
                self.collect()
                self.expire()
        finally:
            with interrupt.shielded():
                self.stop()

    def spawn(self) -> None:
        with interrupt.shielded():  # a worker forked is a worker listed, so it is always stopped
            self.workers.append(Worker(None, "", self.budget.memory_mb, [fd for w in self.workers for fd in w.fds()],
                                       self.spare, ctx=self.ctx))

    def fail(self, worker: Worker, message: str, detail: str) -> None:
        self.workers.remove(worker)
        job = worker.job
        worker.kill()
        if job is not None:
            self.finished(stopped_result(self.rubric, job, message, detail), None)
        elif not self.queue:
            return
        else:  # a worker that cannot even start: the next submission gets the error, not a hang
            bad = self.queue.popleft()
            self.finished(stopped_result(self.rubric, bad, "the grader could not start a worker for this submission; "
                                         "a tutor will look at it", detail), None)
        if self.queue and len(self.workers) < self.jobs:
            self.spawn()

    def assign(self) -> None:
        for w in list(self.workers):
            if not w.ready or w.job is not None:
                continue
            if self.queue:
                # More to come for this worker when every worker can still get one.
                w.send(self.queue.popleft(), self.budget.seconds, more=len(self.queue) >= self.jobs)
                continue
            self.workers.remove(w)
            w.close_jobs()
            self.idle.append(w)
            if self.spare is not None and any(other.job is not None for other in self.workers):
                self.spare.hand_out()  # its CPU is free for a submission still being graded

    def collect(self) -> None:
        wait = max(0.0, min(w.deadline for w in self.workers) - time.monotonic())
        readable, _, _ = select.select([w.replies for w in self.workers], [], [], min(wait, 5.0))
        for w in [w for w in self.workers if w.replies in readable]:
            ok, reply = read_reply(w, self.fail)
            if ok and reply is not None:
                _handle(w, reply, self.rubric, self.finished, self.fail)

    def expire(self) -> None:
        now = time.monotonic()
        for w in [w for w in self.workers if w.deadline < now]:
            if w.job is None:
                self.fail(w, "", f"a worker did not start within {STARTUP_SECONDS:g} s")
            else:
                self.fail(w, f"{OVER_BUDGET}: grading took longer than {self.budget.seconds:g} s and was stopped; "
                          "a tutor will look at it", f"stopped after {now - w.started:.0f} s")

    def stop(self) -> None:
        for w in self.workers:
            w.kill()
        # Idle workers get a moment to close their kernel started ahead themselves (a kill
        # would leave its folder for the next run's sweep); then they are stopped anyway.
        end = time.monotonic() + IDLE_EXIT_SECONDS
        while any(not w.exited() for w in self.idle) and time.monotonic() < end:
            time.sleep(0.05)
        for w in self.idle:
            w.kill()
        if self.spare is not None:
            self.spare.close()


def grade_locally(todo: list[Job], ctx: Context, jobs: int, finished: Finished) -> None:
    """Grade ``todo`` with ``jobs`` forked workers that inherit ``ctx``; calls ``finished`` in
    this process for each (see the module docstring)."""
    _Local(todo, ctx, jobs, finished).run()


def read_reply(w: Worker, fail: Callable[[Worker, str, str], None]) -> tuple[bool, dict[str, Any] | None]:
    """One reply of a grading worker: (True, reply or None while it is still working), or
    (False, None) after ``fail`` was told that the worker stopped or sent what cannot be read."""
    try:
        return True, w.read()
    except (EOFError, OSError):
        fail(w, "the grader's worker stopped while grading this submission; a tutor will look at it",
             f"worker {w.pid} ended{w.exit_note()}")
    except (ValueError, RecursionError) as exc:
        fail(w, "the grader could not read its own result for this submission; a tutor will look at it",
             f"{type(exc).__name__}: {exc}")
    return False, None


def _handle(w: Worker, reply: dict[str, Any], rubric: Rubric,
            finished: Callable[[SubmissionResult, dict[str, str] | None], None],
            fail: Callable[[Worker, str, str], None]) -> None:
    if reply.get("ready"):
        w.ready = True
        w.deadline = float("inf")
        return
    job = w.job
    if job is None:
        fail(w, "", "a worker sent a result it was not asked for")
        return
    if "over_budget" in reply:
        fail(w, f"{OVER_BUDGET}: {reply['over_budget']}; a tutor will look at it", str(reply["over_budget"]))
        return
    try:
        result = SubmissionResult.from_json(reply["result"])
        pages = {str(k): str(v) for k, v in reply["pages"].items()}
    except (KeyError, ValueError, TypeError) as exc:
        w.job = None
        finished(stopped_result(rubric, job, "the grader could not read its own result for this submission; "
                                "a tutor will look at it", f"{type(exc).__name__}: {exc}"), None)
    else:
        w.job = None
        finished(replace(result, folder=job.folder), pages)
    w.deadline = float("inf")
