"""Students' personal data in an output folder: what is stored, where, since when; and the purge.

:func:`inventory` (``grade privacy -o DIR``) lists what personal data an output folder
holds, where, and since when: the files and what in them is personal, the gradebook's tables and
their columns (among them the students' regrade requests, grader/tutors/regrades.py), and the
purges done so far. Nothing expires by itself: data stays until
``grade purge``.

:func:`purge` (``grade purge -o DIR --before DATE`` or ``--student ID``) first verifies
the gradebook's chain (grader/folder/ledger.py; a purge never launders an edit), then removes every
submission folder whose latest data (graded, scored, a regrade request recorded or resolved, ...)
is older than DATE (or whose group holds the student: the
group's work is one submission, so the whole submission goes), their rows in every gradebook
table, and the files derived from them (``review/``, ``export.*``, which are made again on
request); it rewrites ``grades.csv``, ``summary.html`` and ``similarity.json`` from what remains,
re-seals the chain and records the deletion (when, by whom, the scope without the student's id,
how many of what) in ``deletions`` and in ``deletion-log.jsonl``: no name, id, e-mail or folder
name. The gradebook is compacted (``VACUUM``, secure delete, WAL emptied) so the removed bytes are
gone from the file too. Submissions the tutor keeps elsewhere (the input files) are outside the
output folder; the report says so.
"""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from grader.errors import OutputFolderError, UsageError
from grader.folder.outdir import GRADEBOOK, GRADES, RESULT, SIMILARITY, SUMMARY, OutDir

DELETION_LOG = "deletion-log.jsonl"


# -- what is stored, where, how long -------------------------------------------------------------
@dataclass
class Item:
    where: str
    holds: str
    personal: str
    count: int = 0
    oldest: float | None = None
    newest: float | None = None


@dataclass
class Inventory:
    folder: str
    items: list[Item] = field(default_factory=list)
    tables: dict[str, list[str]] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    reveals: int = 0
    regrade_requests: int = 0
    open_requests: int = 0
    deletions: list[dict[str, Any]] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)


#: Per gradebook table: what personal data its columns hold (for the report).
TABLE_PERSONAL = {
    "results": "folder and submission (students' names and ids), result_json (the group: names, ids, e-mails; "
               "answers and code)",
    "run_results": "folder and submission (names and ids)",
    "manual_scores": "folder and submission (names and ids); comment (a tutor's words on the answer); tutor",
    "score_history": "folder and submission (names and ids); comments; tutor",
    "point_overrides": "folder and submission (names and ids); reason (a tutor's words); tutor",
    "saved_comments": "a tutor's reusable remarks per question; tutor; no student data",
    "confirmed_members": "folder (names and ids); student_id; tutor",
    "reveals": "folder (names and ids); tutor; reason",
    "regrade_requests": "folder (names and ids); student (the id or e-mail the request came with); text (the "
                        "student's words); reason (a tutor's words, shown in the report); replay_json (the "
                        "replay's differences); tutors (recorded_by, resolved_by)",
    "deletions": "deleted_by (a tutor); no student data",
    "runs": "none",
    "ledger": "digests and MACs only; ref names a row by its key (folder: names and ids)",
}


def _mtime(path: Path) -> float:
    return path.stat().st_mtime


def inventory(out: OutDir) -> Inventory:
    inv = Inventory(str(out))
    folders = [p for p in sorted(out.root.iterdir()) if p.is_dir() and (p / RESULT).is_file()]
    if folders:
        times = [_mtime(p / RESULT) for p in folders]
        inv.items.append(Item("<submission folder>/ (one per group)",
                              "result.json, report.html, tutor.html",
                              "the folder's name (students' names and ids from the file name); the group's "
                              "names, ids and e-mails; the answers, code and outputs of the notebook",
                              len(folders), min(times), max(times)))
    for name, holds, personal in (
            (GRADES, "one row per student", "names, ids, e-mails, points"),
            (SUMMARY, "the batch's overview", "submission file names (names and ids), similar pairs"),
            (SIMILARITY, "the similarity ranking", "folder names (names and ids)"),
            (DELETION_LOG, "the purges", "who purged (a tutor); no student data")):
        p = out.root / name
        if p.is_file():
            inv.items.append(Item(name, holds, personal, 1, _mtime(p), _mtime(p)))
    review = out.root / "review"
    if review.is_dir():
        files = [p for p in review.rglob("*") if p.is_file()]
        inv.items.append(Item("review/", "review pages and scoring sheets",
                              "pseudonyms only (names appear only for groups revealed on a recorded reason); "
                              "the answers, with names, ids and e-mails replaced", len(files),
                              min(map(_mtime, files), default=None), max(map(_mtime, files), default=None)))
    exports = sorted(out.root.glob("export.*"))
    if exports:
        inv.items.append(Item("export.*", "grades for the platform", "names, ids, e-mails, points", len(exports),
                              min(map(_mtime, exports)), max(map(_mtime, exports))))
    book_path = out.root / GRADEBOOK
    if book_path.is_file():
        with out.gradebook() as book:
            inv.tables = book.columns()
            inv.rows = {t: book.count(t) for t in inv.tables if t in TABLE_PERSONAL}
            dates = book.folder_dates()
            inv.reveals = inv.rows.get("reveals", 0)
            requests = book.regrade_requests()
            inv.regrade_requests = len(requests)
            inv.open_requests = sum(1 for r in requests if r["outcome"] == "open")
            inv.deletions = book.table_rows("deletions")
        known = [d for d in dates.values() if d]
        inv.items.append(Item(GRADEBOOK + " (+ -wal, -shm, .ledger-head, .render-lock)", "the gradebook (tables below)",
                              "see the tables", len(dates), min(known, default=None), max(known, default=None)))
    inv.outside = [
        "the submitted files themselves: wherever the tutor keeps them (the grader reads them, never copies "
        "them into the output folder; each is unpacked into a temporary folder deleted after grading)",
        "the course secret (no personal data): $SHEET11_SECRET_FILE or ~/.config/sheet11/secret",
        "logs: the grader writes no log files; its console output names submissions (file names)",
    ]
    return inv


