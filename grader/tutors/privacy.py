"""Blind scoring: pseudonyms keyed by the course secret, blind views, and reveals that are recorded.

Blind scoring. Each group (a submission folder) has a pseudonym, :func:`pseudonym`: ``Group
K7F-2QM``, six letters and digits of the Crockford alphabet (no I, L, O, U) taken from
HMAC-SHA256 of the folder under the course secret (grader/checks/secret.py). It is the same in every run
and every tool while the secret is, and says nothing to anyone without the secret. What a tutor
scores from (``grade review``'s pages and scoring sheet, and ``grade serve`` through
:func:`blind_view`) shows the pseudonym only: :func:`blind_view` drops the group, the file names
and the tutor-only detail, and replaces in every remaining text (answers, flags, notes) each
name, name part, id and e-mail of the group, and each part of the submission's file name, with
``[hidden]``. A tutor who must know who a group is asks for a reveal (``grade review --reveal
GROUP --reason TEXT``); :func:`reveal` records who, when, which group and why in the gradebook's
``reveals`` table before anything is shown. Exports to the platform (``grade export``) and
``grades.csv`` join the real identities: they are not scoring material.

What is stored and for how long, and the purge: grader/tutors/retention.py.
"""
from __future__ import annotations

import re
import time
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from grader.checks.secret import derive
from grader.errors import UsageError
from grader.folder.outdir import RESULT, OutDir

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
HIDDEN = "[hidden]"
#: Characters of a pseudonym (30 bits); blind pages need the course secret to make them.
PSEUDONYM_CHARS = 6


def pseudonym(secret: bytes, group_key: str, chars: int = PSEUDONYM_CHARS) -> str:
    """``Group K7F-2QM``: the pseudonym of the group whose key (its submission folder) is
    ``group_key``; stable while the secret is, meaningless without it."""
    n = int.from_bytes(derive(secret, "pseudonym", group_key)[:8], "big")
    code = "".join(CROCKFORD[(n >> (5 * i)) & 31] for i in range(chars))
    return f"Group {code[:3]}-{code[3:]}"


def pseudonyms(secret: bytes, group_keys: Iterable[str]) -> dict[str, str]:
    """``group_key -> pseudonym`` for a course; where two would be equal (about one course in
    forty thousand of 300 groups), both get two characters more, so each names one group."""
    keys = list(dict.fromkeys(group_keys))
    out = {k: pseudonym(secret, k) for k in keys}
    chars = PSEUDONYM_CHARS
    while len(set(out.values())) < len(out) and chars < 12:
        chars += 2
        seen: dict[str, int] = {}
        for v in out.values():
            seen[v] = seen.get(v, 0) + 1
        out = {k: (pseudonym(secret, k, chars) if seen[v] > 1 else v) for k, v in out.items()}
    return out


def slug(label: str) -> str:
    """``K7F-2QM`` of ``Group K7F-2QM``: for file names and anchors."""
    return label.removeprefix("Group ").strip()


def resolve_group(group: str, labels: Mapping[str, str]) -> str:
    """The folder that ``group`` names: a pseudonym (with or without ``Group``, any case) or a folder."""
    if group in labels:
        return group
    wanted = slug(group).upper()
    for folder, label in labels.items():
        if slug(label) == wanted:
            return folder
    raise UsageError(f"no group '{group}' in this output folder; give a pseudonym as the review pages show it "
                     "(e.g. 'Group K7F-2QM')")


