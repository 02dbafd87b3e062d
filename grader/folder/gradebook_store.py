"""The gradebook's connection and its chained writes: the part of grader/folder/gradebook.py that
every record goes through.

A :class:`Store` opens the SQLite file (WAL, ``secure_delete``: a deleted row's bytes are
overwritten), creates missing tables, and gives the records their transactions: every row written
into a chained table gets its ledger entry in the same transaction (:meth:`Store._seal`), under
a key derived from the course secret (loaded when the first row is written, unless given); rows
written before the ledger existed are sealed as they are the first time (:meth:`Store._adopt`);
the ledger's head file is written after each commit. Tables are named only from
:data:`~grader.folder.gradebook_schema.TABLES`, never from a caller's text.
"""
from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

from grader.folder import ledger
from grader.folder.gradebook_schema import SCHEMA, TABLES


class Store:
    """An open gradebook file: the connection, the ledger chain and transactions."""

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

    def __enter__(self) -> Self:
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
        assert table in TABLES
        cur = self.db.execute(f"SELECT * FROM {table} WHERE " + " AND ".join(f"{c}=?" for c in where),
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
        if table not in TABLES:
            raise ValueError(f"no table {table} in the gradebook")
        cur = self.db.execute(f"SELECT * FROM {table} ORDER BY rowid")
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r)) for r in cur]

    def reseal(self) -> None:
        """A new chain over the rows as they are now (inside a transaction): only ``grade purge``,
        after it checked the old chain and deleted on purpose, and recorded that it did."""
        self.db.execute("DELETE FROM ledger")
        self.db.execute("DELETE FROM sqlite_sequence WHERE name='ledger'")
        self._adopt()

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
        if table not in TABLES:
            raise ValueError(f"no table {table} in the gradebook")
        return int(self.db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])

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
