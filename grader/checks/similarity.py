"""Copied work: compare the code cells and the written answers of every pair of groups.

The comparison is copydetect's (https://github.com/blingenf/copydetect): code is tokenised and
filtered by Pygments (every variable name becomes ``V``, every function name ``F``, strings
``S``; comments and layout are dropped), so renamed variables do not hide a copy; the k-grams of
what remains are winnowed (Schleimer, Wilkerson & Aiken 2003) and two documents share what their
fingerprints share, wherever it stands in the document, so reordered cells do not hide one either.
Written answers are compared the same way on their text, folded (grader/cleantext.py's
:func:`~grader.cleantext.fold`: characters that draw nothing such as zero-width spaces dropped,
NFKC forms, case, accents and look-alike letters folded; whitespace collapsed); code is compared
with its invisible characters as blanks. Only the one group cell (names and ids) is left out, so
a ``group`` tag on every cell hides nothing.
What the template already contains (its code and its markdown: the questions, the function
stubs, "Your answer here") is boilerplate and never counts.

The one change to copydetect's procedure is the k-gram hash: copydetect uses Python's ``hash``,
which changes from process to process; here a keyed BLAKE2 hash makes the fingerprints, and so
``similarity.json`` and ``summary.html``, the same on every run.

A pair's similarity is the larger of the two shares copydetect reports (the part of one group's
own code, or text, found in the other's), for code and for text; the pair ranks by the larger of
the two. ``THRESHOLD`` was set between the independent solutions of the test suite (at most 0.27)
and a copy with renamed variables and reordered cells (above 0.75). Run in the batch, the result
is kept in ``OUT/similarity.json`` and shown in ``summary.html``; a student id that appears in two
groups is listed there too.
"""
from __future__ import annotations

import hashlib
import heapq
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from grader import resources
from grader.cleantext import fold_char, skeleton
from grader.result import SubmissionResult

THRESHOLD = 0.5
CODE_K, CODE_WINDOW = 25, 6      # copydetect's defaults: noise threshold 25, guarantee threshold 30
TEXT_K, TEXT_WINDOW = 40, 8      # about seven words: shorter runs are common phrases
MIN_COVERAGE = 50                # a side with less own (non-template) content than this is not compared
TOP = 10                         # pairs shown with their passages (besides every pair above the threshold)
MAX_SHOWN = 40                   # at most this many pairs are stored
# The most characters of one group's code (and of its answers) that are fingerprinted and kept:
# the template's code is about 10,000; hashing is a Python loop per character, so a 25 MB
# notebook of code would otherwise cost minutes and land whole in result.json.
MAX_DOC_CHARS = 200_000
# A line of code longer than this is lexed alone, in pieces of this length: Pygments' work on an
# unterminated escape grows with the line's length (quadratic on one endless line). Real code
# lines are under 120 characters; only such a line lexes differently for being cut.
MAX_LEXED_LINE = 1_000
CONTEXT_LINES = 2
MAX_PASSAGE_CHARS = 6000
TEMPLATE = resources.template_notebook()


# -- sources -----------------------------------------------------------------------------------
def notebook_code_cells(nb: Any) -> list[str]:
    """The sources of a notebook's code cells, without THE group cell (names and ids): only the
    one cell :func:`grader.submission.notebook.group_cell_index` picks, so tagging every cell ``group``
    hides no code from the comparison (nor from the tutor's report)."""
    from grader.submission.notebook import group_cell_index
    group, _ = group_cell_index(nb)
    return [c.source for i, c in enumerate(nb.cells) if c.cell_type == "code" and i != group]


def capped_code_cells(nb: Any) -> list[str]:
    """What grading carries on its result for the comparison: the code cells, capped."""
    return _capped(notebook_code_cells(nb))


def _capped(cells: list[str], limit: int = MAX_DOC_CHARS) -> list[str]:
    """The cells up to ``limit`` characters in all (the last one cut), in one pass."""
    out: list[str] = []
    left = limit
    for source in cells:
        if left <= 0:
            break
        out.append(source[:left])
        left -= len(out[-1])
    return out


