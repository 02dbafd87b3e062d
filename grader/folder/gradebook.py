"""The embedded SQLite gradebook of an output folder: every grading run and every result.

Results are keyed by the submission's content hash and the rubric's hash, so a batch that was
stopped is taken up again by running the same command: what is finished is not graded again.

Every row written into a chained table (grader/folder/ledger.py: ``CHAINED``) gets its ledger entry in
the same transaction, under a key derived from the course secret (loaded when the first row is
written, unless given); rows that were there before the ledger existed are sealed as they are the
first time. ``reveals`` records every reveal of a blind group (who, when, why), ``regrade_requests``
every student's regrade request with its replay and resolution, ``deletions``
every purge (what kinds and how many, when, by whom; no personal data). All of the grader's SQL
lives in this module and its two siblings: the tables in grader/folder/gradebook_schema.py, the
connection, the ledger chain and transactions in grader/folder/gradebook_store.py.
The tutors' work lives here too: written answers' scores (``manual_scores``), automatic points a
tutor set by hand with a reason (``point_overrides``), both with every change in
``score_history``; group members a tutor confirmed; comments kept for reuse per question; and
the names tutors gave to groups of alike failing submissions (``learned_names``, grader/checks/learned.py).
"""
from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from typing import Any

from grader.folder.gradebook_schema import FOLDER_TABLES, SCHEMA
from grader.folder.gradebook_store import Store
from grader.result import SubmissionResult

__all__ = ["FOLDER_TABLES", "SCHEMA", "Gradebook"]


