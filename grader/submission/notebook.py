"""Parse a submitted notebook and find its parts by tag (or, failing that, by heading).

Everything here runs on a stranger's file in the grader's process, so every step is linear in
the file's size and nothing recurses on its structure: the JSON nesting depth is measured by a
flat scan before any parser sees it, the cell count and the image attachments are capped.
"""
from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any

import nbformat
import numpy as np
from nbformat.validator import ValidationError

from grader.rubric import WRITTEN_IDS, Limits

# A notebook nests about 6 deep (notebook, cells, cell, outputs, output, data); JSON outputs and
# metadata a little more. Deeper JSON is refused before json/nbformat/jsonschema, which recurse per
# level (a 100,000-deep array raised RecursionError out of the grader). This is the grader's own
# safety limit, not course policy: a constant, not a rubric entry, so no rubric can loosen it.
MAX_JSON_DEPTH = 64
# What a report shows as a student's drawing: raster images only (contract §2: "an image
# attachment"); SVG can carry scripts, other types are not drawings.
IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif")
# Only the first line of a markdown cell is searched for a question's heading (at most this many
# characters: the grader's own safety limit, not course policy: a constant, not a rubric entry, so
# no rubric can loosen it).
MAX_HEADING_CHARS = 200


class NotebookInvalid(Exception):
    """The file is not a notebook this grader can run; the message is for the student."""


def json_depth(text: str) -> int:
    """The nesting depth of a JSON text, computed flat (no recursion, C-speed passes).

    Strings are blanked first (an escaped quote never ends one), then every bracket counts +1
    or -1 and the depth is the running sum's maximum. A malformed text gets some number; the
    JSON parser says what is wrong with it afterwards.
    """
    bare = _JSON_STRING.sub("", text)
    codes = np.frombuffer(bare.encode("ascii", "replace"), dtype=np.uint8)
    steps = ((codes == ord("[")) | (codes == ord("{"))).astype(np.int32)
    steps -= ((codes == ord("]")) | (codes == ord("}"))).astype(np.int32)
    return int(np.cumsum(steps).max(initial=0))


# A JSON string; an unterminated one runs to the end of the text. The pattern can never fail
# once it has seen a quote, so the search never backtracks over a string (linear time).
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)', re.DOTALL)


def parse_notebook(data: bytes, limits: Limits | None = None) -> Any:
    """Read, upgrade to nbformat 4, validate, and clear stored outputs (on a copy).

    With ``limits``, a notebook of more than ``limits.max_cells`` cells is refused and image
    attachments beyond ``limits.max_attachments_mb`` are dropped (see :func:`clean_attachments`).
    """
    try:
        text = data.decode("utf-8-sig")
        depth = json_depth(text)
        if depth > MAX_JSON_DEPTH:
            raise NotebookInvalid(f"the notebook's JSON is nested more than {MAX_JSON_DEPTH} levels "
                                  "deep, which no Jupyter notebook needs; open it in Jupyter, clear "
                                  "the outputs, save it again and resubmit")
        raw = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise NotebookInvalid(f"the notebook is not valid JSON ({type(exc).__name__}: {str(exc)[:120]}); "
                              "open it in Jupyter, save it again and resubmit") from None
    except RecursionError:  # the depth scan should have caught it; never let it escape
        raise NotebookInvalid("the notebook's JSON is nested too deeply to be read") from None
    if not isinstance(raw, dict) or "cells" not in raw and "worksheets" not in raw:
        raise NotebookInvalid("the file is JSON but not a Jupyter notebook (no cells)")
    cells = raw.get("cells")
    max_cells = limits.max_cells if limits is not None else None
    if max_cells is not None and isinstance(cells, list) and len(cells) > max_cells:
        raise NotebookInvalid(f"the notebook has {len(cells)} cells; at most {max_cells} are graded "
                              "(the template has fewer than 100): merge or delete cells and resubmit")
    try:
        nb = nbformat.reads(text, as_version=4)
        _changes, nb = nbformat.validator.normalize(nb)
        nb = nbformat.from_dict(nb)
        nbformat.validate(nb)
    except (ValidationError, nbformat.reader.NotJSONError, KeyError, TypeError, ValueError,
            AttributeError, LookupError, NameError, RecursionError) as exc:
        # NameError: nbformat's upgrade of an old-format notebook with an unknown cell type fails
        # with UnboundLocalError; RecursionError: deeply nested JSON.
        raise NotebookInvalid(f"the notebook does not follow the Jupyter format ({str(exc).splitlines()[0][:160]}); "
                              "open it in Jupyter, save it again and resubmit") from None
    spec = nb.metadata.get("kernelspec", {}) or {}
    language = str(spec.get("language") or nb.metadata.get("language_info", {}).get("name") or "python")
    if language.lower() != "python":
        raise NotebookInvalid(f"the notebook's kernel is {spec.get('display_name') or language}; "
                              "this sheet must be solved in Python 3")
    if max_cells is not None and len(nb.cells) > max_cells:  # an old format's worksheets
        raise NotebookInvalid(f"the notebook has {len(nb.cells)} cells; at most {max_cells} are graded")
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    if limits is not None:
        nb.metadata["sheet11_attachment_notes"] = clean_attachments(
            nb, int(limits.max_attachments_mb * 1024 * 1024))
    return nb


