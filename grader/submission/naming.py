"""The `group` cell and the submission's file name (contract §2 and §4).

The group cell is read with :func:`ast.parse` and :func:`ast.literal_eval` only: nothing a
student wrote is ever executed here.
"""
from __future__ import annotations

import ast
import functools
import re
import unicodedata
from dataclasses import dataclass

from grader.errors import GroupCellError

__all__ = [
    "GroupCellError",
    "Member",
    "NamingFinding",
    "ParsedName",
    "check_naming",
    "name_matches",
    "parse_filename",
    "read_group",
    "suggest_filename",
]

_KEYS = ("name", "student_id", "email")
# Caps on what a student controls, so that reading names costs bounded work (a 25 KB name once kept
# the grader busy for minutes): longer is a finding, not work. Each is the grader's own safety
# limit, not course policy: a constant, not a rubric entry, so no rubric can loosen it.
MAX_NAME_CHARS = 300          # a member's name, an e-mail, a student id, a file-name part
MAX_GROUP_CELL_CHARS = 20_000  # the group cell's source (the template's is about 600)
MAX_FILENAME_CHARS = 255       # what file systems allow anyway
_EXAMPLE = 'GROUP = [{"name": "Ada Lovelace", "student_id": "2571234", "email": "ada@uni.example"}, ...]'
_PATTERN = "the file name must look like Name1_id1_Name2_id2.zip (or with a third Name3_id3)"
_EXTENSIONS = (".zip", ".ipynb")


@dataclass(frozen=True)
class Member:
    """One student of the group, as written in the `group` cell (or, without one, as the file
    name pairs them). ``confirmed``: the submission is known to be this student's, because the
    file name names their id, the platform says they handed it in or a tutor confirmed them
    (decided by :func:`grader.folder.grades.members`); the group cell alone never confirms."""

    name: str
    student_id: str
    email: str
    confirmed: bool = False


@dataclass(frozen=True)
class ParsedName:
    """A submission file name split into (name, id) pairs; ``problem`` says why not ``ok``."""

    pairs: tuple[tuple[str, str], ...]
    ok: bool
    problem: str

    @property
    def count(self) -> int:
        """How many (name, id) pairs the file name lists."""
        return len(self.pairs)


@dataclass(frozen=True)
class NamingFinding:
    """A naming or group problem; ``code`` is one of the contract's flag codes."""

    code: str
    message: str


# --------------------------------------------------------------------------- group cell


def _describe(node: ast.AST) -> str:
    """A student-readable name for a statement or expression kind."""
    kinds = {
        ast.Import: "an import", ast.ImportFrom: "an import", ast.Expr: "an expression",
        ast.FunctionDef: "a function definition", ast.ClassDef: "a class definition",
        ast.Call: "a function call", ast.Name: "a variable name", ast.BinOp: "a calculation",
        ast.ListComp: "a list comprehension", ast.Attribute: "an attribute",
        ast.Subscript: "an index", ast.JoinedStr: "an f-string",
    }
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
        return "a function call"
    for kind, text in kinds.items():
        if isinstance(node, kind):
            return text
    return f"a {type(node).__name__} statement" if isinstance(node, ast.stmt) else "an expression"


def _first_non_literal(node: ast.AST) -> ast.AST:
    """The first sub-expression that is not a plain literal (for the error message)."""
    allowed = (ast.Constant, ast.List, ast.Tuple, ast.Dict, ast.Set, ast.UnaryOp,
               ast.expr_context, ast.USub, ast.UAdd)
    for sub in ast.walk(node):
        if not isinstance(sub, allowed):
            return sub
    return node


