"""The embedded SQLite gradebook of an output folder: every grading run and every result.

Results are keyed by the submission's content hash and the rubric's hash, so a batch that was
stopped is taken up again by running the same command: what is finished is not graded again.

Every row written into a chained table (grader/folder/ledger.py: ``CHAINED``) gets its ledger entry in
the same transaction, under a key derived from the course secret (loaded when the first row is
written, unless given); rows that were there before the ledger existed are sealed as they are the
first time. ``reveals`` records every reveal of a blind group (who, when, why), ``regrade_requests``
every student's regrade request with its replay and resolution, ``deletions``
every purge (what kinds and how many, when, by whom; no personal data). All of the grader's SQL
lives in this module.
The tutors' work lives here too: written answers' scores (``manual_scores``), automatic points a
tutor set by hand with a reason (``point_overrides``), both with every change in
``score_history``; group members a tutor confirmed; comments kept for reuse per question; and
the names tutors gave to groups of alike failing submissions (``learned_names``, grader/checks/learned.py).
"""
from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from grader.folder import ledger
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
-- Added for the tutors' tools (grader/tutors/scores.py); older gradebooks gain these tables on open.
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
-- Who saw which blind group's names, when and why (grader/tutors/privacy.py).
CREATE TABLE IF NOT EXISTS reveals (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    folder TEXT NOT NULL,
    tutor TEXT NOT NULL,
    reason TEXT NOT NULL,
    revealed_at REAL NOT NULL
);
-- Every purge: what kinds of data and how many, when, by whom; never whose (grader/tutors/privacy.py).
CREATE TABLE IF NOT EXISTS deletions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    deleted_at REAL NOT NULL,
    deleted_by TEXT NOT NULL,
    scope TEXT NOT NULL,
    removed_json TEXT NOT NULL
);
-- Names tutors gave to groups of alike failing submissions (grader/checks/learned.py): the latest row of a
-- group_key is its name; an empty title takes the name back. Chained: every naming stays in history.
CREATE TABLE IF NOT EXISTS learned_names (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    group_key TEXT NOT NULL,
    function TEXT NOT NULL,
    title TEXT NOT NULL,
    explanation TEXT NOT NULL,
    tutor TEXT NOT NULL,
    named_at REAL NOT NULL
);
-- Students' regrade requests (grader/tutors/regrades.py): who asked (the id or e-mail the request
-- came with, matched to the group's folder), about which question, their words, when; the replay
-- beside it; the resolution (upheld with the points before and after, or declined), its reason,
-- who and when. A row changes only by a replay and by its one resolution, each sealed anew.
CREATE TABLE IF NOT EXISTS regrade_requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    folder TEXT NOT NULL,
    question TEXT NOT NULL,
    student TEXT NOT NULL,
    text TEXT NOT NULL,
    requested_at REAL NOT NULL,
    source TEXT NOT NULL,
    recorded_by TEXT NOT NULL,
    recorded_at REAL NOT NULL,
    outcome TEXT NOT NULL DEFAULT 'open',
    old_points REAL,
    new_points REAL,
    reason TEXT NOT NULL DEFAULT '',
    resolved_by TEXT NOT NULL DEFAULT '',
    resolved_at REAL,
    replay_json TEXT NOT NULL DEFAULT '',
    replayed_at REAL
);
-- The hash chain over the tables above (grader/folder/ledger.py).
CREATE TABLE IF NOT EXISTS ledger (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    tbl TEXT NOT NULL,
    ref TEXT NOT NULL,
    digest TEXT NOT NULL,
    mac TEXT NOT NULL
);
"""
#: Tables that hold a submission folder's data (the folder name holds the students' names).
FOLDER_TABLES = ("results", "run_results", "manual_scores", "point_overrides", "score_history", "confirmed_members",
                 "reveals", "regrade_requests")
_TABLES = (*ledger.CHAINED, "manual_scores", "point_overrides", "saved_comments", "ledger")


class Gradebook:
    def __init__(self, path: Path, key: bytes | None = None) -> None:
        """``key``: the ledger's key (grader.folder.ledger.ledger_key); by default derived from the course
        secret when the first chained row is written."""
        self.path = path
        self._key = key
        self._unsealed_head = False
        self.db = sqlite3.connect(path, timeout=30, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA secure_delete=ON")  # a deleted row's bytes are overwritten, not left behind
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Gradebook:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- the ledger (grader/folder/ledger.py) ----------------------------------------------------------
    def key(self) -> bytes:
        if self._key is None:
            from grader.checks.secret import load_secret
            self._key = ledger.ledger_key(load_secret(create=False))
        return self._key

    def _row(self, table: str, where: dict[str, Any]) -> dict[str, Any]:
        assert table in _TABLES
        cur = self.db.execute(f"SELECT * FROM {table} WHERE " + " AND ".join(f"{c}=?" for c in where),  # noqa: S608
                              tuple(where.values()))
        names = [d[0] for d in cur.description]
        row = cur.fetchone()
        assert row is not None, f"{table} {where}: no such row"
        return dict(zip(names, row))

    def _last_link(self) -> tuple[int, str]:
        row = self.db.execute("SELECT COUNT(*), (SELECT mac FROM ledger ORDER BY seq DESC LIMIT 1) FROM ledger"
                              ).fetchone()
        return int(row[0]), str(row[1] or "")

    def _append(self, table: str, row: dict[str, Any]) -> None:
        ref = ledger.ref_of(table, row)
        digest = ledger.row_digest(table, row)
        _, previous = self._last_link()
        self.db.execute("INSERT INTO ledger (tbl, ref, digest, mac) VALUES (?, ?, ?, ?)",
                        (table, ref, digest, ledger.link(self.key(), previous, table, ref, digest)))
        self._unsealed_head = True

    def _seal(self, table: str, **where: Any) -> None:
        """The ledger entry of the row of ``table`` that ``where`` names (inside a transaction)."""
        if self._last_link()[0] == 0:
            self._adopt()
        self._append(table, self._row(table, where))

    def _adopt(self) -> None:
        """Seal every row written before the ledger existed, as it is (an older gradebook)."""
        for table in ledger.CHAINED:
            for row in self.table_rows(table):
                self._append(table, row)

    def _write_head(self) -> None:
        if self._unsealed_head:
            count, last = self._last_link()
            ledger.write_head(self.path, self.key(), count, last)
            self._unsealed_head = False

    @contextmanager
    def _atomic(self) -> Iterator[None]:
        """A transaction, or the caller's where one is open."""
        if self.db.in_transaction:
            yield
        else:
            with self.transaction():
                yield

    def ledger_entries(self) -> list[dict[str, Any]]:
        return self.table_rows("ledger")

    def table_rows(self, table: str) -> list[dict[str, Any]]:
        """Every row of one of the gradebook's tables, as stored, in rowid order."""
        if table not in _TABLES:
            raise ValueError(f"no table {table} in the gradebook")
        cur = self.db.execute(f"SELECT * FROM {table} ORDER BY rowid")  # noqa: S608 - a fixed name
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r)) for r in cur]

    def reseal(self) -> None:
        """A new chain over the rows as they are now (inside a transaction): only ``grade purge``,
        after it checked the old chain and deleted on purpose, and recorded that it did."""
        self.db.execute("DELETE FROM ledger")
        self.db.execute("DELETE FROM sqlite_sequence WHERE name='ledger'")
        self._adopt()

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
                cur = self.db.execute(f"DELETE FROM {table} WHERE folder=?", (folder,))  # noqa: S608
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

    def compact(self) -> None:
        """Rewrite the file without the free pages deleted rows left, and empty the WAL."""
        self.db.execute("VACUUM")
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def columns(self) -> dict[str, list[str]]:
        """``table -> its columns``, for the privacy report."""
        out = {}
        for (name,) in self.db.execute("SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' "
                                       "ORDER BY name"):
            out[name] = [r[1] for r in self.db.execute(f"PRAGMA table_info({name})")]
        return out

    def count(self, table: str) -> int:
        if table not in _TABLES:
            raise ValueError(f"no table {table} in the gradebook")
        return int(self.db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])  # noqa: S608

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
        self._write_head()

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