def clean_attachments(nb: Any, max_bytes: int) -> list[str]:
    """Keep only decodable raster image attachments, within ``max_bytes`` for the notebook.

    Each attachment is kept once (its name), however often the markdown refers to it; a report
    inlines it once (:func:`grader.pages.report.render_markdown`). Returns notes for the tutor: what
    was dropped and why. Works in place and in one pass.
    """
    notes: list[str] = []
    used = 0
    for index, cell in enumerate(nb.cells):
        attachments = cell.get("attachments")
        if not attachments:
            continue
        kept: dict[str, Any] = {}
        for name, bundle in attachments.items() if isinstance(attachments, dict) else ():
            images = {m: d for m, d in (bundle or {}).items()
                      if m in IMAGE_TYPES and isinstance(d, str)} if isinstance(bundle, dict) else {}
            if not images:
                notes.append(f"cell {index + 1}: attachment '{name[:60]}' is not a PNG, JPEG or GIF "
                             "image and is not shown")
                continue
            mime, data = next(iter(images.items()))  # one rendering of a drawing is enough
            size = len(data)
            if used + size > max_bytes:
                notes.append(f"cell {index + 1}: attachment '{name[:60]}' ({size / 1e6:.1f} MB) is "
                             f"not shown: the notebook's images passed {max_bytes / 1e6:g} MB")
                continue
            try:
                base64.b64decode(data[:4096], validate=False)
            except (binascii.Error, ValueError):
                notes.append(f"cell {index + 1}: attachment '{name[:60]}' is not valid base64")
                continue
            used += size
            kept[name] = {mime: data}
        cell["attachments"] = kept
    return notes


def tags(cell: Any) -> list[str]:
    value = cell.get("metadata", {}).get("tags", [])
    return [t for t in value if isinstance(t, str)] if isinstance(value, list) else []


def find_tagged(nb: Any, tag: str) -> list[int]:
    return [i for i, c in enumerate(nb.cells) if tag in tags(c)]


@dataclass(frozen=True)
class Located:
    source: str
    index: int | None
    found_by: str  # tag | heading | ""


def _heading_pattern(qid: str) -> re.Pattern[str]:
    # "11.3.4a" may be written "11.3.4 a)", "11.3.4(a)", "11.3.4.a"
    head = re.escape(qid[:-1]) + r"\s*[.(]?\s*" + qid[-1] if qid[-1].isalpha() else re.escape(qid)
    return re.compile(r"(?<![\d.])" + head + r"(?![\d])", re.IGNORECASE)


def find_answer(nb: Any, qid: str) -> Located:
    """The answer cell of a written question: by its tag, else the markdown cell after its heading."""
    tagged = find_tagged(nb, f"answer-{qid}")
    if tagged:
        return Located("".join(nb.cells[tagged[0]].source), tagged[0], "tag")
    questions = find_tagged(nb, f"question-{qid}")
    if not questions:
        pattern = _heading_pattern(qid)
        questions = [i for i, c in enumerate(nb.cells)
                     if c.cell_type == "markdown"
                     and pattern.search(c.source[:MAX_HEADING_CHARS].split("\n", 1)[0] if c.source else "")]
    for start in questions:
        for j in range(start + 1, min(start + 3, len(nb.cells))):
            cell = nb.cells[j]
            if cell.cell_type == "markdown" and not any(t.startswith("question-") for t in tags(cell)):
                return Located(cell.source, j, "heading")
    return Located("", None, "")


def group_cell_index(nb: Any) -> tuple[int | None, str]:
    """The index of THE group cell (the first tagged ``group``, else the first code cell that
    assigns ``GROUP``) and how it was found; ``(None, '')`` without one. One cell only: a tag on
    more cells makes none of the others a group cell."""
    tagged = find_tagged(nb, "group")
    if tagged:
        return tagged[0], "tag"
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and re.match(r"\s*(#.*\n\s*)*GROUP\s*(:[^=]*)?=", cell.source):
            return i, "heading"
    return None, ""


def find_group_source(nb: Any) -> tuple[str, str]:
    """The group cell's source and how it was found, or ``('', '')``."""
    index, how = group_cell_index(nb)
    return (nb.cells[index].source, how) if index is not None else ("", "")


def template_answers(template: Any) -> dict[str, str]:
    return {qid: find_answer(template, qid).source for qid in WRITTEN_IDS}
