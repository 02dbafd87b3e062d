"""The gradebook's tables (grader/folder/gradebook.py), as SQL: created where missing each time a
gradebook is opened, so an older file gains the tables added since.

:data:`FOLDER_TABLES` hold a submission folder's data (the folder name holds the students'
names; ``grade purge`` deletes from each); :data:`TABLES` are those a caller may read by name
(:meth:`~grader.folder.gradebook_store.Store.table_rows`, ``count``): the chained ones
(grader/folder/ledger.py), the tutors' scores and comments, and the ledger itself.
"""
from __future__ import annotations

from grader.folder import ledger

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
TABLES = (*ledger.CHAINED, "manual_scores", "point_overrides", "saved_comments", "ledger")