def read_group(source: str) -> tuple[Member, ...]:
    """Read ``GROUP = [...]`` from the group cell's source without executing it."""
    if len(source or "") > MAX_GROUP_CELL_CHARS:
        raise GroupCellError(
            f"the group cell is {len(source):,} characters long (at most {MAX_GROUP_CELL_CHARS:,}); "
            f"it must hold only {_EXAMPLE}")
    assignment, assigned_at = _group_assignment(_parse_cell(source))
    try:
        value = ast.literal_eval(assignment)
    except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
        bad = _first_non_literal(assignment)
        line = getattr(bad, "lineno", assigned_at)
        raise GroupCellError(
            f"GROUP must be written out as a plain list of dictionaries, but line {line} uses "
            f"{_describe(bad)}; write the names, ids and e-mails as quoted text") from None

    if not isinstance(value, (list, tuple)):
        raise GroupCellError(
            f"GROUP must be a list of dictionaries, not a {type(value).__name__}: {_EXAMPLE}")
    return tuple(_member(i, entry) for i, entry in enumerate(value, start=1))


def _parse_cell(source: str) -> ast.Module:
    """The group cell's syntax tree; :class:`GroupCellError` when it is not Python."""
    try:
        return ast.parse(source or "", mode="exec")
    except SyntaxError as exc:
        where = f"line {exc.lineno}" if exc.lineno else "somewhere"
        if "integer string conversion" in str(exc.msg):
            # Valid Python, refused by the int-digits limit: Python's own advice (set a limit,
            # use hexadecimal) is no help to a student whose id should be quoted text.
            raise GroupCellError(
                f"{where} of the group cell holds a number with thousands of digits; write every id "
                f"as quoted text. The cell must hold only {_EXAMPLE}") from None
        raise GroupCellError(
            f"the group cell is not valid Python ({where}: {exc.msg}); it must hold only "
            f"{_EXAMPLE}") from None
    except (RecursionError, MemoryError, ValueError):  # absurd nesting, NUL bytes
        raise GroupCellError(f"the group cell cannot be read; it must hold only {_EXAMPLE}") from None


def _group_assignment(tree: ast.Module) -> tuple[ast.expr, int]:
    """The value assigned to ``GROUP`` and its line: the cell's only statement (comments aside)."""
    if not tree.body:
        raise GroupCellError(f"the group cell is empty; it must hold {_EXAMPLE}")
    assignment: tuple[ast.expr, int] | None = None
    for stmt in tree.body:
        value = _group_value(stmt)
        if value is not None and assignment is None:
            assignment = value, stmt.lineno
            continue
        what = "a second assignment to GROUP" if value is not None else _describe(stmt)
        raise GroupCellError(
            f"line {stmt.lineno} of the group cell holds {what}; the cell may hold only "
            f"{_EXAMPLE} (comments are fine)")
    assert assignment is not None
    return assignment


def _group_value(stmt: ast.stmt) -> ast.expr | None:
    """The value of ``GROUP = ...`` (or ``GROUP: T = ...``), None for any other statement."""
    if (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1
            and isinstance(stmt.targets[0], ast.Name) and stmt.targets[0].id == "GROUP"):
        return stmt.value
    if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.target.id == "GROUP":
        return stmt.value
    return None


def _member(i: int, entry: object) -> Member:
    """Member ``i`` (from 1) of GROUP, its name NFC, its id and e-mail as written."""
    if not isinstance(entry, dict):
        raise GroupCellError(
            f"member {i} of GROUP is a {type(entry).__name__}, not a dictionary like "
            f'{{"name": "Ada Lovelace", "student_id": "2571234", "email": "ada@uni.example"}}')
    missing = [k for k in _KEYS if k not in entry]
    if missing:
        keys = ", ".join(repr(k) for k in missing)
        raise GroupCellError(f"member {i} of GROUP has no {keys}; each member needs "
                             f"'name', 'student_id' and 'email'")
    fields: dict[str, str] = {}
    for key in _KEYS:
        raw = entry[key]
        # A student id typed as a number is what the student meant: take it silently.
        if key == "student_id" and isinstance(raw, int) and not isinstance(raw, bool) and raw >= 0:
            raw = str(raw)
        if not isinstance(raw, str):
            raise GroupCellError(
                f"member {i} of GROUP: {key!r} must be text in quotes, not "
                f"{type(raw).__name__} {raw!r}")
        if len(raw) > MAX_NAME_CHARS:
            raise GroupCellError(
                f"member {i} of GROUP: {key!r} is {len(raw):,} characters long (at most "
                f"{MAX_NAME_CHARS})")
        # A name is NFC (macOS writes NFD); an id or e-mail is kept as written: NFC would turn a
        # Kelvin sign into K, making a look-alike of another student's address that address
        # before anything could flag it (grader/batch/run.py's group.suspicious does).
        fields[key] = unicodedata.normalize("NFC", raw.strip()) if key == "name" else raw.strip()
    if not fields["name"]:
        raise GroupCellError(f"member {i} of GROUP has an empty 'name'")
    return Member(fields["name"], fields["student_id"], fields["email"])


