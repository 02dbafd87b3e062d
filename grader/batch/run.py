"""Grade a batch: expand the inputs, keep what is finished, grade the rest in worker processes
under the grader's budget, and write each result the moment it is ready; then ``grades.csv``,
``summary.html`` and the copied-work comparison.

Every submission is graded in a worker process of our own (also with ``-j 1``), forked from this
one, in a session of its own so that Ctrl-C reaches only this process. A worker grades one
submission at a time under the rubric's ``[budget]``: its address space may grow by
``grader_memory_mb`` (``RLIMIT_AS``), and a submission that takes longer than ``grader_seconds`` (kernel runs
and restarts included) has its worker and everything the worker started killed; it is reported
as over the grader's budget and a new worker takes the next submission. Whatever goes wrong with
one submission (an exception in a post-step, a worker that dies, a reply that cannot be read)
becomes an ``error`` result for it, never a stopped batch.

With more than one worker, a worker left without work frees its CPU: the batch hands out a token
of a spare slot (grader/kernel/spare.py), and a worker still grading a submission whose vanilla-RNN
comparison has not begun runs it in a second kernel of that submission, beside the LSTM's tries
(grader/checks/recall_side.py), so a small batch does not end on one CPU. ``-j 1`` never has a token.

Each result, graded now or kept, gets the tutors' scores and the outcomes of its group's regrade
requests (grader/tutors/scores.py) before it is written, so a re-grade keeps what the report shows.

Ctrl-C or SIGTERM stops the workers and their kernels, writes ``grades.csv`` and
``summary.html`` for what finished (marked incomplete) and re-raises
:class:`~grader.errors.Interrupted`; the same command then grades the rest.
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
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
import torch

from grader.batch import interrupt
from grader.batch.late import apply_late, read_manifest, submission_time
from grader.batch.schedule import longest_first, read_history
from grader.checks.similarity import batch_similarity
from grader.cleantext import identity_problems, skeleton
from grader.errors import OutputFolderError
from grader.folder.grades import suspicious, visible
from grader.folder.outdir import ROSTER, OutDir, assign_folders, safe_pages, write_atomic
from grader.grade import Context, grade_submission
from grader.kernel.kernelpool import KernelPool
from grader.kernel.sandbox import Sandbox, choose_sandbox
from grader.kernel.spare import TokenPipe
from grader.result import Flag, QuestionResult, SubmissionResult
from grader.rubric import Rubric, load_rubric
from grader.submission.intake import file_sha256
from grader.submission.platform import Person, apply_platform, discover, read_roster
from grader.tutors.scores import apply_manual, apply_regrades, regrade_outcomes, tutor_scores

__all__ = ["BatchOutcome", "Job", "assign_folders", "grade_job", "post_grade", "run_batch"]

STAGING = ".platform"  # submissions copied out of a platform's download, in the output folder
STARTUP_SECONDS = 300.0  # for a worker to be ready (it only sets up; nothing of a submission)
OVER_BUDGET = "over the grader's budget"
# How the submissions that are not kept get graded: (todo, rubric, rubric_path, sandbox_mode,
# jobs, finished); finished(result, pages) is called in this process for each.
GradeAll = Callable[[list["Job"], Rubric, "str | None", str, int,
                     Callable[[SubmissionResult, "dict[str, str] | None"], None]], None]


@dataclass(frozen=True)
class Job:
    path: Path
    folder: str
    sha256: str
    # Late submissions (grader/batch/late.py): ISO times, only when a deadline was given.
    deadline: str | None = None
    submitted: str | None = None
    submitted_source: str = ""
    # The tutors' scores of this folder (gradebook), applied before the report is drawn.
    manual: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


# -- one submission (in the worker) -------------------------------------------------------------
def stopped_result(rubric: Rubric, job: Job, message: str, detail: str = "",
                   submission: str | None = None) -> SubmissionResult:
    """An ``error`` result for ``job`` made without grading (every question 0 points)."""
    questions = {q.id: QuestionResult(q.id, q.title, 0.0, q.points, "auto" if q.automatic else "pending")
                 for q in rubric.questions.values()}
    return SubmissionResult(submission=submission or job.path.name, sha256=job.sha256, status="error", group=(),
                            questions=questions, flags=(), max_points=rubric.max_points, message=message,
                            tutor_detail=detail[-4000:], folder=job.folder, rubric_sha256=rubric.sha256)


def suspicious_flags(result: SubmissionResult) -> SubmissionResult:
    """A ``group.suspicious`` flag for a name, id or e-mail of the group cell that may pretend to
    be another (grader/cleantext.py's :func:`~grader.cleantext.identity_problems`): control, bidi
    or other invisible characters (U+202E makes a name read backwards), look-alike compatibility
    characters (the Kelvin sign for K), words mixing scripts (a Cyrillic "а" in "Alan"), and in an
    id or e-mail any character outside ASCII; also two members who read the same. Shown escaped."""
    found = []
    seen: dict[tuple[str, str], str] = {}
    for m in result.group:
        for key in ("name", "student_id", "email"):
            value = str(m.get(key, ""))
            problems = identity_problems(value, ascii_only=key != "name")
            chars = suspicious(value)
            if chars and not problems:
                problems = [f"characters {', '.join(chars)}"]
            if problems:
                found.append(f"{key} '{visible(value)}' holds {'; '.join(problems)}")
            same = (key, skeleton(value))
            if same[1] and key != "name" and seen.get(same, value) != value:
                found.append(f"{key} '{visible(value)}' reads the same as '{visible(seen[same])}'")
            seen.setdefault(same, value)
    kept = tuple(f for f in result.flags if f.code != "group.suspicious")
    if not found:
        return replace(result, flags=kept)
    message = ("the group cell holds identities that may pretend to be others: " + "; ".join(found)
               + "; a tutor must check who this group is")
    return replace(result, flags=(*kept, Flag("group.suspicious", None, message)))


def post_grade(result: SubmissionResult, job: Job, rubric: Rubric) -> SubmissionResult:
    """The steps after grading, on a typed result: the group's characters, the late policy, the
    tutors' scores. Idempotent, so a kept result passes through them again."""
    result = suspicious_flags(replace(result, folder=job.folder))
    deadline = datetime.fromisoformat(job.deadline) if job.deadline else None
    submitted = datetime.fromisoformat(job.submitted) if job.submitted else None
    result = apply_late(result, rubric.late, deadline, submitted, job.submitted_source)
    return apply_manual(result, job.manual)


def grade_job(job: Job, ctx: Context) -> tuple[SubmissionResult, dict[str, str]]:
    """Grade one submission and draw its pages; every failure becomes an ``error`` result."""
    result = grade_submission(job.path, ctx)
    try:
        result = post_grade(result, job, ctx.rubric)
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - one bad submission never stops a batch
        result = stopped_result(ctx.rubric, job, "the grader could not finish this submission; a tutor will "
                                "look at it", "".join(traceback.format_exception(exc)), result.submission)
    return result, safe_pages(result.to_json())


def _worker_loop(jobs_fd: int, replies_fd: int, rubric_path: str | None, sandbox_mode: str,
                 memory_mb: int, spare: TokenPipe | None = None) -> None:
    """The body of a forked worker: read a job (one JSON line), write a reply (one JSON line).

    ``spare``: the batch's spare slots (grader/kernel/spare.py), inherited; None with ``-j 1``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # Ctrl-C is the batch's to handle
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    # Only the soft limit: a kernel started from here sets its own (prlimit), above this one.
    have = psutil.Process().memory_info().vms
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    soft = have + memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (soft if hard == resource.RLIM_INFINITY else min(soft, hard), hard))
    torch.set_num_threads(1)
    ctx = Context.create(load_rubric(rubric_path), choose_sandbox(sandbox_mode), 1)
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


# -- the workers (in the batch's process) -------------------------------------------------------
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Linux: SIGKILL this process when the process that forked it ends."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")


class Worker:
    """A forked grading process with a job pipe and a reply pipe."""

    def __init__(self, rubric_path: str | None, sandbox_mode: str, memory_mb: int, close: list[int],
                 spare: TokenPipe | None = None) -> None:
        job_r, job_w = os.pipe()
        rep_r, rep_w = os.pipe()
        parent = os.getpid()
        pid = os.fork()
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
                _worker_loop(job_r, rep_w, rubric_path, sandbox_mode, memory_mb, spare)
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
        return json.loads(line)

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


# -- the batch --------------------------------------------------------------------------------
@dataclass
class BatchOutcome:
    results: list[dict[str, Any]]          # the results' JSON (contract §6), in input order
    graded_now: int
    skipped: int
    out_dir: Path
    sandbox: Sandbox
    # What a re-grade changed in automatic points: {folder, submission, old_status, status,
    # questions: {qid: [old, new]}} per submission whose points moved.
    changes: list[dict[str, Any]] = field(default_factory=list)
    typed: list[SubmissionResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)   # what the intake left out, for the tutor


def run_batch(paths: Iterable[str], out_dir: Path, rubric_path: str | None = None, jobs: int = 1,
              sandbox_mode: str = "auto", regrade: bool = False,
              on_start: Callable[[int, int], None] | None = None,
              on_result: Callable[[dict[str, Any], bool], None] | None = None,
              deadline: datetime | None = None, manifest: Path | None = None,
              grade_all: GradeAll | None = None, roster: Path | None = None) -> BatchOutcome:
    """Grade every submission in ``paths`` into ``out_dir``; see the module docstring.

    ``grade_all`` replaces the ``jobs`` local grading processes with another way to grade the
    submissions that are not kept, with :func:`_grade_all`'s signature (e.g.
    ``grader.batch.cluster.executor`` for Dask workers); everything else is the same.

    ``deadline`` (with the times of ``manifest`` or the files' mtimes) applies the rubric's late
    policy. Tutors' manual scores in the gradebook are applied to every result, also after a
    re-grade; ``BatchOutcome.changes`` lists what a re-grade changed in the points.

    ``paths`` may be learning-platform downloads (grader/submission/platform.py): their submissions
    are staged in ``out_dir/.platform`` and the platform's identity is applied to each result in
    this process. ``roster`` (a participant list) is kept in ``out_dir/roster.json`` for later
    runs and exports: its students in no submission get a ``no submission`` row in grades.csv."""
    rubric = load_rubric(rubric_path)
    sandbox = choose_sandbox(sandbox_mode)
    from grader.checks.secret import load_secret
    load_secret()  # made or refused here, with its message, before any worker starts
    people = read_roster(roster) if roster else None
    out = OutDir(out_dir, create=True)
    found = discover(paths, out.path(STAGING), rubric.archive)
    files = [f.path for f in found.found]
    times = read_manifest(manifest) if manifest else {}
    if people is not None:  # kept for later runs and exports: only what matching needs
        write_atomic(out.path(ROSTER), json.dumps([p.to_json() for p in people], indent=1, ensure_ascii=False))
    roster_people = [Person(**p) for p in out.read_json_list(ROSTER)] if people is None else people
    all_jobs: list[Job] = []
    results: dict[str, SubmissionResult] = {}
    changes: list[dict[str, Any]] = []
    todo: list[Job] = []
    platform_info: dict[str, Any] = {}
    unreadable: dict[str, str] = {}

    regrades: dict[str, tuple[dict[str, Any], ...]] = {}

    def identified(result: SubmissionResult) -> SubmissionResult:
        """The platform's findings and the group's regrade requests (its report shows them)."""
        named = apply_platform(result, platform_info.get(result.folder), roster_people)
        return apply_regrades(named, regrades.get(result.folder))

    prep = SimilarityPrep(rubric.budget)
    with out.gradebook() as book:
        run_id = book.start_run(rubric.sha256, len(files))
        manual = tutor_scores(book)
        regrades.update(regrade_outcomes(book))
        try:
            interrupt.live()
            for item, f in zip(found.found, assign_folders(files)):
                p = item.path
                platform_info[f] = item.info()
                if item.problem:
                    unreadable[f] = item.problem
                    all_jobs.append(Job(p, f, "", None, None, "", manual.get(f, {})))
                    continue
                submitted, source = (None, "")
                if deadline:
                    submitted, source = submission_time(p, times)
                    if source == "mtime" and item.order[0]:  # the platform's time, not the staged copy's
                        submitted, source = datetime.fromisoformat(item.order[0]), "platform"
                all_jobs.append(Job(p, f, file_sha256(p), deadline.isoformat() if deadline else None,
                                    submitted.isoformat() if submitted else None, source, manual.get(f, {})))
            for job in all_jobs:
                if job.folder in unreadable:  # reported for its student; nothing to grade
                    failed = identified(stopped_result(rubric, job, unreadable[job.folder]))
                    out.write_submission(failed)
                    results[job.folder] = failed
                    continue
                kept = None if regrade else _finished(out, job, rubric)
                if kept is None:
                    todo.append(job)
                    continue
                # a kept result: the deadline or the tutors' scores may have changed since
                final = identified(post_grade(kept, job, rubric))
                # Only files whose content changes are written: also pages a newer template draws
                # differently, and a tutor.html that an older run did not write. Drawn under the
                # submission's budget, as in a worker.
                out.write_submission(final, _bounded_pages(final, rubric), redraw=True)
                results[job.folder] = final
            if on_start:
                on_start(len(all_jobs), len(all_jobs) - len(todo))
            for r in results.values():
                if on_result:
                    on_result(r.to_json(), True)

            def finished(result: SubmissionResult, pages: dict[str, str] | None) -> None:
                with interrupt.shielded():  # a result is written and recorded whole
                    _finish(result, pages)
                # Its part of the copied-work comparison now, while the graders work (bounded;
                # outside the shield, so Ctrl-C is not held up by it).
                try:
                    prep.add(results[result.folder])
                except Exception:  # noqa: BLE001 - e.g. no fork; tried again at the end, where it is handled
                    pass

            def _finish(result: SubmissionResult, pages: dict[str, str] | None) -> None:
                named = identified(result)
                if named != result:  # the pages were drawn without the platform's findings
                    result, pages = named, None
                change = _change(book.previous_points(result.folder, run_id), result)
                if change:
                    changes.append(change)
                try:
                    out.write_submission(result, pages)
                except OutputFolderError as exc:  # e.g. a link planted where its folder goes
                    result = stopped_result(rubric, _job_of(all_jobs, result.folder),
                                            "its result could not be written; a tutor will look at it", str(exc))
                results[result.folder] = result
                book.record(run_id, result)
                if on_result:
                    on_result(result.to_json(), False)

            todo = longest_first(todo, read_history(book))
            if todo:
                (grade_all or _grade_all)(todo, rubric, rubric_path, sandbox_mode, jobs, finished)
        except KeyboardInterrupt:
            with interrupt.shielded():
                done = [results[j.folder] for j in all_jobs if j.folder in results]
                book.record_run(run_id, done)
                missing = [j.path.name for j in all_jobs if j.folder not in results]
                missing += [p.name for p in files[len(all_jobs):]]
                out.write_batch(done, rubric, sandbox.note, similarity={}, not_reached=missing)
            raise
        ordered = [results[j.folder] for j in all_jobs]
        with interrupt.shielded():
            book.record_run(run_id, ordered)
            try:
                similarity = bounded_similarity(ordered, rubric.budget, prep)
                out.write_similarity(similarity)
            except Exception:  # noqa: BLE001 - the grades matter more than the comparison
                similarity = {}
            out.write_batch(ordered, rubric, sandbox.note, similarity=similarity)
    return BatchOutcome([r.to_json() for r in ordered], len(todo), len(all_jobs) - len(todo), out_dir,
                        sandbox, changes, ordered, found.notes)


class OverBudget(Exception):
    """A per-submission step did not finish within the submission's budget."""


def run_bounded(fn: Callable[[Any], Any], arg: Any, seconds: float, memory_mb: int) -> Any:
    """``fn(arg)`` in a forked child under one submission's budget: at most ``seconds`` of wall
    time and ``memory_mb`` more address space; the result comes back as JSON (nothing is
    unpickled). :class:`OverBudget` when it takes longer, runs out of memory or fails.

    For the steps of a submission that the batch's own process would otherwise run unbounded: a
    kept result's pages drawn again, its part of the copied-work comparison."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: compute, answer, exit without running the parent's cleanup
        code = 0
        try:
            os.close(read_fd)
            _die_with_parent()
            have = psutil.Process().memory_info().vms
            _, hard = resource.getrlimit(resource.RLIMIT_AS)
            soft = have + memory_mb * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_AS, (soft if hard == resource.RLIM_INFINITY else min(soft, hard), hard))
            data = json.dumps({"value": fn(arg)}, ensure_ascii=True).encode("ascii")
            with os.fdopen(write_fd, "wb") as w:
                w.write(data)
        except BaseException:  # noqa: BLE001 - the parent sees no answer and says so
            code = 1
        os._exit(code)
    os.close(write_fd)
    chunks: list[bytes] = []
    deadline = time.monotonic() + seconds
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise OverBudget(f"it took longer than the grader's {seconds:g} s")
            ready, _, _ = select.select([read_fd], [], [], min(left, 1.0))
            if ready:
                chunk = os.read(read_fd, 1 << 20)
                if not chunk:
                    break
                chunks.append(chunk)
    finally:
        os.close(read_fd)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.waitpid(pid, 0)
    try:
        return json.loads(b"".join(chunks))["value"]
    except (ValueError, KeyError) as exc:
        raise OverBudget(f"it failed or needed more than the grader's {memory_mb} MB of memory") from exc


class SimilarityPrep:
    """Each group's part of the copied-work comparison (lexing its code, folding its text), made
    in a forked child under its submission's budget (:func:`run_bounded`) and kept for the end of
    the batch: a batch makes it as each result arrives (while the graders work), so the end only
    compares (:func:`bounded_similarity`).

    The modules and caches that work needs (the lexer, the template's answers) are loaded in this
    process, once, on a fixed document of ours, before the first group's child is forked: each
    child then only does its group's work (without this, every child loaded them again: 0.6 s
    per group, 20 minutes for 2,000 groups; benchmarks/scale.py, docs/performance.md "Scale")."""

    def __init__(self, budget: Any) -> None:
        self.budget = budget
        self.warm = False
        # folder -> (the result it was made for, its prepared work or why it was left out)
        self.made: dict[str, tuple[SubmissionResult, dict[str, Any] | str]] = {}

    def add(self, result: SubmissionResult) -> dict[str, Any] | str:
        """``result``'s prepared work (a string: why it is left out), made once per result."""
        from grader.checks.similarity import prepared, result_document
        kept = self.made.get(result.folder)
        if kept is not None and kept[0] is result:
            return kept[1]
        if not self.warm:
            prepared(result_document({"folder": "", "submission": "", "code_cells": ["x = 1\n"],
                                      "questions": {"warm": {"answer": {"markdown": "an answer"}}}}))
            self.warm = True
        made: dict[str, Any] | str
        try:
            made = run_bounded(lambda d: prepared(result_document(d)), result.to_json(), self.budget.seconds,
                               self.budget.memory_mb)
        except OverBudget as exc:
            made = f"{result.submission}: {exc}"
        self.made[result.folder] = (result, made)
        return made


def bounded_similarity(results: list[SubmissionResult], budget: Any,
                       prep: SimilarityPrep | None = None) -> dict[str, Any]:
    """The copied-work comparison with each group's own work under its submission's budget
    (``prep``: the work made for results as they arrived, reused for the same result objects);
    a group over it is left out and named."""
    prep = prep or SimilarityPrep(budget)
    ready: dict[str, Any] = {}
    kept: list[dict[str, Any]] = []
    left_out: list[str] = []
    for r in results:
        made = prep.add(r)
        if isinstance(made, str):
            left_out.append(made)
        else:
            ready[r.folder] = made
            kept.append(r.to_json())
    out = batch_similarity(kept, ready)
    if left_out:
        out["left_out"] = left_out
    return out


def _bounded_pages(result: SubmissionResult, rubric: Rubric) -> dict[str, str]:
    from grader.folder.outdir import _fallback
    from grader.pages.report import PAGES
    try:
        pages = run_bounded(safe_pages, result.to_json(), rubric.budget.seconds, rubric.budget.memory_mb)
        return {str(k): str(v) for k, v in pages.items()}
    except OverBudget as exc:
        html = _fallback.render(title="The report", why=f"over the grader's budget: {exc}", where="result.json")
        return {name: html for name in PAGES.values()}


def _job_of(jobs: list[Job], folder: str) -> Job:
    return next(j for j in jobs if j.folder == folder)




# Seconds an idle worker has, at the end of a batch, to close its pool and exit by itself.
IDLE_EXIT_SECONDS = 20.0


def _grade_all(todo: list[Job], rubric: Rubric, rubric_path: str | None, sandbox_mode: str, jobs: int,
               finished: Callable[[SubmissionResult, dict[str, str] | None], None]) -> None:
    """Grade ``todo`` with ``jobs`` workers; calls ``finished`` in this process for each."""
    queue = deque(todo)
    workers: list[Worker] = []
    idle: list[Worker] = []  # told that no job follows; they end on their own
    budget = rubric.budget
    # A worker left without work frees its CPU for another's second kernel (grader/kernel/spare.py);
    # with one worker there is never a spare slot.
    spare = TokenPipe.create() if jobs > 1 else None

    def spawn() -> None:
        with interrupt.shielded():  # a worker forked is a worker listed, so it is always stopped
            workers.append(Worker(rubric_path, sandbox_mode, budget.memory_mb,
                                  [fd for w in workers for fd in w.fds()], spare))

    def fail(worker: Worker, message: str, detail: str) -> None:
        workers.remove(worker)
        job = worker.job
        worker.kill()
        if job is not None:
            finished(stopped_result(rubric, job, message, detail), None)
        elif not queue:
            return
        else:  # a worker that cannot even start: the next submission gets the error, not a hang
            bad = queue.popleft()
            finished(stopped_result(rubric, bad, "the grader could not start a worker for this submission; "
                                    "a tutor will look at it", detail), None)
        if queue and len(workers) < jobs:
            spawn()

    try:
        for _ in range(min(jobs, len(queue))):
            spawn()
        while workers:
            for w in list(workers):
                if w.ready and w.job is None:
                    if queue:
                        # More to come for this worker when every worker can still get one.
                        w.send(queue.popleft(), budget.seconds, more=len(queue) >= jobs)
                    else:
                        workers.remove(w)
                        w.close_jobs()
                        idle.append(w)
                        if spare is not None and any(other.job is not None for other in workers):
                            spare.hand_out()  # its CPU is free for a submission still being graded
            if not workers:
                break
            now = time.monotonic()
            wait = max(0.0, min(w.deadline for w in workers) - now)
            readable, _, _ = select.select([w.replies for w in workers], [], [], min(wait, 5.0))
            for w in [w for w in workers if w.replies in readable]:
                ok, reply = read_reply(w, fail)
                if not ok or reply is None:
                    continue
                _handle(w, reply, rubric, finished, fail)
            now = time.monotonic()
            for w in [w for w in workers if w.deadline < now]:
                if w.job is None:
                    fail(w, "", f"a worker did not start within {STARTUP_SECONDS:g} s")
                else:
                    fail(w, f"{OVER_BUDGET}: grading took longer than {budget.seconds:g} s and was stopped; "
                         "a tutor will look at it", f"stopped after {now - w.started:.0f} s")
    finally:
        with interrupt.shielded():
            for w in workers:
                w.kill()
            # Idle workers get a moment to close their kernel started ahead themselves (a kill
            # would leave its folder for the next run's sweep); then they are stopped anyway.
            end = time.monotonic() + IDLE_EXIT_SECONDS
            while any(not w.exited() for w in idle) and time.monotonic() < end:
                time.sleep(0.05)
            for w in idle:
                w.kill()
            if spare is not None:
                spare.close()


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


def _change(before: dict[str, Any] | None, result: SubmissionResult) -> dict[str, Any] | None:
    """What a new grading changed in the automatic points of a submission seen in a run before."""
    if before is None:
        return None
    moved = {}
    for qid, q in result.questions.items():
        old = before["questions"].get(qid)
        if q.status == "auto" and old is not None and round(float(old[0]), 4) != round(q.points, 4):
            moved[qid] = [old[0], round(q.points, 4)]
    if not moved and before["status"] == result.status:
        return None
    return {"folder": result.folder, "submission": result.submission, "old_status": before["status"],
            "status": result.status, "questions": moved}


def _finished(out: OutDir, job: Job, rubric: Rubric) -> SubmissionResult | None:
    """The kept result of ``job`` when it was graded from the same file with the same rubric."""
    try:
        result = out.read_result(job.folder)
    except (OSError, ValueError, RecursionError, OutputFolderError):
        return None  # graded again; a link in the way is reported when the result is written
    if result.sha256 == job.sha256 and result.rubric_sha256 == rubric.sha256:
        return result  # its pages are drawn again where missing or changed (OutDir.write_submission)
    return None