@dataclass(frozen=True)
class Document:
    """What one group wrote: its code and its written answers."""

    key: str
    label: str
    code: str
    text: str


def result_document(result: SubmissionResult) -> Document:
    """The group's code cells and written answers, as grading kept them in its result."""
    code = "\n\n".join(result.code_cells)
    answers = {qid: q.answer.markdown if q.answer is not None else "" for qid, q in result.questions.items()}
    return Document(result.folder, result.submission, code, answers_text(answers))


def answers_text(answers: Mapping[str, str]) -> str:
    """The written answers one after another, leaving out those the template already holds."""
    blank = _template_answers()
    parts = [a.strip() for qid, a in answers.items()
             if a.strip() and " ".join(a.split()) != " ".join(blank.get(qid, "").split())]
    return "\n\n".join(parts)


@lru_cache(maxsize=1)
def _template_answers() -> dict[str, str]:
    import nbformat

    from grader.submission.notebook import template_answers
    return template_answers(nbformat.read(str(TEMPLATE), as_version=4)) if TEMPLATE.exists() else {}


def notebook_document(key: str, nb: Any) -> Document:
    """A notebook read directly (without grading it), e.g. for tests and one-off checks."""
    from grader.rubric import WRITTEN_IDS
    from grader.submission.notebook import find_answer
    answers = {qid: find_answer(nb, qid).source for qid in WRITTEN_IDS}
    return Document(key, key, "\n\n".join(notebook_code_cells(nb)), answers_text(answers))


# -- fingerprints (copydetect) ------------------------------------------------------------------
@dataclass
class Fingerprint:
    """The attributes ``copydetect.detector.compare_files`` reads from a ``CodeFingerprint``."""

    raw_code: str
    filtered_code: str
    offsets: np.ndarray
    hashes: set[int]
    hash_idx: dict[int, list[int]]
    k: int
    token_coverage: float
    text_map: np.ndarray | None = None   # text: each normalised character's index in raw_code


def _hashes(doc: str, k: int) -> np.ndarray:
    out = np.empty(max(len(doc) - k + 1, 0), dtype=np.int64)
    for i in range(len(out)):
        digest = hashlib.blake2b(doc[i:i + k].encode("utf-8"), digest_size=8, key=b"sheet11").digest()
        out[i] = int.from_bytes(digest, "little", signed=True)
    return out


def _winnowed(doc: str, k: int, window: int) -> tuple[np.ndarray, np.ndarray]:
    from copydetect.utils import winnow
    hashes = _hashes(doc, k)
    if len(hashes) == 0:
        return hashes, np.array([], dtype=np.int64)
    if len(hashes) < window:  # copydetect's winnowing needs a full window
        return hashes, np.arange(len(hashes))
    selected: np.ndarray
    positions: np.ndarray
    selected, positions = winnow(hashes, window, remove_duplicates=False)  # copydetect is untyped
    return selected, positions


def _normalise(text: str) -> tuple[str, np.ndarray]:
    """Folded (grader/cleantext.py's :func:`~grader.cleantext.fold_char`: invisible characters
    dropped, NFKC forms, case, accents and look-alike letters folded), whitespace runs as one
    space; and each character's index in ``text``."""
    chars: list[str] = []
    where: list[int] = []
    for i, ch in enumerate(text):
        if ch.isspace():
            if chars and chars[-1] != " ":
                chars.append(" ")
                where.append(i)
            continue
        for folded in fold_char(ch):
            chars.append(" " if folded.isspace() else folded)
            where.append(i)
    return "".join(chars), np.array(where, dtype=np.int64)