# --------------------------------------------------------------------------- file name


def _basename(filename: str) -> str:
    return filename.replace("\\", "/").rsplit("/", 1)[-1]


def parse_filename(filename: str) -> ParsedName:
    """Split ``Name1_id1_Name2_id2[_Name3_id3].zip|.ipynb`` into pairs.

    The number of pairs is not judged here (that is ``naming.group_size``).
    """
    base = unicodedata.normalize("NFC", _basename(filename))  # macOS hands out NFD names

    def bad(why: str) -> ParsedName:
        return ParsedName((), False, f"{_PATTERN}; '{base}' {why}")

    if len(base) > MAX_FILENAME_CHARS:
        return ParsedName((), False, f"{_PATTERN}; the name is {len(base):,} characters long "
                                     f"(at most {MAX_FILENAME_CHARS})")
    stem, dot, ext = base.rpartition(".")
    if not dot or f".{ext.lower()}" not in _EXTENSIONS:
        return bad("must end in .zip or .ipynb")
    if not stem:
        return bad("has no name before the extension")
    if any(ch.isspace() for ch in stem):
        return bad("contains a space (a copy such as 'name (1).zip' must be renamed)")
    parts = stem.split("_")
    if any(not p for p in parts):
        return bad("has an empty part (two underscores in a row, or one at the start or end)")
    is_id = [p.isascii() and p.isdigit() for p in parts]
    if not any(is_id):
        return bad("has no student ids")
    if all(is_id):
        return bad("has no names")
    if len(parts) % 2:
        return bad(f"has {len(parts)} parts separated by '_'; names and ids must come in pairs")
    pairs = tuple((parts[i], parts[i + 1]) for i in range(0, len(parts), 2))
    why = _pairs_problem(pairs, is_id)
    return bad(why) if why else ParsedName(pairs, True, "")


def _pairs_problem(pairs: tuple[tuple[str, str], ...], is_id: list[bool]) -> str:
    """What is wrong with the (name, id) pairs of a file name, or "": the order first, then
    each pair's id, name and length."""
    for i, (name, sid) in enumerate(pairs):
        if is_id[2 * i] and not is_id[2 * i + 1]:
            return (f"has '{name}' where a name belongs and '{sid}' where an id belongs: "
                    "write the name first, then the id")
    for i, (name, sid) in enumerate(pairs):
        if not is_id[2 * i + 1]:
            return f"has '{sid}' where a student id belongs; an id is digits only"
        if not any(ch.isalpha() for ch in name):
            return f"has '{name}' where a name belongs; a name needs letters"
        if len(name) > MAX_NAME_CHARS or len(sid) > MAX_NAME_CHARS:
            return f"has a part longer than {MAX_NAME_CHARS} characters"
    return ""


# --------------------------------------------------------------------------- name matching

# Letters NFKD does not decompose, each with its usual ASCII spellings.
_TRANSLIT: dict[str, tuple[str, ...]] = {
    "ß": ("ss", "s"), "ẞ": ("ss",), "æ": ("ae",), "Æ": ("ae",), "œ": ("oe",), "Œ": ("oe",),
    "ø": ("o", "oe"), "Ø": ("o", "oe"), "ł": ("l",), "Ł": ("l",), "đ": ("d", "dj"),
    "Đ": ("d", "dj"), "ð": ("d", "dh"), "Ð": ("d", "dh"), "þ": ("th",), "Þ": ("th",),
    "ı": ("i",), "ħ": ("h",), "Ħ": ("h",), "ŀ": ("l",), "ŧ": ("t",),
}
# Umlauts and rings spelled out (German and Scandinavian): ö as oe, å as aa.
_SPELLED = {"\u0308": "e", "\u030a": "a"}


