"""A history that shows tampering: the gradebook's rows as a hash chain keyed by the course secret.

Every row ``grade`` writes into a chained table of the gradebook (``runs``, ``results``,
``run_results``, ``score_history``, ``confirmed_members``, ``reveals``, ``regrade_requests``,
``deletions``, ``learned_names``) gets an entry in the ``ledger`` table, in the same transaction: the table, the
row's key, the SHA-256 of the row's values (:func:`row_digest`) and a MAC (:func:`link`):
HMAC-SHA256, under a key derived from the course secret (:func:`ledger_key`), of the previous
entry's MAC, the table, the key and the digest. A row replaced later (a result graded again, a
regrade request replayed or resolved) gets a new entry; the latest entry of a row is the one its
values must match. ``manual_scores`` is not chained itself: it must equal what
the chained ``score_history`` says (the latest score of every answer).

:func:`verify_gradebook` (with grader/tutors/verify.py's ``verify``: ``grade verify -o DIR``) walks the
chain and names, in the chain's order, every problem: an entry whose MAC does not follow (the
ledger was edited), a row whose values differ from its latest entry (edited outside ``grade``), a
row with no entry (added outside ``grade``), an entry whose row is gone (deleted outside
``grade``), a manual score the history does not give, and a ``result.json`` that differs from the
gradebook (its status, group, points). The first of them is "the first row edited outside
grade". Without the secret no one can write an entry that verifies; with it, ``grade`` itself
re-seals the chain only where it deletes on purpose (``grade purge``), and records that it did.

The end of the chain (the number of entries and the last MAC, under the same key) is also written
beside the gradebook (``gradebook.ledger-head``), so entries cut off the end are found as well.
"""
from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: table -> the columns that name one of its rows (the ``ref`` of its ledger entries).
CHAINED: dict[str, tuple[str, ...]] = {
    "runs": ("id",),
    "results": ("folder", "sha256", "rubric_sha256"),
    "run_results": ("run_id", "folder"),
    "score_history": ("id",),
    "confirmed_members": ("folder", "student_id"),
    "reveals": ("id",),
    "regrade_requests": ("id",),
    "deletions": ("id",),
    "learned_names": ("id",),
}
HEAD_SUFFIX = ".ledger-head"


def ledger_key(secret: bytes) -> bytes:
    """The chain's key: derived from the course secret, never the secret itself."""
    from grader.checks.secret import derive
    return derive(secret, "gradebook ledger")


def ref_of(table: str, row: Mapping[str, Any]) -> str:
    return json.dumps([row[c] for c in CHAINED[table]], ensure_ascii=False)