def _code_chars(raw: str) -> str:
    """``raw`` with the same length, each character as it is compared: what draws nothing is a
    blank (Python rejects it in names, so it only ever stands between tokens, in strings or in
    comments), a compatibility form that stays one character is that character (Python itself
    reads names in NFKC)."""
    out = []
    for ch in raw:
        if ch.isascii():
            out.append(ch)
            continue
        folded = fold_char(ch)
        out.append(" " if not folded else folded if len(folded) == 1 else ch)
    return "".join(out)


def _pieces(raw: str, size: int) -> list[tuple[int, str]]:
    """``raw`` as pieces to lex, with their starts: the runs of lines up to ``size`` characters
    whole, and each longer line alone, cut hard every ``size`` characters."""
    out: list[tuple[int, str]] = []
    run_start = pos = 0
    for line in raw.splitlines(keepends=True):
        if len(line) > size:
            if pos > run_start:
                out.append((run_start, raw[run_start:pos]))
            out.extend((pos + k, line[k:k + size]) for k in range(0, len(line), size))
            run_start = pos + len(line)
        pos += len(line)
    if pos > run_start:
        out.append((run_start, raw[run_start:pos]))
    return out


def _filter_code(raw: str) -> tuple[str, np.ndarray]:
    """copydetect's tokenising filter with every line bounded: Pygments' Python lexer looks for
    the end of an escape to the end of the line (``'\\N{`` repeated on one line of 48,000
    characters took 2.5 s, quadratic), so a line longer than :data:`MAX_LEXED_LINE` is lexed
    alone in pieces of that length, and the work is linear in the document's length. Offsets
    are copydetect's (a filtered index and the characters removed before it), shifted to the
    whole document."""
    from copydetect.utils import filter_code
    filtered: list[str] = []
    offsets: list[np.ndarray] = []
    done = 0
    for start, piece in _pieces(_code_chars(raw), MAX_LEXED_LINE):
        text, offs = filter_code(piece, "cells.py", "python")
        if len(offs):
            offs = np.asarray(offs, dtype=np.int64).reshape(-1, 2) + np.array([done, start - done])
            offsets.append(offs)
        filtered.append(text)
        done += len(text)
    return "".join(filtered), (np.concatenate(offsets) if offsets else np.zeros((0, 2), dtype=np.int64))


def _prepare(raw: str, kind: str) -> tuple[str, np.ndarray]:
    if kind == "code":
        return _filter_code(raw)
    return _normalise(raw)


def prepared(doc: Document) -> dict[str, Any]:
    """The per-group work of the comparison (lexing the code, folding the text), as JSON: the batch
    runs it for each group under that submission's budget (grader/batch/run.py)."""
    out: dict[str, Any] = {}
    for kind in ("code", "text"):
        filtered, mapping = _prepare(getattr(doc, kind)[:MAX_DOC_CHARS], kind)
        out[kind] = [filtered, mapping.tolist()]
    return out


def fingerprint(raw: str, kind: str, boilerplate: np.ndarray,
                ready: tuple[str, np.ndarray] | None = None) -> Fingerprint:
    """``raw``'s fingerprint; ``ready`` is :func:`prepared`'s result for it where already made."""
    from copydetect.utils import get_token_coverage
    k, window = (CODE_K, CODE_WINDOW) if kind == "code" else (TEXT_K, TEXT_WINDOW)
    raw = raw[:MAX_DOC_CHARS]  # bounded work per group (a prefix: passages map back unchanged)
    filtered, mapping = ready if ready is not None else _prepare(raw, kind)
    hashes, idx = _winnowed(filtered, k, window)
    if len(boilerplate) and len(hashes):
        keep = ~np.isin(hashes, boilerplate)
        hashes, idx = hashes[keep], idx[keep]
    hash_idx: dict[int, list[int]] = {}
    for h, i in zip(hashes.tolist(), idx.tolist()):
        hash_idx.setdefault(h, []).append(i)
    coverage = float(get_token_coverage(hash_idx, k, len(filtered))) if filtered else 0.0
    # copydetect maps code slices back with its offsets; text keeps its own map (see _raw_slices)
    offsets = mapping if kind == "code" else np.array([])
    return Fingerprint(raw, filtered, offsets, set(hashes.tolist()), hash_idx, k, coverage,
                       mapping if kind == "text" else None)


