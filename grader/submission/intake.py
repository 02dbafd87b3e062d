"""Read a submission without changing it: a zip (checked before anything is read out) or a notebook.

Nothing is extracted to disk. A zip is refused with ``archive.unsafe`` for entries with ``..`` or
absolute paths, links, nested archives, names that are not UTF-8, too many entries, too much
data or a suspicious compression ratio; ``archive.contents`` says what is wrong with what it holds.
"""
from __future__ import annotations

import hashlib
import lzma
import stat
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from grader.rubric import ArchiveLimits

TEMPLATE_NAME = "sheet11.ipynb"
IGNORED_DIRS = ("__MACOSX", ".ipynb_checkpoints")
ARCHIVE_SUFFIXES = (".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar", ".jar", ".whl")


@dataclass(frozen=True)
class Intake:
    """What was found in one submission file."""

    path: Path
    filename: str
    sha256: str
    notebook: bytes | None
    notebook_name: str = ""
    other_files: tuple[str, ...] = ()
    problem_code: str = ""   # archive.unsafe | archive.contents | notebook.invalid | ""
    problem: str = ""        # the reason, for the student
    note: str = ""           # archive.contents note when a notebook was still picked


def file_sha256(path: Path) -> str:
    """The file's sha256 without holding it in memory: the one digest of a submission file
    (intake, the batch's jobs, the result's manifest, replay)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_submission(path: Path, limits: ArchiveLimits, max_notebook_mb: float) -> Intake:
    max_nb = int(max_notebook_mb * 1024 * 1024)
    name = path.name
    size = path.stat().st_size
    # The size decides before the file is read: a 10 GB "notebook" is never loaded.
    if name.lower().endswith(".ipynb") and size > max_nb:
        return Intake(path, name, file_sha256(path), None, name, problem_code="notebook.invalid",
                      problem=f"the notebook is {size / 1e6:.1f} MB; the limit is {max_notebook_mb:g} MB "
                              "(clear large outputs and images, then save again)")
    if name.lower().endswith(".zip") and size > limits.max_total_mb * 1024 * 1024:
        return _unsafe(path, file_sha256(path),
                       f"the zip is {size / 1e6:.1f} MB; the limit is {limits.max_total_mb:g} MB")
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if name.lower().endswith(".ipynb"):
        if len(data) > max_nb:  # it grew since the stat
            return Intake(path, name, digest, None, name, problem_code="notebook.invalid",
                          problem=f"the notebook is {len(data) / 1e6:.1f} MB; the limit is {max_notebook_mb:g} MB "
                                  "(clear large outputs and images, then save again)")
        return Intake(path, name, digest, data, name)
    if not name.lower().endswith(".zip"):
        return Intake(path, name, digest, None, problem_code="archive.contents",
                      problem=f"'{name}' is neither a .zip nor an .ipynb file; submit the notebook "
                              "itself or a zip holding it")
    return _read_zip(path, digest, data, limits, max_nb, max_notebook_mb)


def _unsafe(path: Path, digest: str, reason: str) -> Intake:
    return Intake(path, path.name, digest, None, problem_code="archive.unsafe", problem=reason)


def _read_zip(path: Path, digest: str, data: bytes, limits: ArchiveLimits, max_nb: int,
              max_notebook_mb: float) -> Intake:
    import io
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        infos = zf.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError):
        return Intake(path, path.name, digest, None, problem_code="archive.contents",
                      problem="the zip file is damaged or truncated and cannot be opened; "
                              "pack it again and resubmit")
    if len(infos) > limits.max_entries:
        return _unsafe(path, digest, f"the zip holds {len(infos)} entries (limit {limits.max_entries})")
    total = 0
    files: list[zipfile.ZipInfo] = []
    for info in infos:
        refusal = _entry_refusal(info, limits)
        if refusal:
            return _unsafe(path, digest, refusal)
        parts = PurePosixPath(info.filename.replace("\\", "/")).parts
        if info.is_dir() or any(p in IGNORED_DIRS for p in parts):
            continue
        total += info.file_size
        refusal = _content_refusal(info, limits, total)
        if refusal:
            return _unsafe(path, digest, refusal)
        files.append(info)
    return _read_notebook(path, digest, zf, files, max_nb, max_notebook_mb)


def _entry_refusal(info: zipfile.ZipInfo, limits: ArchiveLimits) -> str:
    """Why a zip entry makes the zip unsafe by its name or kind (not UTF-8, outside the folder,
    a link, too deep), or ""."""
    raw = info.filename
    if not info.flag_bits & 0x800 and any(ord(ch) > 127 for ch in raw):
        try:
            raw.encode("cp437").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            return f"a file name in the zip is not UTF-8 ({raw!r})"
    posix = raw.replace("\\", "/")
    parts = PurePosixPath(posix).parts
    if posix.startswith("/") or (len(posix) > 1 and posix[1] == ":") or ".." in parts:
        return f"the entry '{raw}' points outside the zip's folder"
    if stat.S_ISLNK(info.external_attr >> 16):
        return f"the entry '{raw}' is a symbolic link"
    if len(parts) > limits.max_depth:
        return f"the entry '{raw}' is nested deeper than {limits.max_depth} folders"
    return ""


def _content_refusal(info: zipfile.ZipInfo, limits: ArchiveLimits, total: int) -> str:
    """Why a file the zip holds makes it unsafe by its content (another archive, the zip's
    ``total`` size so far with it, a zip bomb's ratio), or ""."""
    raw = info.filename
    if raw.replace("\\", "/").lower().endswith(ARCHIVE_SUFFIXES):
        return f"the zip holds another archive ('{raw}'); put the files in one zip"
    if total > limits.max_total_mb * 1024 * 1024:
        return f"the zip unpacks to more than {limits.max_total_mb:g} MB"
    if info.compress_size and info.file_size / info.compress_size > limits.max_ratio and info.file_size > 1_000_000:
        return (f"the entry '{raw}' is compressed {info.file_size // info.compress_size}:1, "
                "which looks like a zip bomb")
    return ""


def _read_notebook(path: Path, digest: str, zf: zipfile.ZipFile, files: list[zipfile.ZipInfo], max_nb: int,
                   max_notebook_mb: float) -> Intake:
    """The one notebook of a checked zip (``sheet11.ipynb`` among several), read out bounded."""
    notebooks = [i for i in files if i.filename.lower().endswith(".ipynb")]
    others = tuple(sorted(i.filename for i in files if i not in notebooks))
    note = ""
    if not notebooks:
        return Intake(path, path.name, digest, None, other_files=others, problem_code="archive.contents",
                      problem="the zip holds no notebook (.ipynb); add sheet11.ipynb and resubmit")
    if len(notebooks) > 1:
        named = [i for i in notebooks if PurePosixPath(i.filename).name == TEMPLATE_NAME]
        listing = ", ".join(i.filename for i in notebooks)
        if len(named) != 1:
            return Intake(path, path.name, digest, None, other_files=others, problem_code="archive.contents",
                          problem=f"the zip holds {len(notebooks)} notebooks ({listing}) and not exactly one "
                                  f"named {TEMPLATE_NAME}; submit one notebook")
        note = f"the zip holds {len(notebooks)} notebooks ({listing}); {named[0].filename} was graded"
        others = tuple(sorted(set(others) | {i.filename for i in notebooks if i is not named[0]}))
        notebooks = named
    chosen = notebooks[0]
    if chosen.file_size > max_nb:
        return Intake(path, path.name, digest, None, chosen.filename, others, "notebook.invalid",
                      f"the notebook is {chosen.file_size / 1e6:.1f} MB; the limit is {max_notebook_mb:g} MB")
    try:
        with zf.open(chosen) as f:
            content = f.read(max_nb + 1)
    except (zipfile.BadZipFile, zlib.error, lzma.LZMAError, OSError, EOFError, ValueError,
            NotImplementedError, RuntimeError):  # damaged data (zlib/lzma), encrypted, unknown method
        return Intake(path, path.name, digest, None, chosen.filename, others, "archive.contents",
                      f"'{chosen.filename}' in the zip is damaged and cannot be read; pack it again")
    if len(content) > max_nb:
        return _unsafe(path, digest, f"'{chosen.filename}' unpacks to more than its stated size")
    return Intake(path, path.name, digest, content, chosen.filename, others, note=note)