@functools.lru_cache(maxsize=4096)
def _spellings(ch: str) -> frozenset[str]:
    """Every accepted (casefolded) spelling of one character of a member's name."""
    out = {ch.casefold()}
    if ch in _TRANSLIT:
        out.update(_TRANSLIT[ch])
    decomposed = unicodedata.normalize("NFKD", ch)
    base = "".join(c for c in decomposed if not unicodedata.combining(c))
    marks = [c for c in decomposed if unicodedata.combining(c)]
    if base and base != ch:
        out.add(base.casefold())
        for mark in marks:
            if mark in _SPELLED:
                out.add((base + _SPELLED[mark]).casefold())
    if unicodedata.combining(ch) or not ch.isalnum():
        out.add("")  # a stray combining mark, a hyphen, an apostrophe, a dot may be dropped
    return frozenset(out)


def _run_matches(target: str, parts: list[str]) -> bool:
    """Whether ``target`` spells a run of consecutive ``parts`` (one left-to-right pass).

    An NFA over the target: ``reach`` holds the offsets of the target that a run ending at the
    current character can have spelled. Every part may start a new run (offset 0), every
    part's end may finish one. Work is len(name) x (len(target) + 1) x spellings: the names
    are capped (:data:`MAX_NAME_CHARS`), so this is bounded, and linear in the name's length.
    """
    end = len(target)
    reach: set[int] = set()
    for part in parts:
        reach.add(0)  # a run may start at this part
        for ch in part:
            options = _spellings(ch)
            reach = {p + len(o) for p in reach for o in options
                     if p + len(o) <= end and target.startswith(o, p)}
            if not reach:
                break  # no run goes through this character; the next part starts afresh
        if end in reach:
            return True
    return False


def _name_parts(full_name: str) -> list[str]:
    """Parts of a name: split on spaces and also at hyphens ("Jean-Luc" gives Jean, Luc)."""
    parts: list[str] = []
    for word in unicodedata.normalize("NFC", full_name).split():
        pieces = [p for p in word.split("-") if p]
        parts.extend(pieces if pieces else [word])
    return parts


def name_matches(file_name_part: str, full_name: str) -> bool:
    """Whether a file-name part names this member (contract §4).

    Any run of consecutive parts of the name joined without spaces, case-insensitive; each
    accented letter may be written as itself, without its accent or spelled out (ö: o or oe,
    ß: ss, ø: o or oe, å: aa), chosen per letter. Hyphens and apostrophes may be kept or
    dropped: "JeanLuc", "Jean-Luc", "ONeil", "O'Neil". A name or part longer than
    :data:`MAX_NAME_CHARS` never matches (no work is spent on it).
    """
    target = unicodedata.normalize("NFC", file_name_part).casefold()
    # A spelled-out letter (ö as oe) doubles at most: a target twice the cap can still match.
    if not target or len(target) > 2 * MAX_NAME_CHARS or len(full_name) > MAX_NAME_CHARS:
        return False
    words = unicodedata.normalize("NFC", full_name).split()
    # Runs over whole space-separated words keep their inner hyphens optional; the pieces of
    # hyphenated words are parts too, so "Luc" alone or "Jones" of "Smith-Jones" match.
    return _run_matches(target, words) or _run_matches(target, _name_parts(full_name))


# --------------------------------------------------------------------------- findings

# One '@', something before it, a dot inside the domain, no spaces.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s.]+(?:\.[^@\s.]+)+$")


def _valid_email(address: str) -> bool:
    return bool(_EMAIL.match(address)) and not address.startswith(".") and ".." not in address


def _students(n: int) -> str:
    return f"{n} student" + ("" if n == 1 else "s")


