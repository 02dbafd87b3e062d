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
from dataclasses import dataclass, replace
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
    from grader.report import render_report
    result = replace(grade_submission(job.path, _worker["ctx"]), folder=job.folder)
    data = result.to_json()
    folder = out_dir / job.folder
    try:
        html = render_report(data)
    except Exception as exc:  # noqa: BLE001 - the result must not be lost over a report
        html = f"<!DOCTYPE html><title>report</title><p>The report could not be drawn ({type(exc).__name__}).</p>"
    write_atomic(folder / "report.html", html)
    write_atomic(folder / "result.json", json.dumps(data, indent=2, ensure_ascii=False))
    return data


# -- the batch --------------------------------------------------------------------------------
@dataclass
class BatchOutcome:
    results: list[dict[str, Any]]
    graded_now: int
    skipped: int
    out_dir: Path
    sandbox: Sandbox


def run_batch(paths: Iterable[str], out_dir: Path, rubric_path: str | None = None, jobs: int = 1,
              sandbox_mode: str = "auto", regrade: bool = False,
              on_start: Callable[[int, int], None] | None = None,
              on_result: Callable[[dict[str, Any], bool], None] | None = None) -> BatchOutcome:
    """Grade every submission in ``paths`` into ``out_dir``; see the module docstring."""
    rubric = load_rubric(rubric_path)
    sandbox = choose_sandbox(sandbox_mode)
    files = expand_inputs(paths)
    out_dir.mkdir(parents=True, exist_ok=True)
    folders = assign_folders(files)
    all_jobs = [Job(p, f, hashlib.sha256(p.read_bytes()).hexdigest()) for p, f in zip(files, folders)]
    results: dict[str, dict[str, Any]] = {}
    with Gradebook(out_dir / "gradebook.sqlite") as book:
        run_id = book.start_run(rubric.sha256, len(all_jobs))
        todo = []
        for job in all_jobs:
            done = None if regrade else _finished(out_dir, job, rubric)
            if done is not None:
                results[job.folder] = done
            else:
                todo.append(job)
        if on_start:
            on_start(len(all_jobs), len(all_jobs) - len(todo))
        for data in results.values():
            if on_result:
                on_result(data, True)

        def finished(data: dict[str, Any]) -> None:
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
    write_outputs(ordered, out_dir, rubric, sandbox.note)
    return BatchOutcome(ordered, len(todo), len(all_jobs) - len(todo), out_dir, sandbox)


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
    qids = list(rubric.questions)
    write_atomic(out_dir / "grades.csv", grades_csv(results, qids))
    write_atomic(out_dir / "summary.html", render_summary(results, rubric.title, rubric.max_points, sandbox_note))
