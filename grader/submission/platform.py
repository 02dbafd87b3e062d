"""Submissions as the learning platforms hand them out: Moodle's and Canvas's "download all"
zips, or the same unpacked, and the platforms' participant lists (``grade --roster``).

Layouts (built after the platforms' source code):

- Moodle (mod/assign/classes/downloader.php, "Download all submissions" with the default "download
  as folders"): one folder per participant, ``<Full name>_<participant id>_assignsubmission_file``
  (Moodle 3.x ends the folder with ``_``), holding the files the participant uploaded. With team
  submissions the folder is the group's, ``<Group name>_<group id>_assignsubmission_file``; older
  sites without folders write ``<Full name>_<participant id>_assignsubmission_file_<file>``. The
  name has no ``_`` (Moodle writes it as a space). The participant id is the assignment's own id
  of the student (the worksheet's "Participant 1043206"), not the student id.
- Canvas (lib/content_zipper.rb, "Download submissions"): a flat zip of
  ``<login>[_LATE]_<user id>_<attachment id>_<original name>``, the login being the sortable name
  lower-cased without non-word characters ("lovelaceada"), ``LATE`` Canvas's own late marker,
  ``anon_<id>`` instead of the user id when the assignment is anonymous. Canvas renames a file a
  student uploads twice ``name-1.zip``.

:func:`discover` turns paths (files, folders searched to a bounded depth and count, globs) into
:class:`Found` submissions. A platform zip is opened here and checked like any zip (no ``..``,
no links, names in UTF-8, bounded count, size and ratio: the rubric's ``[archive]`` platform
limits); each submission in it is copied, as bytes, to a staging folder the grader owns under a
name of its own (the entry's base name; the zip's paths never decide where anything is written),
where it then goes through the normal intake (grader/submission/intake.py) like any submission: an inner
zip is not refused for being inside the platform's zip, and every check of intake applies to it.

Who handed a file in, as the platform says, is kept (:class:`Uploader`): the same file uploaded
by several members is graded once and credited to each; several different files of one group
(the same ids in the file name, or the same uploader) are attempts: the latest counts (Moodle: the
time the zip entry or file carries; Canvas: the larger attachment id) and the others are listed.
An entry that cannot be read is a :class:`Found` with a ``problem`` (reported for its student;
the rest is graded). A zip that holds several submissions in neither layout is refused, naming
both layouts. The identity reaches the result through :func:`apply_platform` (the batch applies
it, idempotently): members confirmed by the platform, a ``platform.member`` flag where the
uploader is not in the group cell (both sides shown), a ``late`` flag for Canvas's marker, a
``platform.attempts`` flag listing the attempts not graded and ``roster.missing`` for a member
the roster does not list.

Reading a download (its layout, its entries, the staging copies) is :mod:`grader.submission.download`;
this module is the front door: :func:`discover`, the merging of uploads and attempts, the roster and
:func:`apply_platform`.
"""
from __future__ import annotations

import csv
import glob
import hashlib
import io
import itertools
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from grader.errors import UsageError
from grader.result import Flag, SubmissionResult
from grader.rubric import ArchiveLimits
from grader.submission.download import (
    CANVAS_LAYOUT,
    MOODLE_LAYOUT,
    SUBMISSION_SUFFIXES,
    Found,
    PlatformLimits,
    Uploader,
    canvas_entry,
    file_submissions,
    folder_submissions,
    moodle_entry,
)
from grader.submission.naming import parse_filename

__all__ = ["CANVAS_LAYOUT", "MOODLE_LAYOUT", "PLATFORM_FLAGS", "SUBMISSION_SUFFIXES", "Discovery", "Found",
           "Person", "PlatformLimits", "Uploader", "apply_platform", "canvas_entry", "discover", "moodle_entry",
           "platform_members", "read_roster", "uploader_is"]

PLATFORM_FLAGS = ("platform.member", "platform.attempts", "roster.missing")


# -- discovering --------------------------------------------------------------------------------
@dataclass
class Discovery:
    found: list[Found]
    notes: list[str]          # for the tutor: entries left out and why


