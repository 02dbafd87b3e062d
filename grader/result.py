"""The immutable findings of grading one submission, and their JSON form (contract §6)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from grader.compare import CaseResult


@dataclass(frozen=True)
class Flag:
    code: str
    question: str | None
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "question": self.question, "message": self.message}


@dataclass(frozen=True)
class WrittenAnswer:
    """A written answer as the rules and the concept hints saw it."""

    markdown: str
    words: int
    sentences: int
    found_by: str  # "tag" | "heading" | "" (missing)
    over_limit_at: int | None = None
    visible: str = ""
    notes: tuple[str, ...] = ()
    concepts_found: tuple[str, ...] = ()
    concepts_missing: tuple[str, ...] = ()
    attachments: Mapping[str, Any] = field(default_factory=dict)  # images of the answer cell


@dataclass(frozen=True)
class QuestionResult:
    id: str
    title: str
    points: float
    max_points: float
    status: str  # auto | pending | manual
    cases: tuple[CaseResult, ...] = ()
    answer: WrittenAnswer | None = None
    comment: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"title": self.title, "points": round(self.points, 4),
                               "max_points": self.max_points, "status": self.status}
        if self.cases or self.status == "auto":
            out["checks"] = [_case_json(c) for c in self.cases]
        if self.answer is not None:
            a = self.answer
            out["words"] = a.words
            out["sentences"] = a.sentences
            out["concepts_found"] = list(a.concepts_found)
            out["concepts_missing"] = list(a.concepts_missing)
            out["answer"] = {"markdown": a.markdown, "found_by": a.found_by, "over_limit_at": a.over_limit_at,
                             "visible": a.visible, "notes": list(a.notes), "attachments": dict(a.attachments)}
        if self.comment:
            out["comment"] = self.comment
        return out


def _case_json(c: CaseResult) -> dict[str, Any]:
    """A check as contract §6 names it, plus what a report needs to show the first failure."""
    return {"name": c.name, "passed": c.passed, "points": round(c.points, 4),
            "max_points": round(c.max_points, 4), "message": c.message, "mistakes": list(c.mistakes),
            "function": c.function, "case": c.index, "params": c.params, "shapes": c.shapes,
            "expected": c.expected, "got": c.got, "max_abs": c.max_abs, "max_rel": c.max_rel,
            "series": {k: list(v) for k, v in c.series.items()}, **c.findings_json()}


@dataclass(frozen=True)
class Recall:
    """The long-range recall experiment as measured by the grader."""

    lstm_accuracy: float | None
    rnn_accuracy: float | None
    lstm_seconds: float | None
    rnn_seconds: float | None
    threshold: float
    message: str = ""


@dataclass(frozen=True)
class SubmissionResult:
    submission: str
    sha256: str
    status: str  # graded | rejected | error
    group: tuple[Mapping[str, str], ...]
    questions: Mapping[str, QuestionResult]
    flags: tuple[Flag, ...]
    max_points: float
    message: str = ""
    tutor_detail: str = ""  # technical detail kept for the tutor, never shown to students
    sandbox_note: str = ""
    other_files: tuple[str, ...] = ()
    notebook_name: str = ""
    recall: Recall | None = None
    cells: tuple[Mapping[str, Any], ...] = ()
    seconds: float = 0.0
    folder: str = ""
    rubric_sha256: str = ""

    @property
    def points(self) -> float:
        if self.status != "graded":
            return 0.0
        return round(sum(q.points for q in self.questions.values()), 4)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "submission": self.submission,
            "status": self.status,
            "group": [dict(m) for m in self.group],
            "points": self.points,
            "max_points": self.max_points,
            "questions": {qid: q.to_json() for qid, q in self.questions.items()},
            "flags": [f.to_json() for f in self.flags],
            "sha256": self.sha256,
            "rubric_sha256": self.rubric_sha256,
            "notebook": self.notebook_name,
            "other_files": list(self.other_files),
            "seconds": round(self.seconds, 2),
            "folder": self.folder,
            "cells": [dict(c) for c in self.cells],
        }
        if self.status != "graded" or self.message:
            out["message"] = self.message
        if self.tutor_detail:
            out["tutor_detail"] = self.tutor_detail
        if self.sandbox_note:
            out["sandbox"] = self.sandbox_note
        if self.recall is not None:
            out["recall"] = {"lstm_accuracy": self.recall.lstm_accuracy,
                             "rnn_accuracy": self.recall.rnn_accuracy,
                             "lstm_seconds": self.recall.lstm_seconds,
                             "rnn_seconds": self.recall.rnn_seconds,
                             "threshold": self.recall.threshold, "message": self.recall.message}
        return out