@lru_cache(maxsize=4)
def template_boilerplate(path: Path = TEMPLATE) -> dict[str, np.ndarray]:
    """The fingerprints of everything the template holds: code cells, markdown cells."""
    import nbformat
    if not path.exists():
        return {"code": np.array([], dtype=np.int64), "text": np.array([], dtype=np.int64)}
    nb = nbformat.read(str(path), as_version=4)
    code = "\n\n".join(c.source for c in nb.cells if c.cell_type == "code")
    text = "\n\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    out = {}
    for kind, raw in (("code", code), ("text", text)):
        k, window = (CODE_K, CODE_WINDOW) if kind == "code" else (TEXT_K, TEXT_WINDOW)
        # every k-gram of the template, not only the winnowed ones: a student's window may pick
        # another hash of the same template passage
        out[kind] = np.unique(_hashes(_prepare(raw, kind)[0], k))
    return out


# -- comparing ---------------------------------------------------------------------------------
def _raw_slices(fp: Fingerprint, slices: np.ndarray) -> list[tuple[int, int]]:
    if len(slices) == 0 or len(slices[0]) == 0:
        return []
    text_map = fp.text_map
    out = []
    for start, end in zip(slices[0].tolist(), slices[1].tolist()):
        if text_map is not None and len(text_map):
            start, end = int(text_map[min(start, len(text_map) - 1)]), int(text_map[min(end, len(text_map)) - 1]) + 1
        out.append((max(0, int(start)), min(len(fp.raw_code), int(end))))
    return _merge(out)


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[list[int]] = []
    for s, e in sorted(spans):
        if merged and s <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        elif e > s:
            merged.append([s, e])
    return [(s, e) for s, e in merged]


def compare(a: Fingerprint, b: Fingerprint) -> dict[str, Any]:
    """copydetect's comparison: the share of each side found in the other, and where."""
    from copydetect.detector import compare_files
    if a.token_coverage < MIN_COVERAGE or b.token_coverage < MIN_COVERAGE:
        return {"a": 0.0, "b": 0.0, "score": 0.0, "spans_a": [], "spans_b": []}
    _overlap, (share_a, share_b), (slices_a, slices_b) = compare_files(a, b)
    share_a, share_b = min(float(share_a), 1.0), min(float(share_b), 1.0)
    return {"a": round(share_a, 4), "b": round(share_b, 4), "score": round(max(share_a, share_b), 4),
            "spans_a": _raw_slices(a, slices_a), "spans_b": _raw_slices(b, slices_b)}


def passages(raw: str, spans: list[tuple[int, int]]) -> list[tuple[str, bool]]:
    """``raw`` as (text, shared) pieces for a page to mark, with only a little context kept
    around the shared passages."""
    pieces: list[tuple[str, bool]] = []
    pos = 0
    for s, e in spans:
        if s > pos:
            pieces.append((raw[pos:s], False))
        pieces.append((raw[s:e], True))
        pos = e
    if pos < len(raw):
        pieces.append((raw[pos:], False))
    out: list[tuple[str, bool]] = []
    budget = MAX_PASSAGE_CHARS
    for i, (text, shared) in enumerate(pieces):
        if not shared:
            lines = text.split("\n")
            first, last = i == 0, i == len(pieces) - 1
            if first and len(lines) > CONTEXT_LINES:
                text = "…\n" + "\n".join(lines[-CONTEXT_LINES - 1:])
            elif last and len(lines) > CONTEXT_LINES:
                text = "\n".join(lines[:CONTEXT_LINES + 1]) + "\n…"
            elif len(lines) > 2 * CONTEXT_LINES + 1:
                text = "\n".join(lines[:CONTEXT_LINES + 1]) + "\n…\n" + "\n".join(lines[-CONTEXT_LINES - 1:])
        if len(text) > budget:
            out.append((text[:budget], shared))
            out.append(("\n… (cut)", False))
            break
        budget -= len(text)
        out.append((text, shared))
    return out