def discover(paths: Iterable[str], staging: Path, archive: ArchiveLimits) -> Discovery:
    """The submissions ``paths`` name (see the module docstring). Raises :class:`UsageError`
    for a path that does not exist, a download in an unknown layout or no submission at all."""
    limits = PlatformLimits.of(archive)
    out: list[Found] = []
    notes: list[str] = []
    for raw in paths:
        matches = sorted(glob.glob(raw)) if any(ch in raw for ch in "*?[") else [raw]
        if not matches:
            raise UsageError(f"no file matches '{raw}'; check the path or the pattern")
        for m in matches:
            p = Path(m)
            if p.is_dir():
                out += folder_submissions(p, staging, archive, limits, notes)
            elif p.is_file():
                out += file_submissions(p, p.name, staging, archive, limits, notes)
            else:
                raise UsageError(f"'{raw}' does not exist; give submission files, folders or globs")
    unique: dict[Any, Found] = {}
    for k, f in enumerate(out):  # a file given twice once; a platform's entries are merged below
        unique.setdefault(f.path.resolve() if not (f.problem or f.uploaders) else k, f)
    found = _merge(list(unique.values()))
    if not found:
        raise UsageError("no .zip or .ipynb submissions were found in the given paths (folders are searched "
                         f"{limits.max_depth} levels deep)")
    return Discovery(found, notes)


def _group_key(f: Found) -> tuple[str, ...]:
    parsed = parse_filename(f.path.name)
    if parsed.ok:
        return ("ids", *sorted(i for _, i in parsed.pairs))
    return ("by", *sorted(f"{u.platform}:{u.user_id}" for u in f.uploaders))


def _merge(found: list[Found]) -> list[Found]:
    """One submission per distinct file (its uploaders merged) and per group (the latest)."""
    by_content: dict[str, Found] = {}
    plain: list[Found] = []
    for f in found:
        if f.problem or not f.uploaders:
            plain.append(f)
            continue
        digest = _digest(f.path)
        if digest in by_content:
            kept = by_content[digest]
            kept.uploaders += [u for u in f.uploaders if u not in kept.uploaders]
            kept.other_files = sorted(set(kept.other_files) | set(f.other_files))
            kept.order = max(kept.order, f.order)
        else:
            by_content[digest] = f
    groups: dict[tuple[str, ...], list[Found]] = {}
    for f in by_content.values():
        groups.setdefault(_group_key(f), []).append(f)
    merged: list[Found] = []
    for members in groups.values():
        members.sort(key=lambda f: f.order)
        latest = members[-1]
        for older in members[:-1]:
            when = f" ({older.order[0]})" if older.order[0] else ""
            latest.attempts += [f"{u.entry}{when}" for u in older.uploaders]
            latest.uploaders += [u for u in older.uploaders if u not in latest.uploaders]
        merged.append(latest)
    order = {id(f): k for k, f in enumerate(found)}
    return sorted([*merged, *plain], key=lambda f: order.get(id(f), 0))


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# -- the roster ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Person:
    name: str
    student_id: str    # ID number / SIS User ID
    email: str         # e-mail / SIS Login ID
    platform_id: str   # Moodle "Participant N" number; Canvas user id ("ID")

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "student_id": self.student_id, "email": self.email,
                "platform_id": self.platform_id}


