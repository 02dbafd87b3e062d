"""Grade a batch: expand the inputs, skip what is finished, grade the rest (in parallel), and
write each result the moment it is ready; then ``grades.csv`` and ``summary.html``.
"""
from __future__ import annotations

import csv
import glob
import hashlib
import io
import json
import os
import tempfile
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field, replace
from datetime import datetime
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Callable, Iterable

from grader.errors import UsageError
from grader.gradebook import Gradebook
from grader.naming import parse_filename
from grader.rubric import Rubric, load_rubric
from grader.sandbox import Sandbox, choose_sandbox

CSV_FIXED = ("student_id", "name", "email", "submission", "status")


@dataclass(frozen=True)
class Job:
    path: Path
    folder: str
    sha256: str
    # Late submissions (grader/late.py): ISO times, only when a deadline was given.
    deadline: str | None = None
    submitted: str | None = None
    submitted_source: str = ""


def expand_inputs(paths: Iterable[str]) -> list[Path]:
    """Paths, globs and folders to the .zip and .ipynb files they name, each once, in order."""
    found: list[Path] = []
    for raw in paths:
        matches = sorted(glob.glob(raw)) if any(ch in raw for ch in "*?[") else [raw]
        if not matches:
            raise UsageError(f"no file matches '{raw}'; check the path or the pattern")
        for m in matches:
            p = Path(m)
            if p.is_dir():
                found += sorted(q for q in p.iterdir() if q.suffix.lower() in (".zip", ".ipynb") and q.is_file())
            elif p.is_file():
                found.append(p)
            else:
                raise UsageError(f"'{raw}' does not exist; give submission files, folders or globs")
    unique: dict[Path, Path] = {}
    for p in found:
        unique.setdefault(p.resolve(), p)
    if not unique:
        raise UsageError("no .zip or .ipynb submissions were found in the given paths")
    return list(unique.values())


def assign_folders(paths: list[Path]) -> list[str]:
    """A folder per submission named after its stem; where stems clash, the extension is kept."""
    stems = [p.stem for p in paths]
    names = [p.name if stems.count(p.stem) > 1 else p.stem for p in paths]
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name}-{seen[name]}")
    return out


def write_atomic(path: Path, text: str) -> None:
    """Write then rename, so a reader (or a resumed batch) never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; reports are for sharing
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# -- the worker side: one submission ---------------------------------------------------------
_worker: dict[str, Any] = {}


def _init_worker(rubric_path: str | None, sandbox_mode: str, threads: int) -> None:
    import torch
    torch.set_num_threads(1)
    from grader.grade import Context
    rubric = load_rubric(rubric_path)
    _worker["ctx"] = Context.create(rubric, choose_sandbox(sandbox_mode), threads)


def grade_job(job: Job, out_dir: Path) -> dict[str, Any]:
    """Grade one submission and write its folder; returns the result's JSON."""
    from grader.grade import grade_submission
    from grader.report import PAGES, render_pages
    result = replace(grade_submission(job.path, _worker["ctx"]), folder=job.folder)
    data = post_grade(result.to_json(), job, _worker["ctx"].rubric)
    folder = out_dir / job.folder
    try:
        pages = render_pages(data)
    except Exception as exc:  # noqa: BLE001 - the result must not be lost over a report
        html = f"<!DOCTYPE html><title>report</title><p>The report could not be drawn ({type(exc).__name__}).</p>"
        pages = {name: html for name in PAGES.values()}
    for name, html in pages.items():
        write_atomic(folder / name, html)
    write_atomic(folder / "result.json", json.dumps(data, indent=2, ensure_ascii=False))
    return data


def post_grade(data: dict[str, Any], job: Job, rubric: Rubric) -> dict[str, Any]:
    """Post-steps on a result's JSON: the notebook's code cells (for the copied-work check) and
    the late policy. Idempotent, so a kept result can pass through it again."""
    from datetime import datetime

    from grader.late import apply_late
    from grader.similarity import submission_code_cells
    if "code_cells" not in data:
        data = {**data, "code_cells": submission_code_cells(job.path, rubric)}
    deadline = datetime.fromisoformat(job.deadline) if job.deadline else None
    submitted = datetime.fromisoformat(job.submitted) if job.submitted else None
    return apply_late(data, rubric.late, deadline, submitted, job.submitted_source)


# -- the batch --------------------------------------------------------------------------------
@dataclass
class BatchOutcome:
    results: list[dict[str, Any]]
    graded_now: int
    skipped: int
    out_dir: Path
    sandbox: Sandbox
    # What a re-grade changed in automatic points: {folder, submission, old_points, new_points,
    # questions: {qid: [old, new]}} per submission whose points moved.
    changes: list[dict[str, Any]] = field(default_factory=list)