# -- purge -----------------------------------------------------------------------------------------
@dataclass
class PurgeOutcome:
    folders: int
    removed: dict[str, Any]
    log_entry: dict[str, Any]


def _parse_day(text: str) -> float:
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise UsageError(f"--before '{text}' is not a date; give it as YYYY-MM-DD (local time)") from None


def purge(out: OutDir, secret: bytes, by: str, before: str | None = None, student: str | None = None,
          rubric_path: str | None = None, now: float | None = None) -> PurgeOutcome:
    """Remove the personal data of the submissions older than ``before`` or of ``student``'s
    group(s); see the module docstring. Refuses while the gradebook does not verify."""
    from grader.tutors.verify import verify
    if (before is None) == (student is None):
        raise UsageError("give either --before DATE or --student ID")
    verdict = verify(out, secret)
    if not verdict.ok:
        raise OutputFolderError("the gradebook does not verify, so nothing was purged (a purge re-seals the "
                                f"chain and would hide the edit): {verdict.problems[0]}. Run `grade verify -o "
                                f"{out}` and restore the gradebook from a backup first")
    with out.gradebook() as book:
        dates = book.folder_dates()
        on_disk = {p.name: _mtime(p / RESULT) for p in out.root.iterdir() if p.is_dir() and (p / RESULT).is_file()}
        if before is not None:
            limit = _parse_day(before)
            folders = sorted(f for f in set(dates) | set(on_disk)
                             if max(dates.get(f, 0.0), on_disk.get(f, 0.0)) < limit)
            scope = f"data last written before {before}"
        else:
            assert student is not None
            folders = sorted(book.folders_of_student(student) | {
                f for f in on_disk if _holds_student(out, f, student)})
            scope = "the submissions of one student's group, on request (the id is not kept)"
        stamp = now or time.time()
        with book.transaction():
            rows = book.delete_folders(folders)
            book.reseal()
        removed: dict[str, Any] = {"submission_folders": 0, "gradebook_rows": rows, "derived_files": 0}
        for f in folders:
            p = out.path(f)
            if p.is_dir():
                shutil.rmtree(p)
                removed["submission_folders"] += 1
        if folders:
            removed["derived_files"] = _remove_derived(out)
            _rewrite_batch(out, rubric_path)
        entry = {"at": datetime.fromtimestamp(stamp).isoformat(timespec="seconds"), "by": by, "scope": scope,
                 "removed": removed}
        with book.transaction():
            book.record_deletion(by, scope, removed, stamp)
        book.compact()
    with (out.root / DELETION_LOG).open("a", encoding="utf-8") as log:
        log.write(json.dumps(entry, sort_keys=True) + "\n")
    return PurgeOutcome(len(folders), removed, entry)


def _holds_student(out: OutDir, folder: str, student: str) -> bool:
    try:
        group = out.read_result(folder).group
    except (OSError, ValueError):
        return False
    return any(str(m.get("student_id", "")) == student for m in group)


def _remove_derived(out: OutDir) -> int:
    """The review pages and sheets and the exports: made from the results, made again on request."""
    n = 0
    review = out.root / "review"
    if review.is_dir() and not review.is_symlink():
        n += sum(1 for p in review.rglob("*") if p.is_file())
        shutil.rmtree(review)
    for p in out.root.glob("export.*"):
        p.unlink()
        n += 1
    for p in out.root.glob(".*.tmp*"):
        p.unlink()
    return n


def _rewrite_batch(out: OutDir, rubric_path: str | None) -> None:
    from grader.rubric import load_rubric
    loaded = out.load_results()
    if not loaded.results:
        for name in (GRADES, SUMMARY, SIMILARITY):
            (out.root / name).unlink(missing_ok=True)
        return
    from grader.tutors.scores import sync_outputs
    sim = out.read_similarity()
    folders = {r.folder for r in loaded.results}
    if sim:
        sim["pairs"] = [p for p in sim.get("pairs", []) if p.get("a") in folders and p.get("b") in folders]
        out.write_similarity(sim)
    load_rubric(rubric_path)
    sync_outputs(out, rubric_path)