class Gradebook(Store):
    """An output folder's gradebook: the runs and results, the tutors' work, regrade requests and
    the records of personal data (reveals, purges)."""

    # -- personal data: reveals, purges ----------------------------------------------------------
    def record_reveal(self, folder: str, tutor: str, reason: str, now: float) -> None:
        with self._atomic():
            cur = self.db.execute("INSERT INTO reveals (folder, tutor, reason, revealed_at) VALUES (?, ?, ?, ?)",
                                  (folder, tutor, reason, now))
            self._seal("reveals", id=cur.lastrowid)

    def folder_dates(self) -> dict[str, float]:
        """``folder -> `` the latest time anything of it was written (graded, scored, confirmed, revealed,
        a regrade request recorded or resolved)."""
        out: dict[str, float] = {}
        for sql in ("SELECT folder, MAX(graded_at) FROM results GROUP BY folder",
                    "SELECT folder, MAX(changed_at) FROM score_history GROUP BY folder",
                    "SELECT folder, MAX(confirmed_at) FROM confirmed_members GROUP BY folder",
                    "SELECT folder, MAX(revealed_at) FROM reveals GROUP BY folder",
                    "SELECT folder, MAX(MAX(requested_at, recorded_at, COALESCE(resolved_at, 0))) "
                    "FROM regrade_requests GROUP BY folder"):
            for folder, at in self.db.execute(sql):
                out[folder] = max(out.get(folder, 0.0), float(at or 0.0))
        for (folder,) in self.db.execute("SELECT DISTINCT folder FROM run_results"):
            out.setdefault(folder, 0.0)
        return out

    def folders_of_student(self, student_id: str) -> set[str]:
        """The folders whose stored result or confirmed members hold ``student_id``."""
        found = {f for (f,) in self.db.execute("SELECT folder FROM confirmed_members WHERE student_id=?",
                                               (student_id,))}
        for folder, text in self.db.execute("SELECT folder, result_json FROM results"):
            try:
                group = json.loads(text).get("group") or []
            except ValueError:
                continue
            if any(str(m.get("student_id", "")) == student_id for m in group if isinstance(m, dict)):
                found.add(folder)
        return found

    def delete_folders(self, folders: Iterable[str]) -> dict[str, int]:
        """Delete every row of ``folders`` (inside a transaction); ``table -> rows deleted``."""
        counts: dict[str, int] = {}
        for folder in folders:
            for table in FOLDER_TABLES:
                cur = self.db.execute(f"DELETE FROM {table} WHERE folder=?", (folder,))
                counts[table] = counts.get(table, 0) + max(cur.rowcount, 0)
        return counts

    # -- regrade requests (grader/tutors/regrades.py) ---------------------------------------------
    def add_regrade_request(self, folder: str, question: str, student: str, text: str, requested_at: float,
                            source: str, tutor: str, now: float) -> tuple[int, bool]:
        """Record a request; ``(id, True)``, or ``(id of the same request, False)`` when one with the
        same group, question, student, words and date is there already (a CSV imported twice)."""
        with self._atomic():
            row = self.db.execute("SELECT id FROM regrade_requests WHERE folder=? AND question=? AND student=? AND "
                                  "text=? AND requested_at=?", (folder, question, student, text, requested_at)
                                  ).fetchone()
            if row:
                return int(row[0]), False
            cur = self.db.execute("INSERT INTO regrade_requests (folder, question, student, text, requested_at, "
                                  "source, recorded_by, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                                  (folder, question, student, text, requested_at, source, tutor, now))
            request_id = int(cur.lastrowid or 0)
            self._seal("regrade_requests", id=request_id)
        return request_id, True

    def regrade_requests(self, folder: str | None = None) -> list[dict[str, Any]]:
        """Every request (of ``folder``), oldest first, as stored."""
        cur = (self.db.execute("SELECT * FROM regrade_requests WHERE folder=? ORDER BY id", (folder,)) if folder
               else self.db.execute("SELECT * FROM regrade_requests ORDER BY id"))
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r)) for r in cur]

    def regrade_request(self, request_id: int) -> dict[str, Any] | None:
        cur = self.db.execute("SELECT * FROM regrade_requests WHERE id=?", (request_id,))
        names = [d[0] for d in cur.description]
        row = cur.fetchone()
        return None if row is None else dict(zip(names, row))

    def record_replay(self, request_id: int, replay_json: str, now: float) -> bool:
        """Keep the latest replay beside a request; False when there is no such request."""
        with self._atomic():
            cur = self.db.execute("UPDATE regrade_requests SET replay_json=?, replayed_at=? WHERE id=?",
                                  (replay_json, now, request_id))
            if cur.rowcount > 0:
                self._seal("regrade_requests", id=request_id)
        return cur.rowcount > 0

    def resolve_regrade_request(self, request_id: int, outcome: str, reason: str, old_points: float | None,
                                new_points: float | None, tutor: str, now: float) -> bool:
        """Resolve an open request (inside the caller's transaction, with the score it changes);
        False when it is not open (resolved meanwhile by someone else)."""
        assert outcome in ("upheld", "declined")
        cur = self.db.execute("UPDATE regrade_requests SET outcome=?, reason=?, old_points=?, new_points=?, "
                              "resolved_by=?, resolved_at=? WHERE id=? AND outcome='open'",
                              (outcome, reason, old_points, new_points, tutor, now, request_id))
        if cur.rowcount > 0:
            self._seal("regrade_requests", id=request_id)
        return cur.rowcount > 0

    def record_deletion(self, by: str, scope: str, removed: dict[str, Any], now: float) -> None:
        cur = self.db.execute("INSERT INTO deletions (deleted_at, deleted_by, scope, removed_json) VALUES (?, ?, ?, ?)",
                              (now, by, scope, json.dumps(removed, sort_keys=True)))
        self._seal("deletions", id=cur.lastrowid)

    # -- runs -------------------------------------------------------------------------------------
    def start_run(self, rubric_sha256: str, inputs: int) -> int:
        with self._atomic():
            cur = self.db.execute("INSERT INTO runs (started, rubric_sha256, inputs) VALUES (?, ?, ?)",
                                  (time.time(), rubric_sha256, inputs))
            run_id = int(cur.lastrowid or 0)
            self._seal("runs", id=run_id)
        return run_id

    def record(self, run_id: int, result: SubmissionResult) -> None:
        with self._atomic():
            self.db.execute(
                "INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (result.folder, result.submission, result.sha256, result.rubric_sha256,
                 result.status, float(result.points), json.dumps(result.to_json(), ensure_ascii=False),
                 time.time(), run_id))
            self._seal("results", folder=result.folder, sha256=result.sha256, rubric_sha256=result.rubric_sha256)

    # -- runs: what every run graded, so a re-grade can show what changed -------------------
    def record_run(self, run_id: int, results: Sequence[SubmissionResult]) -> None:
        """The points of every result of a run (graded now or kept), in the run's order."""
        with self.transaction():
            for position, r in enumerate(results):
                questions = {qid: [round(q.points, 4), q.status] for qid, q in r.questions.items()}
                self.db.execute("INSERT OR REPLACE INTO run_results VALUES (?, ?, ?, ?, ?, ?, ?)",
                                (run_id, position, r.folder, r.submission, r.status,
                                 float(r.points), json.dumps(questions, sort_keys=True)))
                self._seal("run_results", run_id=run_id, folder=r.folder)

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
        cur = self.db.execute("INSERT INTO score_history (folder, question, submission, old_points, new_points, "
                              "old_comment, new_comment, tutor, changed_at, sheet) "
                              "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                              (folder, question, submission, old[0] if old else None, points,
                               old[1] if old else None, comment, tutor, now, sheet))
        self._seal("score_history", id=cur.lastrowid)
        return True

    def latest_change(self, folder: str, question: str) -> dict[str, Any] | None:
        """The latest score_history row of one answer (``id``, ``tutor``, ``changed_at``, ``new_points``)."""
        row = self.db.execute("SELECT id, tutor, changed_at, new_points FROM score_history WHERE folder=? AND "
                              "question=? ORDER BY id DESC LIMIT 1", (folder, question)).fetchone()
        return None if row is None else {"id": row[0], "tutor": row[1], "changed_at": row[2], "new_points": row[3]}
    def changed_by_others(self, folder: str, question: str, since: int, tutor: str) -> bool:
        """Whether anyone but ``tutor`` changed this answer's score after history row ``since``."""
        row = self.db.execute("SELECT COUNT(*) FROM score_history WHERE folder=? AND question=? AND id>? AND "
                              "tutor!=?", (folder, question, since, tutor)).fetchone()
        return bool(row[0])

    def durations(self) -> list[tuple[str, str, Any]]:
        """(folder, sha256, seconds) of every stored result, oldest first (the batch's order,
        grader/batch/schedule.py); seconds as stored (None where a result has none). Raises
        sqlite3.Error where SQLite lacks the JSON functions."""
        return [(str(f), str(s), sec) for f, s, sec in self.db.execute(
            "SELECT folder, sha256, json_extract(result_json, '$.seconds') FROM results ORDER BY graded_at")]

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
        cur = self.db.execute("INSERT INTO score_history (folder, question, submission, old_points, new_points, "
                              "old_comment, new_comment, tutor, changed_at, sheet) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, "
                              "?)", (folder, question, submission, old[0] if old else None, points,
                                     old[1] if old else None, reason, tutor, now, "override"))
        self._seal("score_history", id=cur.lastrowid)  # in the hash chain like every history row
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

    # -- names of groups of alike failing submissions (grader/checks/learned.py) ----------------------
    def name_group(self, group_key: str, function: str, title: str, explanation: str, tutor: str,
                   now: float) -> bool:
        """Name a group (an empty title takes its name back); False when it is already so."""
        with self._atomic():
            row = self.db.execute("SELECT title, explanation FROM learned_names WHERE group_key=? ORDER BY id DESC "
                                  "LIMIT 1", (group_key,)).fetchone()
            if (row and (row[0], row[1]) == (title, explanation)) or (row is None and not title):
                return False
            cur = self.db.execute("INSERT INTO learned_names (group_key, function, title, explanation, tutor, "
                                  "named_at) VALUES (?, ?, ?, ?, ?, ?)",
                                  (group_key, function, title, explanation, tutor, now))
            self._seal("learned_names", id=cur.lastrowid)
        return True

    def group_names(self) -> dict[str, dict[str, Any]]:
        """``group key -> {function, title, explanation, tutor, named_at}``: each group's latest
        name, groups whose name was taken back left out."""
        out: dict[str, dict[str, Any]] = {}
        for key, function, title, explanation, tutor, at in self.db.execute(
                "SELECT group_key, function, title, explanation, tutor, named_at FROM learned_names ORDER BY id"):
            out[key] = {"function": function, "title": title, "explanation": explanation, "tutor": tutor,
                        "named_at": at}
        return {k: v for k, v in out.items() if v["title"]}

    # -- group members confirmed by a tutor ---------------------------------------------------
    def confirm_member(self, folder: str, student_id: str, tutor: str, now: float) -> bool:
        """Confirm ``student_id`` as a member of ``folder``'s group; False when it already was."""
        with self._atomic():
            cur = self.db.execute("INSERT OR IGNORE INTO confirmed_members VALUES (?, ?, ?, ?)",
                                  (folder, student_id, tutor, now))
            if cur.rowcount > 0:
                self._seal("confirmed_members", folder=folder, student_id=student_id)
        return cur.rowcount > 0

    def confirmed_members(self) -> dict[str, set[str]]:
        """``folder -> {student_id}`` of every confirmed member."""
        out: dict[str, set[str]] = {}
        for folder, sid in self.db.execute("SELECT folder, student_id FROM confirmed_members"):
            out.setdefault(folder, set()).add(sid)
        return out
