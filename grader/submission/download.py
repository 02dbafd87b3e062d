"""A learning platform's download of every submission, read into :class:`Found` submissions:
which platform's layout its entry names follow (Moodle's folders or Canvas's flat names, see
:mod:`grader.submission.platform`), who handed each file in (:class:`Uploader`), and each
submission of a download zip checked like any zip and copied, as bytes, to a staging folder the
grader owns under a name of its own (the zip's paths never decide where anything is written).
:func:`grader.submission.platform.discover` is the entry point; it merges what these find.
"""
from __future__ import annotations

import hashlib
import os
import re
import stat
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

from grader.errors import UsageError
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


# -- reading a folder or a zip ------------------------------------------------------------------
def folder_submissions(root: Path, staging: Path, archive: ArchiveLimits, limits: PlatformLimits,
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
            out += file_submissions(q, q.name, staging, archive, limits, notes)
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


def file_submissions(p: Path, name: str, staging: Path, archive: ArchiveLimits, limits: PlatformLimits,
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
    _check_download_size(p, infos, limits)
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
        stamp = _entry_time(info) if layout == "moodle" else ""
        uploader = replace(uploader, entry=posix, submitted=stamp)
        order = (stamp, int(uploader.attachment or 0))
        data, why = b"", _entry_problem(info, archive, limits)
        if not why:
            data, why = _read_entry(zf, info, each)
        name = PurePosixPath(inner).name
        if why:
            out.append(Found(p.parent / name, [uploader], problem=f"{uploader.name}'s file '{raw}' in {p.name}: {why}",
                             order=order))
            continue
        out.append(Found(_stage(staging, data, name), [uploader], order=order))
    for f in out:
        f.other_files = sorted(x for u in f.uploaders for x in extra.get(u.user_id, []))
    return out


def _check_download_size(p: Path, infos: list[zipfile.ZipInfo], limits: PlatformLimits) -> None:
    """Refuse a download with more entries or more bytes than the rubric's platform limits."""
    if len(infos) > limits.max_entries:
        raise UsageError(f"{p} holds {len(infos)} entries, more than a download of {limits.max_entries}; "
                         "raise [archive] platform_max_entries in the rubric if it is right")
    declared = sum(i.file_size for i in infos)
    if declared > limits.max_total_mb * 1024 * 1024:
        raise UsageError(f"{p} unpacks to {declared / 1e6:.0f} MB, more than [archive] platform_max_total_mb "
                         f"({limits.max_total_mb:g} MB)")


def _entry_time(info: zipfile.ZipInfo) -> str:
    """The time a Moodle download's entry carries (when it was handed in), or "" when invalid."""
    try:
        return datetime(*info.date_time).astimezone().isoformat(timespec="seconds")
    except ValueError:
        return ""


def _entry_problem(info: zipfile.ZipInfo, archive: ArchiveLimits, limits: PlatformLimits) -> str:
    """Why a download's entry is not unpacked (its path, kind, depth, size or ratio), or ""."""
    raw = info.filename
    posix = raw.replace("\\", "/")
    parts = PurePosixPath(posix).parts
    if posix.startswith("/") or ".." in parts or (len(posix) > 1 and posix[1] == ":"):
        return "its path points outside the zip's folder"
    if stat.S_ISLNK(info.external_attr >> 16):
        return "it is a symbolic link"
    if len(parts) > limits.max_depth:
        return f"it is nested deeper than {limits.max_depth} folders"
    if info.file_size > int(archive.max_total_mb * 1024 * 1024):
        return f"it is {info.file_size / 1e6:.1f} MB; a submission may have {archive.max_total_mb:g} MB"
    if (info.compress_size and info.file_size > 1_000_000
            and info.file_size / info.compress_size > archive.max_ratio):
        return f"it is compressed {info.file_size // info.compress_size}:1, which looks like a zip bomb"
    if not info.flag_bits & 0x800 and any(ord(ch) > 127 for ch in raw):
        try:
            raw.encode("cp437").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            return "its file name in the zip is not UTF-8"
    return ""


def _read_entry(zf: zipfile.ZipFile, info: zipfile.ZipInfo, each: int) -> tuple[bytes, str]:
    """(the entry's bytes, "") or (b"", why it cannot be read), reading at most ``each`` + 1 bytes."""
    try:
        with zf.open(info) as fh:
            data = fh.read(each + 1)
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError, NotImplementedError,
            RuntimeError) as exc:
        return b"", f"it cannot be read from the download ({type(exc).__name__}); download it again"
    if len(data) > each:
        return b"", "it unpacks to more than its stated size"
    return data, ""
