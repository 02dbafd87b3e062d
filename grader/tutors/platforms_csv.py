"""Reading a learning platform's CSV file so that it can be written back changed as little as
possible (grader/tutors/platforms.py).

:func:`read_sheet` reads the file as bytes (universal newlines would change the line endings),
at most :data:`MAX_BYTES`, UTF-8 with or without a byte-order mark, the delimiter (``,``, ``;`` or
TAB) the one the header holds most of. :func:`parse_csv` parses RFC 4180 records and keeps each
field's span in the text, quotes included, in one pass linear in the text's length; an
unterminated quote or text after a closing quote is a ValueError naming the line.
:func:`splice` replaces only the fields that get a new value (each quoted as the original was, or
where it must be: :func:`quote_like`), so every other byte stays; :func:`write_atomic_bytes`
writes the result so that the file is either the old one or the whole new one.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from grader.errors import UsageError

MAX_BYTES = 20 * 1024 * 1024


@dataclass(frozen=True)
class Field:
    start: int     # offsets into the decoded text, quotes included
    end: int
    value: str
    quoted: bool


@dataclass(frozen=True)
class Record:
    fields: tuple[Field, ...]
    line: int      # 1-based line where the record starts, for messages

    def value(self, index: int) -> str:
        return self.fields[index].value if index < len(self.fields) else ""

    @property
    def blank(self) -> bool:
        return all(not f.value.strip() for f in self.fields)


def parse_csv(text: str, delimiter: str = ",") -> list[Record]:
    """RFC 4180 records with each field's span in ``text``; linear in its length. Raises
    ValueError naming the line of an unterminated quote or text after a closing quote."""
    records: list[Record] = []
    i, n, line = 0, len(text), 1
    stops = (delimiter, "\r", "\n")
    while i < n:
        fields: list[Field] = []
        start_line = line
        while True:
            start = i
            if i < n and text[i] == '"':
                i += 1
                parts: list[str] = []
                while True:
                    j = text.find('"', i)
                    if j < 0:
                        raise ValueError(f"line {start_line}: a quoted field is never closed")
                    parts.append(text[i:j])
                    if j + 1 < n and text[j + 1] == '"':
                        parts.append('"')
                        i = j + 2
                        continue
                    i = j + 1
                    break
                value = "".join(parts)
                line += value.count("\n") + value.count("\r") - value.count("\r\n")
                if i < n and text[i] not in stops:
                    raise ValueError(f"line {line}: text after the closing quote of a field")
                fields.append(Field(start, i, value, True))
            else:
                j = i
                while j < n and text[j] not in stops:
                    j += 1
                fields.append(Field(start, j, text[i:j], False))
                i = j
            if i < n and text[i] == delimiter:
                i += 1
                continue
            break
        if text.startswith("\r\n", i):
            i += 2
        elif i < n:
            i += 1
        line += 1
        records.append(Record(tuple(fields), start_line))
    return records


def quote_like(value: str, original: Field, delimiter: str) -> str:
    """``value`` as a CSV field, quoted where the original was or where it must be."""
    needs = any(ch in value for ch in (delimiter, '"', "\r", "\n")) or value != value.strip()
    if original.quoted or needs:
        return '"' + value.replace('"', '""') + '"'
    return value


def splice(text: str, changes: Iterable[tuple[Field, str]]) -> str:
    """``text`` with each field replaced by its new (already quoted) text; the rest unchanged."""
    out: list[str] = []
    at = 0
    for f, new in sorted(changes, key=lambda c: c[0].start):
        out.append(text[at:f.start])
        out.append(new)
        at = f.end
    out.append(text[at:])
    return "".join(out)


@dataclass
class Sheet:
    """A platform's file as read: its text, how to write it back, its records."""

    path: Path
    text: str
    bom: bool
    delimiter: str
    records: list[Record]
    header: list[str]

    def column(self, *names: str) -> int | None:
        wanted = [n.casefold() for n in names]
        for i, h in enumerate(self.header):
            if h.strip().casefold() in wanted:
                return i
        return None

    def encode(self, text: str) -> bytes:
        return (b"\xef\xbb\xbf" if self.bom else b"") + text.encode("utf-8")


def read_sheet(path: Path, what: str) -> Sheet:
    """The platform's file ``path`` (called ``what`` in errors) as a :class:`Sheet`; UsageError where it
    cannot be read, is too large, is not UTF-8 or not CSV, or is empty."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise UsageError(f"cannot read the {what} {path}: {exc.strerror}; give the file downloaded from the "
                         "platform with --into") from None
    if size > MAX_BYTES:
        raise UsageError(f"{path} has {size} bytes, more than a {what} of {MAX_BYTES // 2**20} MiB; "
                         "is it the right file?")
    raw = path.read_bytes()  # bytes, not read_text: universal newlines would change the line endings
    bom = raw.startswith(b"\xef\xbb\xbf")
    try:
        text = raw[3 if bom else 0:].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path} is not UTF-8 (byte {exc.start}); download the {what} again as CSV (UTF-8) "
                         "and do not save it from a spreadsheet in another encoding") from None
    first = text.split("\n", 1)[0]
    delimiter = max((",", ";", "\t"), key=first.count)
    try:
        records = parse_csv(text, delimiter)
    except ValueError as exc:
        raise UsageError(f"{path}: not a readable CSV file ({exc})") from None
    if not records:
        raise UsageError(f"{path} is empty; download the {what} again")
    header = [f.value.strip() for f in records[0].fields]
    return Sheet(path, text, bom, delimiter, records, header)



def write_atomic_bytes(path: Path, data: bytes) -> None:
    """Write then rename: the platform's file is either the old one or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
