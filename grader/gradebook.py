"""The embedded SQLite gradebook of an output folder: every grading run and every result.

Results are keyed by the submission's content hash and the rubric's hash, so a batch that was
stopped is taken up again by running the same command: what is finished is not graded again.

The tutors' work lives here too: written answers' scores (``manual_scores``), automatic points a
tutor set by hand with a reason (``point_overrides``), both with every change in
``score_history``; group members a tutor confirmed; and comments kept for reuse per question.
"""
from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from grader.result import SubmissionResult

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started REAL NOT NULL,
    rubric_sha256 TEXT NOT NULL,
    inputs INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS results (
    folder TEXT NOT NULL,
    submission TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    rubric_sha256 TEXT NOT NULL,
    status TEXT NOT NULL,
    points REAL NOT NULL,
    result_json TEXT NOT NULL,
    graded_at REAL NOT NULL,
    run_id INTEGER REFERENCES runs(id),
    PRIMARY KEY (folder, sha256, rubric_sha256)
);
-- Added for the tutors' tools (grader/scores.py); older gradebooks gain these tables on open.
CREATE TABLE IF NOT EXISTS run_results (
    run_id INTEGER NOT NULL REFERENCES runs(id),
    position INTEGER NOT NULL,
    folder TEXT NOT NULL,
    submission TEXT NOT NULL,
    status TEXT NOT NULL,
    points REAL NOT NULL,
    questions_json TEXT NOT NULL,   -- {qid: [points, status]} as graded in that run
    PRIMARY KEY (run_id, folder)
);
CREATE TABLE IF NOT EXISTS manual_scores (
    folder TEXT NOT NULL,
    question TEXT NOT NULL,
    submission TEXT NOT NULL,
    points REAL NOT NULL,
    comment TEXT NOT NULL,
    tutor TEXT NOT NULL,
    scored_at REAL NOT NULL,
    PRIMARY KEY (folder, question)
);
CREATE TABLE IF NOT EXISTS score_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    folder TEXT NOT NULL,
    question TEXT NOT NULL,
    submission TEXT NOT NULL,
    old_points REAL,
    new_points REAL NOT NULL,
    old_comment TEXT,
    new_comment TEXT NOT NULL,
    tutor TEXT NOT NULL,
    changed_at REAL NOT NULL,
    sheet TEXT NOT NULL
);
-- Automatic points a tutor set by hand, with the reason (grade serve); their changes go into
-- score_history too (sheet "override", new_comment the reason).
CREATE TABLE IF NOT EXISTS point_overrides (
    folder TEXT NOT NULL,
    question TEXT NOT NULL,
    submission TEXT NOT NULL,
    points REAL NOT NULL,
    reason TEXT NOT NULL,
    tutor TEXT NOT NULL,
    set_at REAL NOT NULL,
    PRIMARY KEY (folder, question)
);
-- Comments a tutor keeps for reuse, per written question (grade serve).
CREATE TABLE IF NOT EXISTS saved_comments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    question TEXT NOT NULL,
    text TEXT NOT NULL,
    tutor TEXT NOT NULL,
    saved_at REAL NOT NULL
);
-- Group members the file name does not name, confirmed by a tutor (`grade confirm`).
CREATE TABLE IF NOT EXISTS confirmed_members (
    folder TEXT NOT NULL,
    student_id TEXT NOT NULL,
    tutor TEXT NOT NULL,
    confirmed_at REAL NOT NULL,
    PRIMARY KEY (folder, student_id)
);
"""


class Gradebook:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = sqlite3.connect(path, timeout=30, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Gradebook:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def start_run(self, rubric_sha256: str, inputs: int) -> int:
        cur = self.db.execute("INSERT INTO runs (started, rubric_sha256, inputs) VALUES (?, ?, ?)",
                              (time.time(), rubric_sha256, inputs))
        return int(cur.lastrowid or 0)

    def record(self, run_id: int, result: SubmissionResult) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (result.folder, result.submission, result.sha256, result.rubric_sha256,
             result.status, float(result.points), json.dumps(result.to_json(), ensure_ascii=False),
             time.time(), run_id))

    # -- runs: what every run graded, so a re-grade can show what changed -------------------
    def record_run(self, run_id: int, results: Sequence[SubmissionResult]) -> None:
        """The points of every result of a run (graded now or kept), in the run's order."""
        with self.transaction():
            for position, r in enumerate(results):
                questions = {qid: [round(q.points, 4), q.status] for qid, q in r.questions.items()}
                self.db.execute("INSERT OR REPLACE INTO run_results VALUES (?, ?, ?, ?, ?, ?, ?)",
                                (run_id, position, r.folder, r.submission, r.status,
                                 float(r.points), json.dumps(questions, sort_keys=True)))

    def previous_points(self, folder: str, before_run: int) -> dict[str, Any] | None:
        """``{"status", "points", "questions": {qid: [points, status]}}`` of ``folder`` in the
        latest run before ``before_run``, or from the latest stored result (older gradebooks)."""
        row = self.db.execute("SELECT status, points, questions_json FROM run_results WHERE folder=? AND run_id<? "
                              "ORDER BY run_id DESC LIMIT 1", (folder, before_run)).fetchone()
        if row:
            return {"status": row[0], "points": row[1], "questions": json.loads(row[2])}
        row = self.db.execute("SELECT result_json FROM results WHERE folder=? AND (run_id IS NULL OR run_id<?) "
                              "ORDER BY graded_at DESC LIMIT 1", (folder, before_run)).fetchone()
        if not row:
            return None
        data = json.loads(row[0])
        return {"status": data["status"], "points": data["points"],
                "questions": {qid: [q.get("points", 0.0), q.get("status", "")] for qid, q in data["questions"].items()}}

    def latest_run_folders(self) -> list[str]:
        """The folders of the latest run that recorded any, in that run's order."""
        row = self.db.execute("SELECT MAX(run_id) FROM run_results").fetchone()
        if not row or row[0] is None:
            return []
        return [r[0] for r in self.db.execute("SELECT folder FROM run_results WHERE run_id=? ORDER BY position",
                                              (row[0],))]

    # -- manual scores --------------------------------------------------------------------------
    def manual_scores(self, folder: str | None = None) -> dict[str, dict[str, dict[str, Any]]]:
        """``folder -> question -> {points, comment, tutor, scored_at}``."""
        sql = "SELECT folder, question, points, comment, tutor, scored_at FROM manual_scores"
        rows = self.db.execute(sql + " WHERE folder=?", (folder,)) if folder else self.db.execute(sql)
        out: dict[str, dict[str, dict[str, Any]]] = {}
        for f, q, points, comment, tutor, at in rows:
            out.setdefault(f, {})[q] = {"points": points, "comment": comment, "tutor": tutor, "scored_at": at}
        return out

    def set_manual_score(self, folder: str, question: str, submission: str, points: float, comment: str,
                         tutor: str, sheet: str, now: float) -> bool:
        """Store one score (inside a caller's transaction); False when it is already so."""
        old = self.db.execute("SELECT points, comment FROM manual_scores WHERE folder=? AND question=?",
                              (folder, question)).fetchone()
        if old and float(old[0]) == float(points) and old[1] == comment:
            return False
        self.db.execute("INSERT OR REPLACE INTO manual_scores VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (folder, question, submission, points, comment, tutor, now))
        self.db.execute("INSERT INTO score_history (folder, question, submission, old_points, new_points, "
                        "old_comment, new_comment, tutor, changed_at, sheet) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (folder, question, submission, old[0] if old else None, points,
                         old[1] if old else None, comment, tutor, now, sheet))
        return True

    # -- automatic points set by a tutor ---------------------------------------------------------
    def overrides(self, folder: str | None = None) -> dict[str, dict[str, dict[str, Any]]]:
        """``folder -> question -> {points, reason, tutor, set_at}`` of every override."""
        sql = "SELECT folder, question, points, reason, tutor, set_at FROM point_overrides"
        rows = self.db.execute(sql + " WHERE folder=?", (folder,)) if folder else self.db.execute(sql)
        out: dict[str, dict[str, dict[str, Any]]] = {}
        for f, q, points, reason, tutor, at in rows:
            out.setdefault(f, {})[q] = {"points": points, "reason": reason, "tutor": tutor, "set_at": at}
        return out

    def set_override(self, folder: str, question: str, submission: str, points: float, reason: str,
                     tutor: str, now: float) -> bool:
        """Store one override with its history row (inside a caller's transaction); False when it
        is already so."""
        old = self.db.execute("SELECT points, reason FROM point_overrides WHERE folder=? AND question=?",
                              (folder, question)).fetchone()
        if old and float(old[0]) == float(points) and old[1] == reason:
            return False
        self.db.execute("INSERT OR REPLACE INTO point_overrides VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (folder, question, submission, points, reason, tutor, now))
        self.db.execute("INSERT INTO score_history (folder, question, submission, old_points, new_points, "
                        "old_comment, new_comment, tutor, changed_at, sheet) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (folder, question, submission, old[0] if old else None, points,
                         old[1] if old else None, reason, tutor, now, "override"))
        return True

    # -- comments kept for reuse ------------------------------------------------------------------
    def saved_comments(self, question: str) -> list[dict[str, Any]]:
        """The comments kept for ``question``, oldest first: ``{id, text, tutor, saved_at}``."""
        rows = self.db.execute("SELECT id, text, tutor, saved_at FROM saved_comments WHERE question=? ORDER BY id",
                               (question,))
        return [{"id": r[0], "text": r[1], "tutor": r[2], "saved_at": r[3]} for r in rows]

    def keep_comment(self, question: str, text: str, tutor: str, now: float) -> int:
        """Keep ``text`` for reuse on ``question`` (the same text twice is kept once); its id."""
        row = self.db.execute("SELECT id FROM saved_comments WHERE question=? AND text=?", (question, text)).fetchone()
        if row:
            return int(row[0])
        cur = self.db.execute("INSERT INTO saved_comments (question, text, tutor, saved_at) VALUES (?, ?, ?, ?)",
                              (question, text, tutor, now))
        return int(cur.lastrowid or 0)

    def edit_comment(self, question: str, comment_id: int, text: str, tutor: str, now: float) -> bool:
        """Change a kept comment's text (empty text: drop it); False when there is no such comment."""
        if not text:
            cur = self.db.execute("DELETE FROM saved_comments WHERE id=? AND question=?", (comment_id, question))
        else:
            cur = self.db.execute("UPDATE saved_comments SET text=?, tutor=?, saved_at=? WHERE id=? AND question=?",
                                  (text, tutor, now, comment_id, question))
        return cur.rowcount > 0

    def history(self, folder: str | None = None) -> list[dict[str, Any]]:
        sql = ("SELECT folder, question, submission, old_points, new_points, old_comment, new_comment, tutor, "
               "changed_at, sheet FROM score_history")
        rows = self.db.execute(sql + " WHERE folder=? ORDER BY id", (folder,)) if folder \
            else self.db.execute(sql + " ORDER BY id")
        keys = ("folder", "question", "submission", "old_points", "new_points", "old_comment", "new_comment",
                "tutor", "changed_at", "sheet")
        return [dict(zip(keys, r)) for r in rows]

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All or nothing: BEGIN IMMEDIATE ... COMMIT, rolled back on any exception."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # -- group members confirmed by a tutor ---------------------------------------------------
    def confirm_member(self, folder: str, student_id: str, tutor: str, now: float) -> bool:
        """Confirm ``student_id`` as a member of ``folder``'s group; False when it already was."""
        cur = self.db.execute("INSERT OR IGNORE INTO confirmed_members VALUES (?, ?, ?, ?)",
                              (folder, student_id, tutor, now))
        return cur.rowcount > 0

    def confirmed_members(self) -> dict[str, set[str]]:
        """``folder -> {student_id}`` of every confirmed member."""
        out: dict[str, set[str]] = {}
        for folder, sid in self.db.execute("SELECT folder, student_id FROM confirmed_members"):
            out.setdefault(folder, set()).add(sid)
        return out
