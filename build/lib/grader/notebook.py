"""Parse a submitted notebook and find its parts by tag (or, failing that, by heading)."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import nbformat
from nbformat.validator import ValidationError

from grader.rubric import WRITTEN_IDS


class NotebookInvalid(Exception):
    """The file is not a notebook this grader can run; the message is for the student."""


def parse_notebook(data: bytes) -> Any:
    """Read, upgrade to nbformat 4, validate, and clear stored outputs (on a copy)."""
    try:
        text = data.decode("utf-8-sig")
        raw = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise NotebookInvalid(f"the notebook is not valid JSON ({type(exc).__name__}: {str(exc)[:120]}); "
                              "open it in Jupyter, save it again and resubmit") from None
    if not isinstance(raw, dict) or "cells" not in raw and "worksheets" not in raw:
        raise NotebookInvalid("the file is JSON but not a Jupyter notebook (no cells)")
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
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    return nb


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
                     if c.cell_type == "markdown" and pattern.search(c.source.split("\n", 1)[0] if c.source else "")]
    for start in questions:
        for j in range(start + 1, min(start + 3, len(nb.cells))):
            cell = nb.cells[j]
            if cell.cell_type == "markdown" and not any(t.startswith("question-") for t in tags(cell)):
                return Located(cell.source, j, "heading")
    return Located("", None, "")


def find_group_source(nb: Any) -> tuple[str, str]:
    """The group cell's source and how it was found, or ``('', '')``."""
    tagged = find_tagged(nb, "group")
    if tagged:
        return nb.cells[tagged[0]].source, "tag"
    for cell in nb.cells:
        if cell.cell_type == "code" and re.match(r"\s*(#.*\n\s*)*GROUP\s*(:[^=]*)?=", cell.source):
            return cell.source, "heading"
    return "", ""


def template_answers(template: Any) -> dict[str, str]:
    return {qid: find_answer(template, qid).source for qid in WRITTEN_IDS}