def _ready(data: Mapping[str, Any] | None, kind: str) -> tuple[str, np.ndarray] | None:
    if data is None:
        return None
    filtered, mapping = data[kind]
    return str(filtered), np.array(mapping, dtype=np.int64).reshape((-1, 2) if kind == "code" else (-1,))


def analyse(documents: Iterable[Document], threshold: float = THRESHOLD,
            boilerplate: Mapping[str, np.ndarray] | None = None,
            ready: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """Every pair of ``documents`` compared; the most similar first, with their passages.
    ``ready``: :func:`prepared` per document key, where it was made already."""
    docs = list(documents)
    plate = boilerplate if boilerplate is not None else template_boilerplate()
    made = ready or {}
    prints = {d.key: {kind: fingerprint(getattr(d, kind), kind, plate[kind], _ready(made.get(d.key), kind))
                      for kind in ("code", "text")}
              for d in docs}
    counted = 0

    def every_pair() -> Iterable[dict[str, Any]]:
        nonlocal counted
        for a, b in itertools.combinations(docs, 2):
            entry: dict[str, Any] = {"a": a.key, "b": b.key, "a_label": a.label, "b_label": b.label}
            for kind in ("code", "text"):
                entry[kind] = compare(prints[a.key][kind], prints[b.key][kind])
            entry["score"] = max(entry["code"]["score"], entry["text"]["score"])
            counted += 1
            yield entry

    # Only the best MAX_SHOWN pairs are held, never every pair: 2,000 groups are 2 million pairs,
    # which held at once took 2.3 GB (benchmarks/scale.py). The same pairs as sorting them all.
    best = heapq.nsmallest(MAX_SHOWN, every_pair(), key=lambda p: (-p["score"], p["a"], p["b"]))
    kept = [p for i, p in enumerate(best) if i < TOP or p["score"] >= threshold]
    raw = {d.key: d for d in docs}
    for p in kept:
        for kind in ("code", "text"):
            c = p[kind]
            c["passages_a"] = passages(getattr(raw[p["a"]], kind), c.pop("spans_a")) if c["score"] else []
            c["passages_b"] = passages(getattr(raw[p["b"]], kind), c.pop("spans_b")) if c["score"] else []
    return {"threshold": threshold, "compared": len(docs), "pairs_compared": counted,
            "method": f"copydetect winnowing; code k={CODE_K}, window {CODE_WINDOW}; "
                      f"text k={TEXT_K}, window {TEXT_WINDOW}; template left out",
            "pairs": kept}


def duplicate_ids(results: Iterable[SubmissionResult]) -> list[dict[str, Any]]:
    """Student ids that appear in more than one group, compared by their skeletons (a look-alike
    of another group's id is that id: grader/cleantext.py's :func:`~grader.cleantext.skeleton`)."""
    where: dict[str, list[SubmissionResult]] = {}
    for r in results:
        for m in r.group:
            sid = skeleton(str(m.get("student_id", "")))
            if sid and all(r is not seen for seen in where.setdefault(sid, [])):
                where[sid].append(r)
    return [{"student_id": sid, "names": sorted({str(m.get("name", "")) for r in rs for m in r.group
                                                if skeleton(str(m.get("student_id", ""))) == sid}),
             "submissions": [{"folder": r.folder, "submission": r.submission} for r in rs]}
            for sid, rs in sorted(where.items()) if len(rs) > 1]


# -- in the batch ------------------------------------------------------------------------------
def batch_similarity(results: Iterable[SubmissionResult],
                     ready: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """Every pair of the results compared, in memory (grader/folder/outdir.py stores it); ``ready``
    as for :func:`analyse`."""
    return analyse((result_document(r) for r in results), ready=ready)
