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
"""
from __future__ import annotations

import csv
import glob
import hashlib
import io
import itertools
import os
import re
import stat
import unicodedata
import zipfile
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

from grader.errors import UsageError
from grader.result import Flag, SubmissionResult
from grader.rubric import ArchiveLimits
from grader.submission.intake import IGNORED_DIRS
from grader.submission.naming import parse_filename

SUBMISSION_SUFFIXES = (".zip", ".ipynb")
MOODLE_LAYOUT = "<Full name>_<participant id>_assignsubmission_file/<file> (Moodle: Download all submissions)"
CANVAS_LAYOUT = "<login>[_LATE]_<user id>_<attachment id>_<file name> (Canvas: Download submissions)"
_MOODLE_DIR = re.compile(r"^(?P<name>[^_/]+)_(?P<id>\d+)_assignsubmission_(?P<plugin>[a-z]+)_?$")
_MOODLE_FLAT = re.compile(r"^(?P<name>[^_/]+)_(?P<id>\d+)_assignsubmission_(?P<plugin>[a-z]+)_(?P<file>.+)$")
_CANVAS = re.compile(r"^(?:(?P<login>[^\W_]\w*?)_)?(?:(?P<late>LATE)_)?(?P<uid>\d+|anon_[A-Za-z0-9]+)_"
                     r"(?P<att>\d+)_(?P<orig>.+)$")
_CANVAS_COPY = re.compile(r"^(?P<stem>.+?)-\d+(?P<ext>\.[A-Za-z0-9]+)$")  # Canvas's "name-1.zip"
PLATFORM_FLAGS = ("platform.member", "platform.attempts", "roster.missing")


@dataclass(frozen=True)
class Uploader:
    """Who handed a file in, as the platform says."""

    platform: str          # "moodle" | "canvas"
    user_id: str           # Moodle participant (or group) id; Canvas user id
    name: str              # Moodle full name (or group name); Canvas login ("lovelaceada")
    entry: str             # where in the download
    late: bool = False     # Canvas's LATE marker
    submitted: str = ""    # ISO time where the download carries one
    team: bool = False     # a Moodle team folder: the name is the group's
    attachment: str = ""   # Canvas attachment id (for feedback re-upload)

    def to_json(self) -> dict[str, Any]:
        return {"platform": self.platform, "user_id": self.user_id, "name": self.name, "entry": self.entry,
                "late": self.late, "submitted": self.submitted, "team": self.team, "attachment": self.attachment}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Uploader:
        return cls(str(data.get("platform", "")), str(data.get("user_id", "")), str(data.get("name", "")),
                   str(data.get("entry", "")), bool(data.get("late")), str(data.get("submitted", "")),
                   bool(data.get("team")), str(data.get("attachment", "")))


@dataclass
class Found:
    """One submission to grade: the file (the input itself or a staged copy), the name it is
    graded under, who handed it in and the attempts it replaced; or why it cannot be read."""

    path: Path
    uploaders: list[Uploader] = field(default_factory=list)
    attempts: list[str] = field(default_factory=list)
    problem: str = ""
    other_files: list[str] = field(default_factory=list)
    order: tuple[str, int] = ("", 0)   # (time, attachment id): which attempt is the latest

    def info(self) -> dict[str, Any] | None:
        """What the result carries (``result.platform``), or None for a plain submission."""
        if not self.uploaders:
            return None
        return {"handed_in_by": [u.to_json() for u in self.uploaders], "attempts": list(self.attempts),
                "other_files": list(self.other_files)}


@dataclass(frozen=True)
class PlatformLimits:
    max_entries: int
    max_total_mb: float
    max_depth: int

    @classmethod
    def of(cls, archive: ArchiveLimits) -> PlatformLimits:
        return cls(archive.platform_max_entries, archive.platform_max_total_mb, archive.platform_max_depth)


# -- recognising entries ------------------------------------------------------------------------
def moodle_entry(posix: str) -> tuple[Uploader, str] | None:
    """(uploader, file's path below the participant's folder) of a Moodle download entry."""
    parts = PurePosixPath(posix).parts
    for k, part in enumerate(parts[:-1]):
        m = _MOODLE_DIR.match(part)
        if m:
            if m["plugin"] != "file":
                return None
            return Uploader("moodle", m["id"], m["name"].strip(), posix), "/".join(parts[k + 1:])
    m = _MOODLE_FLAT.match(parts[-1]) if parts else None
    if m and m["plugin"] == "file":
        return Uploader("moodle", m["id"], m["name"].strip(), posix), m["file"]
    return None


def canvas_entry(posix: str) -> tuple[Uploader, str] | None:
    """(uploader, the student's own file name) of a Canvas download entry."""
    base = PurePosixPath(posix).name
    m = _CANVAS.match(base)
    if not m:
        return None
    original = m["orig"]
    copy = _CANVAS_COPY.match(original)
    if copy and parse_filename(copy["stem"] + copy["ext"]).ok and not parse_filename(original).ok:
        original = copy["stem"] + copy["ext"]  # "Lovelace_..._2579876-1.zip": Canvas's second upload
    return Uploader("canvas", m["uid"], m["login"] or "", posix, late=bool(m["late"]), attachment=m["att"]), original


def _is_submission(name: str) -> bool:
    return name.lower().endswith(SUBMISSION_SUFFIXES)


def _ignored(posix: str) -> bool:
    """Folders the platforms and operating systems add (``__MACOSX``, hidden folders) and macOS's
    ``._name`` metadata files; any other file, a dotted name included, is a submission to grade."""
    parts = PurePosixPath(posix).parts
    return any(p in IGNORED_DIRS or p.startswith(".") for p in parts[:-1]) or parts[-1].startswith("._")


def _layout(names: Sequence[str]) -> str:
    """"moodle", "canvas" or "" for the entry names of a zip or the files below a folder."""
    subs = [n for n in names if _is_submission(n) and not _ignored(n)]
    if subs and all(moodle_entry(n) for n in subs):
        return "moodle"
    if subs and all(canvas_entry(n) for n in subs):
        return "canvas"
    moodle = sum(1 for n in subs if moodle_entry(n))
    canvas = sum(1 for n in subs if canvas_entry(n))
    if moodle or canvas:
        return "moodle" if moodle >= canvas else "canvas"
    return ""


def _looks_like_download(names: Sequence[str]) -> bool:
    """Several submissions in one zip (a download in some layout), not one group's zip."""
    subs = [n for n in names if _is_submission(n) and not _ignored(n)]
    zips = [n for n in subs if n.lower().endswith(".zip")]
    tops = {PurePosixPath(n).parts[0] for n in subs if len(PurePosixPath(n).parts) > 1}
    return len(zips) >= 2 or len(tops) >= 2


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
                out += _folder(p, staging, archive, limits, notes)
            elif p.is_file():
                out += _file(p, p.name, staging, archive, limits, notes)
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


def _folder(root: Path, staging: Path, archive: ArchiveLimits, limits: PlatformLimits,
            notes: list[str]) -> list[Found]:
    files: list[Path] = []
    seen = 0
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        depth = len(here.relative_to(root).parts)
        dirnames[:] = sorted(d for d in dirnames if d not in IGNORED_DIRS and not d.startswith("."))
        if depth >= limits.max_depth:
            if dirnames:
                notes.append(f"{here}: folders deeper than {limits.max_depth} levels were not searched")
            dirnames[:] = []
        for name in sorted(filenames):
            seen += 1
            if seen > limits.max_entries:
                raise UsageError(f"{root} holds more than {limits.max_entries} files; give the folder of the "
                                 "download itself")
            if _is_submission(name) and not name.startswith("._"):  # macOS metadata, not a notebook
                q = here / name
                if q.is_symlink():
                    notes.append(f"{q}: a symbolic link, not followed")
                    continue
                files.append(q)
    rel = [q.relative_to(root).as_posix() for q in files]
    layout = _layout(rel)
    out: list[Found] = []
    for q, r in zip(files, rel):
        ident = (moodle_entry(r) if layout == "moodle" else canvas_entry(r) if layout == "canvas" else None)
        if ident is None:
            out += _file(q, q.name, staging, archive, limits, notes)
            continue
        uploader, inner = ident
        when = datetime.fromtimestamp(q.stat().st_mtime).astimezone().isoformat(timespec="seconds")
        uploader = replace(uploader, entry=f"{root.name}/{r}", submitted=when if layout == "moodle" else "")
        name = PurePosixPath(inner).name
        path = q if name == q.name else _stage(staging, q.read_bytes(), name)
        out.append(Found(path, [uploader], order=(when if layout == "moodle" else "",
                                                  int(uploader.attachment or 0))))
    return out


def _stage(staging: Path, data: bytes, name: str) -> Path:
    """``data`` under ``staging/<its sha256>/<name>``; ``name`` is a plain base name."""
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name or len(name.encode()) > 255:
        name = "submission" + (".ipynb" if name.lower().endswith(".ipynb") else ".zip")
    folder = staging / hashlib.sha256(data).hexdigest()[:32]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    if not path.exists() or path.read_bytes() != data:
        tmp = folder / f".{name}.part"
        tmp.write_bytes(data)
        os.replace(tmp, path)
    return path


def _file(p: Path, name: str, staging: Path, archive: ArchiveLimits, limits: PlatformLimits,
          notes: list[str]) -> list[Found]:
    """A file given: a platform zip (its submissions) or one submission."""
    if not name.lower().endswith(".zip"):
        return [Found(p)]
    try:
        with zipfile.ZipFile(p) as zf:
            infos = zf.infolist()
            names = [i.filename.replace("\\", "/") for i in infos if not i.is_dir()]
            layout = _layout(names)
            if not layout:
                if _looks_like_download(names):
                    raise UsageError(
                        f"{p} holds several submissions but in neither platform's layout; expected "
                        f"{MOODLE_LAYOUT} or {CANVAS_LAYOUT}. Download it again from the platform, or unpack it "
                        "and give the submission files")
                return [Found(p)]
            return _platform_zip(p, zf, infos, layout, staging, archive, limits, notes)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError):
        return [Found(p)]  # a damaged zip: intake reports it for its submission