# -- what identifies a group ---------------------------------------------------------------------
def _fold(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def identity_tokens(data: Mapping[str, Any]) -> list[str]:
    """Every name, name part, id and e-mail of a result's group, and the parts of its file and
    folder names, as they may appear in its texts (also without diacritics); longest first."""
    found: set[str] = set()
    for m in data.get("group") or ():
        if not isinstance(m, Mapping):
            continue
        name = str(m.get("name", ""))
        email = str(m.get("email", ""))
        found.update({name, str(m.get("student_id", "")), email, email.split("@")[0]})
        found.update(re.split(r"[\s\-]+", name))
    for key in ("submission", "folder", "notebook"):
        value = str(data.get(key) or "")
        stem = re.sub(r"(\.[A-Za-z0-9]{1,5})+$", "", value)
        found.update({value, stem})
        found.update(re.split(r"[_\s.\-]+", stem))
    tokens = {t for t in found if len(t.strip()) >= 3 and t.lower() not in _COMMON}
    tokens |= {_fold(t) for t in tokens}
    return sorted(tokens, key=lambda t: (-len(t), t))


# Parts of file names that are no one's name.
_COMMON = {"zip", "ipynb", "sheet11", "sheet", "submission", "final", "group", "abgabe", "exercise", "blatt"}


def redactor(tokens: Sequence[str]) -> Any:
    """A function replacing each of ``tokens`` (as a whole word, any case) with ``[hidden]``."""
    if not tokens:
        return lambda text: text
    pattern = re.compile(r"(?<![\w])(?:" + "|".join(re.escape(t) for t in tokens) + r")(?![\w])", re.IGNORECASE)
    return lambda text: pattern.sub(HIDDEN, text)


def _scrub(value: Any, redact: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {k: _scrub(v, redact) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_scrub(v, redact) for v in value]
    return value


#: Keys of a result's JSON that a blind view leaves out: who the group is, where its files are,
#: and what only identifies (the code and outputs are not scored from the review).
_DROPPED = ("group", "tutor_detail", "cells", "code_cells", "other_files", "notebook", "sha256")


def blind_view(data: Mapping[str, Any], label: str) -> dict[str, Any]:
    """A result's JSON as a blind tutor may see it: ``submission`` and ``folder`` are the
    pseudonym ``label`` (also in ``pseudonym``), the group and file names are gone, and every
    text has the group's identities replaced (see :func:`identity_tokens`), except the grader's
    own words for a status (of the submission and of each question), which identify no one: so a
    blind view is still a result this grader reads (``SubmissionResult.from_json``), even where
    a folder is called ``error``."""
    redact = redactor(identity_tokens(data))
    out = {k: _scrub(v, redact) for k, v in data.items() if k not in _DROPPED}
    # A tutor's own words stay as written: a sheet written again must import as unchanged.
    for qid, q in (data.get("questions") or {}).items():
        for key in ("comment", "scored_by", "status"):
            if isinstance(q, Mapping) and key in q:
                out["questions"][qid][key] = q[key]
    if "status" in data:
        out["status"] = data["status"]
    out.update(submission=label, folder=label, pseudonym=label, group=[], blind=True)
    return out


def blind_cells(data: Mapping[str, Any]) -> list[Any]:
    """A result's notebook cells and outputs (``cells``, which :func:`blind_view` leaves out) with
    the group's identities replaced, for a page that shows the group's code beside an answer."""
    cells = _scrub(list(data.get("cells") or []), redactor(identity_tokens(data)))
    return list(cells) if isinstance(cells, list) else []


def display_name(label: str, data: Mapping[str, Any], revealed: bool) -> str:
    """What a page calls a group: the pseudonym, and after a recorded reveal also the file name."""
    return f"{label} ({data.get('submission', '')})" if revealed else label


def course_pseudonyms(out: OutDir, secret: bytes) -> dict[str, str]:
    """``folder -> pseudonym`` of every submission folder of ``out``."""
    return pseudonyms(secret, [p.name for p in sorted(out.root.iterdir()) if (p / RESULT).is_file()])


def reveal(out: OutDir, group: str, tutor: str, reason: str, secret: bytes, now: float | None = None) -> str:
    """Record that ``tutor`` sees who ``group`` (a pseudonym or folder) is, and why; the folder.
    The reason is required: a reveal is an exception to blind scoring that must be accounted for."""
    if not reason.strip():
        raise UsageError("a reveal needs a reason (--reason TEXT): it is recorded with your name and the time")
    folder = resolve_group(group, course_pseudonyms(out, secret))
    with out.gradebook() as book:
        book.record_reveal(folder, tutor, reason.strip(), now or time.time())
    return folder