def row_digest(table: str, row: Mapping[str, Any]) -> str:
    """SHA-256 of a row's values, column by column, in a canonical JSON form."""
    text = json.dumps([table, sorted(row.items())], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def link(key: bytes, previous: str, table: str, ref: str, digest: str) -> str:
    message = "\x1f".join((previous, table, ref, digest)).encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def head_mac(key: bytes, count: int, last: str) -> str:
    return hmac.new(key, f"head\x1f{count}\x1f{last}".encode(), hashlib.sha256).hexdigest()


def write_head(gradebook: Path, key: bytes, count: int, last: str) -> None:
    """The chain's end beside the gradebook, written atomically (write, then rename)."""
    import os
    import tempfile
    path = gradebook.with_name(gradebook.name + HEAD_SUFFIX)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(json.dumps({"entries": count, "last": last, "mac": head_mac(key, count, last)}) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_head(gradebook: Path) -> dict[str, Any] | None:
    path = gradebook.with_name(gradebook.name + HEAD_SUFFIX)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {"entries": -1, "last": "", "mac": ""}
    return data if isinstance(data, dict) else {"entries": -1, "last": "", "mac": ""}


@dataclass
class Verdict:
    """What :func:`verify` found; ``problems`` in the chain's order, the first one first."""

    entries: int = 0
    rows: int = 0
    results: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _describe(table: str, row: Mapping[str, Any]) -> str:
    if table == "score_history":
        return (f"score_history row {row['id']} ({row['question']} of '{row['folder']}', {row['new_points']:g} "
                f"points by {row['tutor']})")
    if table == "results":
        return f"results row of '{row['folder']}' (status {row['status']}, {row['points']:g} points)"
    if table == "run_results":
        return f"run_results row of '{row['folder']}' in run {row['run_id']} ({row['points']:g} points)"
    if table == "regrade_requests":
        return (f"regrade_requests row {row['id']} ({row['question']} of '{row['folder']}', {row['outcome']}"
                + (f" by {row['resolved_by']}" if row.get("resolved_by") else "") + ")")
    return f"{table} row {ref_of(table, row)}"


def verify_gradebook(entries: Sequence[Mapping[str, Any]], tables: Mapping[str, Sequence[Mapping[str, Any]]],
                     manual: Sequence[Mapping[str, Any]], key: bytes,
                     head: Mapping[str, Any] | None, overrides: Sequence[Mapping[str, Any]] = ()) -> Verdict:
    """Check the chain ``entries`` (``seq, tbl, ref, digest, mac`` in order) against the rows of
    ``tables``, and ``manual_scores`` and ``point_overrides`` (automatic points a tutor set, history
    rows of sheet ``override``) against ``score_history``."""
    verdict = Verdict(entries=len(entries))
    chain = _follow_chain(entries, key)
    if isinstance(chain, str):
        verdict.problems.append(chain)
        return verdict  # nothing after a broken link can be trusted
    previous, latest = chain
    verdict.problems += _check_head(head, key, len(entries), previous)
    found = _check_rows(tables, latest, verdict)
    found += _check_current(tables.get("score_history", ()), manual, overrides, latest)
    verdict.problems += [text for _, text in sorted(found, key=lambda x: x[0])]
    return verdict


Latest = dict[tuple[str, str], tuple[int, str]]  # (table, ref) -> (seq, digest) of its latest entry


def _follow_chain(entries: Sequence[Mapping[str, Any]], key: bytes) -> tuple[str, Latest] | str:
    """The chain's last MAC and each row's latest entry; or the problem at the first broken link."""
    previous = ""
    latest: Latest = {}
    for e in entries:
        expected = link(key, previous, str(e["tbl"]), str(e["ref"]), str(e["digest"]))
        if not hmac.compare_digest(expected, str(e["mac"])):
            return (f"ledger entry {e['seq']} ({e['tbl']} {e['ref']}) does not follow from the one "
                    "before: the ledger was edited, or an entry was removed, outside grade")
        previous = str(e["mac"])
        latest[(str(e["tbl"]), str(e["ref"]))] = (int(e["seq"]), str(e["digest"]))
    return previous, latest


def _check_head(head: Mapping[str, Any] | None, key: bytes, count: int, previous: str) -> list[str]:
    """Whether the head file says the chain ends where it does (no entry removed at the end)."""
    if head is None:
        return (["the ledger's head file (gradebook.sqlite.ledger-head) is missing; "
                 "entries at the end of the chain may have been removed"] if count else [])
    if head.get("entries") == count and head.get("last") == previous \
            and hmac.compare_digest(str(head.get("mac", "")), head_mac(key, count, previous)):
        return []
    return [f"the ledger ends after entry {count}, but its head says {head.get('entries')} entries: entries at "
            "the end were removed (or the head file was replaced) outside grade"]


def _check_rows(tables: Mapping[str, Sequence[Mapping[str, Any]]], latest: Latest,
                verdict: Verdict) -> list[tuple[float, str]]:
    """Every chained row against its latest entry: added, edited or deleted outside grade."""
    found: list[tuple[float, str]] = []
    seen: set[tuple[str, str]] = set()
    for table, rows in tables.items():
        for row in rows:
            verdict.rows += 1
            ref = ref_of(table, row)
            seen.add((table, ref))
            entry = latest.get((table, ref))
            if entry is None:
                found.append((1 << 62, f"{_describe(table, row)} has no entry in the ledger: it was added "
                                       "outside grade"))
            elif entry[1] != row_digest(table, row):
                found.append((entry[0], f"{_describe(table, row)} was edited outside grade (it differs from "
                                        f"ledger entry {entry[0]})"))
    for (table, ref), (seq, _) in latest.items():
        if (table, ref) not in seen and table in tables:
            found.append((seq, f"{table} row {ref} (ledger entry {seq}) was deleted outside grade"))
    return found


def _check_current(history: Sequence[Mapping[str, Any]], manual: Sequence[Mapping[str, Any]],
                   overrides: Sequence[Mapping[str, Any]], latest: Latest) -> list[tuple[float, str]]:
    """``manual_scores`` and ``point_overrides`` must be what the chained history says."""
    wanted: dict[tuple[str, str], Mapping[str, Any]] = {}
    wanted_overrides: dict[tuple[str, str], Mapping[str, Any]] = {}
    for row in history:
        into = wanted_overrides if row.get("sheet") == "override" else wanted
        into[(str(row["folder"]), str(row["question"]))] = row

    def after(h: Mapping[str, Any] | None) -> float:  # just after the history row's own entry
        if h is None:
            return 1 << 62
        return latest.get(("score_history", ref_of("score_history", h)), (1 << 62, ""))[0] + 0.5
    found: list[tuple[float, str]] = []
    for kind, table, rows, text, history_of in (("override", "point_overrides", overrides, "reason", wanted_overrides),
                                               ("manual score", "manual_scores", manual, "comment", wanted)):
        for o in rows:
            last = history_of.pop((str(o["folder"]), str(o["question"])), None)
            if last is None or float(last["new_points"]) != float(o["points"]) or last["new_comment"] != o[text]:
                found.append((after(last), f"{table} row of {o['question']} of '{o['folder']}' "
                                           f"({float(o['points']):g} points) is not what score_history gives: it "
                                           "was edited outside grade"))
        for (folder, question), h in history_of.items():
            found.append((after(h), f"the {kind} of {question} of '{folder}' is missing (score_history row "
                                    f"{h['id']} gives {float(h['new_points']):g}): it was deleted outside grade"))
    return found