def read_roster(path: Path) -> list[Person]:
    """The students of a Moodle participants download (or grading worksheet) or a Canvas
    gradebook export; :class:`UsageError` naming the columns expected."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise UsageError(f"cannot read the roster {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"the roster {path} is not UTF-8; download it again as CSV (UTF-8)") from None
    first = text.split("\n", 1)[0]
    delimiter = max((",", ";", "\t"), key=first.count)
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    if not rows:
        raise UsageError(f"the roster {path} is empty")
    header = [h.strip().casefold() for h in rows[0]]

    def col(*names: str) -> int | None:
        for n in names:
            if n.casefold() in header:
                return header.index(n.casefold())
        return None

    email = col("Email address", "Email", "E-mail address", "SIS Login ID")
    sid = col("ID number", "Student ID", "Matriculation number", "SIS User ID")
    full_col = col("Full name", "Student", "Name")
    given, last = col("First name"), col("Last name", "Surname")
    pid = col("Identifier", "ID")
    if email is None and sid is None:
        raise UsageError(f"the roster {path} has no column 'Email address', 'ID number' (Moodle participants or "
                         "grading worksheet) or 'SIS User ID'/'SIS Login ID' (Canvas gradebook export); it has: "
                         + ", ".join(rows[0]))
    people: list[Person] = []
    for row in rows[1:]:
        def get(i: int | None, row: list[str] = row) -> str:
            return row[i].strip() if i is not None and i < len(row) else ""
        name = get(full_col) or " ".join(x for x in (get(given), get(last)) if x)
        if name in ("Points Possible", "") and not (get(email) or get(sid)):
            continue  # Canvas's "Points Possible" row, blank lines
        platform_id = re.sub(r"\D", "", get(pid))
        people.append(Person(name, get(sid), get(email), platform_id))
    return people


# -- into the result ----------------------------------------------------------------------------
def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", _fold(text))


def uploader_is(u: Uploader, member: Mapping[str, str], roster: Sequence[Person] = ()) -> bool:
    """Whether the platform's uploader ``u`` is this group-cell member: through the roster (the
    platform's id to a student id or e-mail) where it lists the uploader, else by name."""
    if roster and u.user_id:
        listed = [p for p in roster if p.platform_id == u.user_id]
        if listed:
            return any((p.student_id and p.student_id == member.get("student_id", "").strip())
                       or (p.email and p.email.casefold() == member.get("email", "").strip().casefold())
                       for p in listed)
    words = _words(member.get("name", ""))
    if not words or len(words) > 6:
        return False
    if u.platform == "moodle":
        return sorted(_words(u.name)) == sorted(words)
    token = "".join(_words(u.name)).replace("_", "")
    return any("".join(p) == token for p in itertools.permutations(words))


def apply_platform(result: SubmissionResult, info: Mapping[str, Any] | None,
                   roster: Sequence[Person] = ()) -> SubmissionResult:
    """``result`` with the platform's identity (``info`` from :meth:`Found.info`) and the
    roster's findings; idempotent (what an earlier application left is removed first)."""
    flags = [f for f in result.flags if f.code not in PLATFORM_FLAGS
             and not (f.code == "late" and f.message.startswith("Canvas marks"))]
    out = replace(result, platform=None, flags=tuple(flags))
    if info:
        uploaders = [Uploader.from_json(u) for u in info.get("handed_in_by", [])]
        matched: list[dict[str, Any]] = []
        strangers: list[Uploader] = []
        for u in uploaders:
            member = next((m for m in result.group if uploader_is(u, m, roster)), None) if not u.team else None
            matched.append({**u.to_json(), "member": member.get("student_id", "") if member else ""})
            if member is None and not u.team and result.group:
                strangers.append(u)
        if strangers:
            cell = "; ".join(f"{m.get('name', '')} ({m.get('student_id', '')})" for m in result.group)
            who = "; ".join(f"{u.name or 'anonymous'} ({u.platform.capitalize()} user {u.user_id})" for u in strangers)
            flags.append(Flag("platform.member", None,
                              f"{'Moodle' if strangers[0].platform == 'moodle' else 'Canvas'} says this was handed in "
                              f"by {who}, but the group cell lists {cell}; a tutor must check who this group is"))
        if any(u.late for u in uploaders) and result.late is None:
            flags.append(Flag("late", None, "Canvas marks this submission late (handed in after the assignment's "
                                            "due date in Canvas); how late is not in the download, so no points "
                                            "were deducted; your tutor was told"))
        if info.get("attempts"):
            attempts = list(info["attempts"])
            flags.append(Flag("platform.attempts", None,
                              f"the latest file was graded; {len(attempts)} earlier or other file(s) of this group "
                              f"were not: {', '.join(attempts)}"))
        out = replace(out, platform={**info, "handed_in_by": matched})
    if roster:
        missing = [m for m in result.group
                   if not any((p.student_id and p.student_id == m.get("student_id", "").strip())
                              or (p.email and p.email.casefold() == m.get("email", "").strip().casefold())
                              for p in roster)]
        if missing:
            flags.append(Flag("roster.missing", None,
                              "not on the course's participant list: "
                              + "; ".join(f"{m.get('name', '')} ({m.get('student_id', '')}, {m.get('email', '')})"
                                          for m in missing)
                              + "; check the id and e-mail in the group cell"))
    return replace(out, flags=tuple(flags))


def platform_members(result: SubmissionResult) -> set[str]:
    """Student ids of the group-cell members the platform says handed the file in."""
    info = result.platform or {}
    return {str(u.get("member")) for u in info.get("handed_in_by", []) if u.get("member")}