def check_naming(
    filename: str,
    members: tuple[Member, ...],
    group_size: tuple[int, int] = (2, 3),
) -> tuple[NamingFinding, ...]:
    """Compare the file name with the group cell; at most one finding per code."""
    lo, hi = group_size
    allowed = f"{lo}" if lo == hi else f"{lo} or {hi}" if hi == lo + 1 else f"{lo} to {hi}"
    findings: list[NamingFinding] = []
    parsed = parse_filename(filename)
    if not parsed.ok:
        findings.append(NamingFinding("naming.pattern", parsed.problem))

    sizes: list[str] = []
    if not lo <= len(members) <= hi:
        sizes.append(f"the group cell lists {_students(len(members))}")
    if parsed.ok and not lo <= parsed.count <= hi:
        sizes.append(f"the file name lists {_students(parsed.count)}")
    if sizes:
        findings.append(NamingFinding(
            "naming.group_size", f"{' and '.join(sizes)}; a group has {allowed} members"))

    problems = _mismatches(parsed, members) if parsed.ok else []
    if problems:
        findings.append(NamingFinding("naming.mismatch", "; ".join(problems)))

    bad_mail = [f"{m.name}: '{m.email}'" for m in members if not _valid_email(m.email)]
    if bad_mail:
        findings.append(NamingFinding(
            "group.email", "not a valid e-mail address: " + "; ".join(bad_mail)))
    return tuple(findings)


def _mismatches(parsed: ParsedName, members: tuple[Member, ...]) -> list[str]:
    """Where the file name's (name, id) pairs and the group cell disagree: shared or repeated
    ids, an id no member has, a name that is not the member's, a member the name leaves out."""
    problems: list[str] = []
    by_id: dict[str, Member] = {}
    for m in members:
        if m.student_id in by_id:
            problems.append(f"{by_id[m.student_id].name} and {m.name} share the student "
                            f"id {m.student_id} in the group cell")
        by_id.setdefault(m.student_id, m)
    seen: set[str] = set()
    for name, sid in parsed.pairs:
        member = by_id.get(sid)
        if sid in seen:
            problems.append(f"'{name}_{sid}' lists student id {sid} a second time")
            continue
        seen.add(sid)
        if member is None:
            problems.append(f"'{name}_{sid}': no member of the group cell has student id {sid}")
        elif not name_matches(name, member.name):
            problems.append(f"'{name}_{sid}': id {sid} belongs to {member.name}, but "
                            f"'{name}' is not part of that name")
    for m in members:
        if m.student_id not in seen:
            problems.append(f"{m.name} ({m.student_id}) is in the group cell but not in "
                            "the file name")
    return problems


# --------------------------------------------------------------------------- suggestion

_SUFFIXES = {"jr", "jr.", "sr", "sr.", "ii", "iii", "iv"}


def _ascii_name(part: str) -> str:
    """Diacritics dropped (ß as ss), everything that is not a letter or digit removed."""
    out: list[str] = []
    for ch in unicodedata.normalize("NFC", part):
        if ch in _TRANSLIT:
            spelled = _TRANSLIT[ch][0]
            out.append(spelled.capitalize() if ch.isupper() else spelled)  # Ł -> L, Æ -> Ae
            continue
        base = "".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c))
        if base.isascii() and base.isalnum():
            out.append(base)
        elif ch.isalnum():
            out.append(ch)  # a letter with no ASCII form (Greek, Cyrillic, CJK) stays as it is
    return "".join(out)


def suggest_filename(members: tuple[Member, ...] | list[Member], ext: str = ".zip") -> str:
    """The file name the group should use: family names in ASCII with their ids."""
    ext = ext if ext.startswith(".") else f".{ext}"
    pieces: list[str] = []
    for m in members:
        parts = m.name.split()
        while len(parts) > 1 and parts[-1].casefold() in _SUFFIXES:
            parts = parts[:-1]  # "Martin Luther King Jr." files as King
        family = ""
        for part in reversed(parts):  # a last part of punctuation only is skipped
            family = _ascii_name(part)
            if family:
                break
        sid = "".join(ch for ch in m.student_id if not ch.isspace() and ch != "_")
        pieces.append(f"{family}_{sid}")
    return "_".join(pieces) + ext
