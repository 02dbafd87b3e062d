"""Hints for tutors: which of a question's reference concepts a written answer mentions.

A concept counts as mentioned when any of its keywords occurs in the answer as a reader sees it
(markdown removed, sources left out). It is a hint for the tutor, never points.
"""
from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from grader import resources

ANSWERS = resources.model_answers()


@dataclass(frozen=True)
class Concept:
    name: str
    keywords: tuple[str, ...]


@dataclass(frozen=True)
class ModelAnswer:
    question: str
    markdown: str
    concepts: tuple[Concept, ...]


@lru_cache(maxsize=4)
def model_answers(path: Path = ANSWERS) -> dict[str, ModelAnswer]:
    data = tomllib.loads(path.read_text(encoding="utf-8"))["answers"]
    return {qid: ModelAnswer(qid, entry["answer"].strip(),
                             tuple(Concept(c["name"], tuple(k.lower() for k in c["keywords"]))
                                   for c in entry.get("concepts", [])))
            for qid, entry in data.items()}


def match_concepts(qid: str, visible_text: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(found, missing) concept names for the answer's visible text."""
    answer = model_answers().get(qid)
    if answer is None:
        return (), ()
    text = " ".join(visible_text.lower().split())
    found = tuple(c.name for c in answer.concepts if any(k in text for k in c.keywords))
    missing = tuple(c.name for c in answer.concepts if c.name not in found)
    return found, missing


def suggested_score(points: float, found: int, total: int) -> float | None:
    """points * found / total, rounded to 0.25 (None where the question lists no concepts)."""
    if total <= 0:
        return None
    return round(points * found / total * 4) / 4


def suggestion_for(q: Mapping[str, Any], flags: Iterable[Mapping[str, Any]]) -> float | None:
    """The suggested score of one written answer (its result JSON and its flags): 0 for a missing
    answer, else :func:`suggested_score` over the concepts it names."""
    found, missing = q.get("concepts_found") or [], q.get("concepts_missing") or []
    if any(f["code"] == "answer.missing" for f in flags):
        return 0.0
    return suggested_score(float(q.get("max_points", 0.0)), len(found), len(found) + len(missing))
