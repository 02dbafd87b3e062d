"""Grade a batch: expand the inputs, keep what is finished, grade the rest in worker processes
under the grader's budget, and write each result the moment it is ready; then ``grades.csv``,
``summary.html`` and the copied-work comparison.

What the batch is graded with is decided once, by the caller (:class:`BatchSettings`,
grader/batch/settings.py: the rubric read, the sandbox chosen) and handed down. Every submission is
graded in a worker process of our own (also with ``-j 1``; grader/batch/workers.py), forked from
this one, in a session of its own so that Ctrl-C reaches only this process; it inherits the
rubric and the sandbox already loaded and chosen. A worker grades one
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

The steps of one submission live in grader/batch/job.py, the workers in grader/batch/workers.py,
the bounded steps this process runs for a submission (a kept result's pages, its part of the
copied-work comparison) in grader/batch/bounded.py; every name of theirs that other modules use is
importable from here.

Each result, graded now or kept, gets the tutors' scores and the outcomes of its group's regrade
requests (grader/tutors/scores.py) before it is written, so a re-grade keeps what the report shows.

Ctrl-C or SIGTERM stops the workers and their kernels, writes ``grades.csv`` and
``summary.html`` for what finished (marked incomplete) and re-raises
:class:`~grader.errors.Interrupted`; the same command then grades the rest.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from grader.batch import interrupt
from grader.batch.bounded import OverBudget, SimilarityPrep, bounded_pages, bounded_similarity, run_bounded
from grader.batch.job import Job, grade_job, post_grade, stopped_result, suspicious_flags
from grader.batch.late import read_manifest, submission_time
from grader.batch.schedule import longest_first, read_history
from grader.batch.settings import BatchSettings, Finished, GradeAll
from grader.batch.workers import (
    OVER_BUDGET,
    STARTUP_SECONDS,
    Worker,
    _die_with_parent,
    _handle,
    grade_locally,
    kill_tree,
    read_reply,
)
from grader.errors import OutputFolderError
from grader.folder.gradebook import Gradebook
from grader.folder.outdir import ROSTER, OutDir, assign_folders, write_atomic
from grader.grade import Context
from grader.kernel.sandbox import Sandbox
from grader.result import SubmissionResult
from grader.rubric import Rubric
from grader.submission.intake import file_sha256
from grader.submission.platform import Discovery, Person, apply_platform, discover, read_roster
from grader.tutors.scores import apply_regrades, regrade_outcomes, tutor_scores

__all__ = ["OVER_BUDGET", "STARTUP_SECONDS", "BatchOutcome", "BatchSettings", "GradeAll", "Job", "OverBudget",
           "SimilarityPrep", "Worker", "_die_with_parent", "_handle", "assign_folders", "bounded_similarity",
           "grade_job", "kill_tree", "post_grade", "read_reply", "run_batch", "run_bounded", "stopped_result",
           "suspicious_flags"]

STAGING = ".platform"  # submissions copied out of a platform's download, in the output folder


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


def run_batch(paths: Iterable[str], settings: BatchSettings,
              on_start: Callable[[int, int], None] | None = None,
              on_result: Callable[[SubmissionResult, bool], None] | None = None) -> BatchOutcome:
    """Grade every submission in ``paths`` into ``settings.out_dir``; see the module docstring.

    ``settings.grade_all`` replaces the ``jobs`` local grading processes with another way to grade
    the submissions that are not kept (:data:`~grader.batch.settings.GradeAll`, e.g.
    ``grader.batch.cluster.executor`` for Dask workers); everything else is the same.

    ``settings.deadline`` (with the times of ``settings.manifest`` or the files' mtimes) applies the
    rubric's late policy. Tutors' manual scores in the gradebook are applied to every result, also
    after a re-grade; ``BatchOutcome.changes`` lists what a re-grade changed in the points.

    ``paths`` may be learning-platform downloads (grader/submission/platform.py): their submissions
    are staged in ``out_dir/.platform`` and the platform's identity is applied to each result in
    this process. ``settings.roster`` (a participant list) is kept in ``out_dir/roster.json`` for
    later runs and exports: its students in no submission get a ``no submission`` row in grades.csv.

    ``on_start(total, kept)`` is called once the submissions are known, ``on_result(result, kept)``
    for each result (kept ones first)."""
    from grader.checks.secret import load_secret
    load_secret()  # made or refused here, with its message, before any worker starts
    return _Batch(paths, settings, on_result).run(on_start)


class _Batch:
    """One run of :func:`run_batch`: the output folder, the jobs, the results as they come."""

    book: Gradebook  # open while the batch runs (run)

    def __init__(self, paths: Iterable[str], settings: BatchSettings,
                 on_result: Callable[[SubmissionResult, bool], None] | None) -> None:
        self.settings, self.rubric, self.on_result = settings, settings.rubric, on_result
        people = read_roster(settings.roster) if settings.roster else None
        self.out = OutDir(settings.out_dir, create=True)
        self.found: Discovery = discover(paths, self.out.path(STAGING), self.rubric.archive)
        self.files = [f.path for f in self.found.found]
        if people is not None:  # kept for later runs and exports: only what matching needs
            write_atomic(self.out.path(ROSTER),
                         json.dumps([p.to_json() for p in people], indent=1, ensure_ascii=False))
        self.roster = [Person(**p) for p in self.out.read_json_list(ROSTER)] if people is None else people
        self.all_jobs: list[Job] = []
        self.todo: list[Job] = []
        self.results: dict[str, SubmissionResult] = {}
        self.changes: list[dict[str, Any]] = []
        self.platform_info: dict[str, Any] = {}
        self.unreadable: dict[str, str] = {}
        self.regrades: dict[str, tuple[dict[str, Any], ...]] = {}
        self.prep = SimilarityPrep(self.rubric.budget)
        self.run_id = 0

    def identified(self, result: SubmissionResult) -> SubmissionResult:
        """The platform's findings and the group's regrade requests (its report shows them)."""
        named = apply_platform(result, self.platform_info.get(result.folder), self.roster)
        return apply_regrades(named, self.regrades.get(result.folder))

    def run(self, on_start: Callable[[int, int], None] | None) -> BatchOutcome:
        with self.out.gradebook() as book:
            self.book = book
            self.run_id = book.start_run(self.rubric.sha256, len(self.files))
            manual = tutor_scores(book)
            self.regrades.update(regrade_outcomes(book))
            try:
                interrupt.live()
                self.make_jobs(manual)
                self.keep_finished()
                if on_start:
                    on_start(len(self.all_jobs), len(self.all_jobs) - len(self.todo))
                for r in self.results.values():
                    if self.on_result:
                        self.on_result(r, True)
                self.todo = longest_first(self.todo, read_history(book))
                if self.todo:
                    self.grade(self.todo)
            except KeyboardInterrupt:
                with interrupt.shielded():
                    self.write_incomplete()
                raise
            ordered = [self.results[j.folder] for j in self.all_jobs]
            with interrupt.shielded():
                self.write_end(ordered)
        return BatchOutcome([r.to_json() for r in ordered], len(self.todo), len(self.all_jobs) - len(self.todo),
                            self.settings.out_dir, self.settings.sandbox, self.changes, ordered, self.found.notes)

    def make_jobs(self, manual: dict[str, Any]) -> None:
        deadline = self.settings.deadline
        times = read_manifest(self.settings.manifest) if self.settings.manifest else {}
        for item, f in zip(self.found.found, assign_folders(self.files)):
            p = item.path
            self.platform_info[f] = item.info()
            if item.problem:
                self.unreadable[f] = item.problem
                self.all_jobs.append(Job(p, f, "", None, None, "", manual.get(f, {})))
                continue
            submitted, source = (None, "")
            if deadline:
                submitted, source = submission_time(p, times)
                if source == "mtime" and item.order[0]:  # the platform's time, not the staged copy's
                    submitted, source = datetime.fromisoformat(item.order[0]), "platform"
            self.all_jobs.append(Job(p, f, file_sha256(p), deadline.isoformat() if deadline else None,
                                     submitted.isoformat() if submitted else None, source, manual.get(f, {})))

    def keep_finished(self) -> None:
        for job in self.all_jobs:
            if job.folder in self.unreadable:  # reported for its student; nothing to grade
                failed = self.identified(stopped_result(self.rubric, job, self.unreadable[job.folder]))
                self.out.write_submission(failed)
                self.results[job.folder] = failed
                continue
            kept = None if self.settings.regrade else _finished(self.out, job, self.rubric)
            if kept is None:
                self.todo.append(job)
                continue
            # a kept result: the deadline or the tutors' scores may have changed since
            final = self.identified(post_grade(kept, job, self.rubric))
            # Only files whose content changes are written: also pages a newer template draws
            # differently, and a tutor.html that an older run did not write. Drawn under the
            # submission's budget, as in a worker.
            self.out.write_submission(final, bounded_pages(final, self.rubric), redraw=True)
            self.results[job.folder] = final

    def grade(self, todo: list[Job]) -> None:
        s = self.settings
        if s.grade_all is not None:
            s.grade_all(todo, self.rubric, s.rubric_path, s.sandbox_mode, s.jobs, self.finished)
        else:
            _grade_all(todo, s, self.finished)

    def finished(self, result: SubmissionResult, pages: dict[str, str] | None) -> None:
        with interrupt.shielded():  # a result is written and recorded whole
            self.record(result, pages)
        # Its part of the copied-work comparison now, while the graders work (bounded; outside
        # the shield, so Ctrl-C is not held up by it).
        try:
            self.prep.add(self.results[result.folder])
        except Exception:  # noqa: BLE001 - e.g. no fork; tried again at the end, where it is handled
            pass

    def record(self, result: SubmissionResult, pages: dict[str, str] | None) -> None:
        named = self.identified(result)
        if named != result:  # the pages were drawn without the platform's findings
            result, pages = named, None
        change = _change(self.book.previous_points(result.folder, self.run_id), result)
        if change:
            self.changes.append(change)
        try:
            self.out.write_submission(result, pages)
        except OutputFolderError as exc:  # e.g. a link planted where its folder goes
            result = stopped_result(self.rubric, _job_of(self.all_jobs, result.folder),
                                    "its result could not be written; a tutor will look at it", str(exc))
        self.results[result.folder] = result
        self.book.record(self.run_id, result)
        if self.on_result:
            self.on_result(result, False)

    def write_incomplete(self) -> None:
        done = [self.results[j.folder] for j in self.all_jobs if j.folder in self.results]
        self.book.record_run(self.run_id, done)
        missing = [j.path.name for j in self.all_jobs if j.folder not in self.results]
        missing += [p.name for p in self.files[len(self.all_jobs):]]
        self.out.write_batch(done, self.rubric, self.settings.sandbox.note, similarity={}, not_reached=missing)

    def write_end(self, ordered: list[SubmissionResult]) -> None:
        self.book.record_run(self.run_id, ordered)
        try:
            similarity = bounded_similarity(ordered, self.rubric.budget, self.prep)
            self.out.write_similarity(similarity)
        except Exception:  # noqa: BLE001 - the grades matter more than the comparison
            similarity = {}
        self.out.write_batch(ordered, self.rubric, self.settings.sandbox.note, similarity=similarity)


def _grade_all(todo: list[Job], settings: BatchSettings, finished: Finished) -> None:
    """Grade ``todo`` with ``settings.jobs`` local workers (grader/batch/workers.py), which inherit
    one grading context made here from the settings' rubric and sandbox."""
    grade_locally(todo, Context.create(settings.rubric, settings.sandbox, 1), settings.jobs, finished)


def _job_of(jobs: list[Job], folder: str) -> Job:
    return next(j for j in jobs if j.folder == folder)


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

