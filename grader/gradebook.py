"""The embedded SQLite gradebook of an output folder: every grading run and every result.

Results are keyed by the submission's content hash and the rubric's hash, so a batch that was
stopped is taken up again by running the same command: what is finished is not graded again.
"""
from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

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

    def record(self, run_id: int, result: dict[str, Any]) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (result["folder"], result["submission"], result["sha256"], result["rubric_sha256"],
             result["status"], float(result["points"]), json.dumps(result), time.time(), run_id))

    def lookup(self, folder: str, sha256: str, rubric_sha256: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT result_json FROM results WHERE folder=? AND sha256=? AND rubric_sha256=?",
                              (folder, sha256, rubric_sha256)).fetchone()
        return json.loads(row[0]) if row else None