def _platform_zip(p: Path, zf: zipfile.ZipFile, infos: list[zipfile.ZipInfo], layout: str, staging: Path,
                  archive: ArchiveLimits, limits: PlatformLimits, notes: list[str]) -> list[Found]:
    if len(infos) > limits.max_entries:
        raise UsageError(f"{p} holds {len(infos)} entries, more than a download of {limits.max_entries}; "
                         "raise [archive] platform_max_entries in the rubric if it is right")
    declared = sum(i.file_size for i in infos)
    if declared > limits.max_total_mb * 1024 * 1024:
        raise UsageError(f"{p} unpacks to {declared / 1e6:.0f} MB, more than [archive] platform_max_total_mb "
                         f"({limits.max_total_mb:g} MB)")
    each = int(archive.max_total_mb * 1024 * 1024)
    out: list[Found] = []
    extra: dict[str, list[str]] = {}
    for info in infos:
        raw = info.filename
        posix = raw.replace("\\", "/")
        if info.is_dir() or _ignored(posix):
            continue
        ident = moodle_entry(posix) if layout == "moodle" else canvas_entry(posix)
        if ident is None:
            if _is_submission(posix):
                notes.append(f"{p}: '{raw}' is not in {layout.capitalize()}'s layout ("
                             f"{MOODLE_LAYOUT if layout == 'moodle' else CANVAS_LAYOUT}); not graded")
            continue
        uploader, inner = ident
        if not _is_submission(inner):
            extra.setdefault(uploader.user_id, []).append(inner)
            continue
        stamp = ""
        if layout == "moodle":
            try:
                stamp = datetime(*info.date_time).astimezone().isoformat(timespec="seconds")
            except ValueError:
                stamp = ""
        uploader = replace(uploader, entry=posix, submitted=stamp)
        order = (stamp, int(uploader.attachment or 0))
        parts = PurePosixPath(posix).parts
        why = ""
        if not info.flag_bits & 0x800 and any(ord(ch) > 127 for ch in raw):
            try:
                raw.encode("cp437").decode("utf-8")
            except (UnicodeEncodeError, UnicodeDecodeError):
                why = "its file name in the zip is not UTF-8"
        if posix.startswith("/") or ".." in parts or (len(posix) > 1 and posix[1] == ":"):
            why = "its path points outside the zip's folder"
        elif stat.S_ISLNK(info.external_attr >> 16):
            why = "it is a symbolic link"
        elif len(parts) > limits.max_depth:
            why = f"it is nested deeper than {limits.max_depth} folders"
        elif info.file_size > each:
            why = f"it is {info.file_size / 1e6:.1f} MB; a submission may have {archive.max_total_mb:g} MB"
        elif (info.compress_size and info.file_size > 1_000_000
              and info.file_size / info.compress_size > archive.max_ratio):
            why = f"it is compressed {info.file_size // info.compress_size}:1, which looks like a zip bomb"
        data = b""
        if not why:
            try:
                with zf.open(info) as fh:
                    data = fh.read(each + 1)
                if len(data) > each:
                    why = "it unpacks to more than its stated size"
            except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError, NotImplementedError,
                    RuntimeError) as exc:
                why = f"it cannot be read from the download ({type(exc).__name__}); download it again"
        name = PurePosixPath(inner).name
        if why:
            out.append(Found(p.parent / name, [uploader], problem=f"{uploader.name}'s file '{raw}' in {p.name}: {why}",
                             order=order))
            continue
        out.append(Found(_stage(staging, data, name), [uploader], order=order))
    for f in out:
        f.other_files = sorted(x for u in f.uploaders for x in extra.get(u.user_id, []))
    return out


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