def run_batch(paths: Iterable[str], out_dir: Path, rubric_path: str | None = None, jobs: int = 1,
              sandbox_mode: str = "auto", regrade: bool = False,
              on_start: Callable[[int, int], None] | None = None,
              on_result: Callable[[dict[str, Any], bool], None] | None = None,
              deadline: datetime | None = None, manifest: Path | None = None) -> BatchOutcome:
    """Grade every submission in ``paths`` into ``out_dir``; see the module docstring.

    ``deadline`` (with the times of ``manifest`` or the files' mtimes) applies the rubric's late
    policy. Tutors' manual scores in the gradebook are applied to every result, also after a
    re-grade; ``BatchOutcome.changes`` lists what a re-grade changed in the points."""
    from grader.late import read_manifest, submission_time
    from grader.scores import apply_manual, save_result
    from grader.similarity import write_similarity
    rubric = load_rubric(rubric_path)
    sandbox = choose_sandbox(sandbox_mode)
    files = expand_inputs(paths)
    times = read_manifest(manifest) if manifest else {}
    out_dir.mkdir(parents=True, exist_ok=True)
    folders = assign_folders(files)
    all_jobs = []
    for p, f in zip(files, folders):
        submitted, source = submission_time(p, times) if deadline else (None, "")
        all_jobs.append(Job(p, f, hashlib.sha256(p.read_bytes()).hexdigest(),
                            deadline.isoformat() if deadline else None,
                            submitted.isoformat() if submitted else None, source))
    results: dict[str, dict[str, Any]] = {}
    changes: list[dict[str, Any]] = []
    with Gradebook(out_dir / "gradebook.sqlite") as book:
        run_id = book.start_run(rubric.sha256, len(all_jobs))
        manual = book.manual_scores()
        todo = []
        for job in all_jobs:
            done = None if regrade else _finished(out_dir, job, rubric)
            if done is not None:
                # a kept result: the deadline or the tutors' scores may have changed since
                final = apply_manual(post_grade(done, job, rubric), manual.get(job.folder, {}))
                # Writes only files whose content changes: also pages a newer template draws
                # differently, and a tutor.html that an older run did not write.
                save_result(out_dir, final)
                results[job.folder] = final
            else:
                todo.append(job)
        if on_start:
            on_start(len(all_jobs), len(all_jobs) - len(todo))
        for data in results.values():
            if on_result:
                on_result(data, True)

        def finished(data: dict[str, Any]) -> None:
            change = _change(book.previous_points(data["folder"], run_id), data)
            if change:
                changes.append(change)
            scores = manual.get(data["folder"])
            if scores:  # a re-grade keeps the tutors' scores
                data = apply_manual(data, scores)
                save_result(out_dir, data)
            results[data["folder"]] = data
            book.record(run_id, data)
            if on_result:
                on_result(data, False)

        if jobs <= 1 or len(todo) <= 1:
            _init_worker(rubric_path, sandbox_mode, 1)
            for job in todo:
                finished(grade_job(job, out_dir))
        else:
            _parallel(todo, out_dir, rubric_path, sandbox_mode, jobs, finished)
        ordered = [results[j.folder] for j in all_jobs if j.folder in results]
        book.record_run(run_id, ordered)
    write_similarity(ordered, out_dir)
    write_outputs(ordered, out_dir, rubric, sandbox.note)
    return BatchOutcome(ordered, len(todo), len(all_jobs) - len(todo), out_dir, sandbox, changes)


def _change(before: dict[str, Any] | None, data: dict[str, Any]) -> dict[str, Any] | None:
    """What a new grading changed in the automatic points of a submission seen in a run before."""
    if before is None:
        return None
    moved = {}
    for qid, q in data["questions"].items():
        old = before["questions"].get(qid)
        if q.get("status") == "auto" and old is not None and round(float(old[0]), 4) != round(float(q["points"]), 4):
            moved[qid] = [old[0], q["points"]]
    if not moved and before["status"] == data["status"]:
        return None
    return {"folder": data["folder"], "submission": data["submission"], "old_status": before["status"],
            "status": data["status"], "questions": moved}


def _parallel(todo: list[Job], out_dir: Path, rubric_path: str | None, sandbox_mode: str, jobs: int,
              finished: Callable[[dict[str, Any]], None]) -> None:
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn"),
                             initializer=_init_worker, initargs=(rubric_path, sandbox_mode, 1)) as pool:
        pending: dict[Future, Job] = {pool.submit(grade_job, job, out_dir): job for job in todo}
        try:
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    pending.pop(fut)
                    finished(fut.result())
        except BaseException:
            for fut in pending:
                fut.cancel()
            raise


def _finished(out_dir: Path, job: Job, rubric: Rubric) -> dict[str, Any] | None:
    path = out_dir / job.folder / "result.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if data.get("sha256") == job.sha256 and data.get("rubric_sha256") == rubric.sha256 \
            and (out_dir / job.folder / "report.html").exists():
        return data
    return None


def grades_csv(results: list[dict[str, Any]], question_ids: list[str]) -> str:
    """One row per student, ready for a course system's import."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([*CSV_FIXED, *question_ids, "points", "max_points", "flags"])
    for r in results:
        members = r.get("group") or []
        if not members:
            parsed = parse_filename(r["submission"])
            members = [{"name": n, "student_id": i, "email": ""} for n, i in parsed.pairs] or \
                      [{"name": "", "student_id": "", "email": ""}]
        per_question = []
        for qid in question_ids:
            q = r["questions"].get(qid, {})
            per_question.append("" if q.get("status") == "pending" and r["status"] == "graded"
                                else f"{q.get('points', 0.0):g}")
        codes = ";".join(dict.fromkeys(f["code"] for f in r.get("flags", [])))
        for m in members:
            writer.writerow([m.get("student_id", ""), m.get("name", ""), m.get("email", ""), r["submission"],
                             r["status"], *per_question, f"{r['points']:g}", f"{r['max_points']:g}", codes])
    return buf.getvalue()


def write_outputs(results: list[dict[str, Any]], out_dir: Path, rubric: Rubric, sandbox_note: str) -> None:
    from grader.report import render_summary
    from grader.similarity import load_similarity
    qids = list(rubric.questions)
    write_atomic(out_dir / "grades.csv", grades_csv(results, qids))
    write_atomic(out_dir / "summary.html", render_summary(results, rubric.title, rubric.max_points, sandbox_note,
                                                          similarity=load_similarity(out_dir, results)))
