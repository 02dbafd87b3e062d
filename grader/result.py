"""The immutable findings of grading one submission, and their JSON form (contract §6).

A :class:`SubmissionResult` stays typed from grading to the output folder: later steps (the
late policy, tutors' scores, the batch's own checks) change it with :func:`dataclasses.replace`,
never by editing its JSON. :meth:`SubmissionResult.from_json` reads back what
:meth:`SubmissionResult.to_json` wrote, exactly (``to_json(from_json(d)) == d`` for every
``result.json`` this grader writes), so a kept result can pass through the same steps again.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, cast, get_args

from grader.errors import ResultFormatError

SubmissionStatus = Literal["graded", "rejected", "error"]
QuestionStatus = Literal["auto", "pending", "manual"]
SUBMISSION_STATUSES: tuple[str, ...] = get_args(SubmissionStatus)
QUESTION_STATUSES: tuple[str, ...] = get_args(QuestionStatus)


@dataclass(frozen=True)
class Evidence:
    """What one observation (a case or a probe) says about one catalogued mistake."""

    key: str       # the mistake's key in grader/checks/mistakes.py
    distinct: bool  # its output differs from the correct one here: this input can tell it apart
    agrees: bool    # the student's output equals its output here
    #: the setting of the observation ({"activation": 'activation = "sigmoid"', "T": "T = 1"}),
    #: so a mistake that explains one setting's failures can be named for that setting
    settings: Mapping[str, str] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class CaseResult:
    """One hidden case of one function: a finding, immutable."""

    function: str
    index: int
    params: str
    shapes: str
    passed: bool
    points: float
    max_points: float
    message: str = ""
    mistakes: tuple[str, ...] = ()
    expected: str = ""
    got: str = ""
    max_abs: float | None = None
    max_rel: float | None = None
    series: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    #: the Bridge's status of the call (ok | raised | timeout | died | garbled); "missing" where the
    #: function was not defined, "not_called" where the kernel could not be asked
    call_status: str = ""
    error_type: str = ""  # with "raised": the exception's class name, e.g. NotImplementedError
    # The catalogued mistakes as this case saw them; the grader's own, never written out.
    evidence: tuple[Evidence, ...] = field(default=(), repr=False)
    consistent_with: tuple[str, ...] = ()  # several mistakes fit and no input tells them apart
    values_note: str = ""  # "the values differ ... (first at index ...)": the plain finding
    settings: Mapping[str, str] = field(default_factory=dict, repr=False)  # see settings_of
    structure: str = ""  # the result is a slice, transposition, ... of the expected one (see structural_finding)
    diagnosis: str = ""  # what the probes (or the cases together) say is wrong, in plain words
    probes: tuple[Mapping[str, str], ...] = ()  # each probe: setting, isolates, outcome, text
    #: Notes on a mistake learned from a batch (grader/checks/learned.py): {"title", "explanation",
    #: "source": "tutor" (named in this batch's gradebook) | "catalogue" (the rubric's entry)}.
    learned: tuple[Mapping[str, str], ...] = ()
    #: With a raise: where it came from in the student's own code (grader/checks/causes.py), in
    #: words (also part of ``message``) and as the lines of their cell it names.
    cause: str = ""
    cause_lines: tuple[int, ...] = ()

    @property
    def name(self) -> str:
        return f"{self.function}, case {self.index} ({self.params})"

    @property
    def wrong_values(self) -> bool:
        """Failed with a value of the right structure, shape and dtype: a wrong computation."""
        return not self.passed and self.call_status == "ok" and bool(self.expected)

    def findings_json(self) -> dict[str, Any]:
        """The attribution and probe findings of a failed case, for result.json (empty if none)."""
        out: dict[str, Any] = {}
        if self.consistent_with:
            out["consistent_with"] = list(self.consistent_with)
        if self.diagnosis:
            out["diagnosis"] = self.diagnosis
        if self.probes:
            out["probes"] = [dict(p) for p in self.probes]
        if self.cause:
            out["cause"] = {"words": self.cause, "lines": list(self.cause_lines)}
        return out


def _status(value: Any, allowed: tuple[str, ...], key: str) -> Any:
    if value not in allowed:
        raise ResultFormatError(f"{key} is {value!r}; allowed: {', '.join(allowed)}")
    return value


def _float(value: Any, key: str) -> float:
    # bool is an int; a result never holds one where a number belongs
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
        raise ResultFormatError(f"{key} is {value!r}; expected a finite number")
    return float(value)


def _opt_float(value: Any, key: str) -> float | None:
    return None if value is None else _float(value, key)


@dataclass(frozen=True)
class Flag:
    """The one finding type of a result: ``code`` (contract §6 or this grader's own, e.g.
    ``group.suspicious``), the question it is about (or ``None``) and a plain-words message."""

    code: str
    question: str | None
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "question": self.question, "message": self.message}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Flag:
        return cls(str(data["code"]), None if data.get("question") is None else str(data["question"]),
                   str(data.get("message", "")))


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
    # The code cells the group put right after the answer cell (before the next tagged cell):
    # ({"index": cell index, "source": capped source}, ...), for the tutor's scoring page.
    nearby: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True)
class QuestionResult:
    id: str
    title: str
    points: float
    max_points: float
    status: QuestionStatus
    cases: tuple[CaseResult, ...] = ()
    answer: WrittenAnswer | None = None
    comment: str = ""
    scored_by: str = ""  # the tutor, for status "manual" (and an automatic question a tutor overrode)
    # An automatic question whose points a tutor set by hand (``comment`` holds the reason): the
    # points the checks gave. None: not overridden.
    auto_points: float | None = None

    @property
    def written(self) -> bool:
        """A question a tutor scores (not checked automatically)."""
        return self.status != "auto" and not self.cases

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
            if a.nearby:
                out["answer"]["nearby"] = [dict(c) for c in a.nearby]
        if self.scored_by:
            out["scored_by"] = self.scored_by
        if self.comment:
            out["comment"] = self.comment
        if self.auto_points is not None:
            out["auto_points"] = round(self.auto_points, 4)
        return out

    @classmethod
    def from_json(cls, qid: str, data: Mapping[str, Any]) -> QuestionResult:
        answer = None
        raw = data.get("answer")
        if isinstance(raw, Mapping):
            answer = WrittenAnswer(
                markdown=str(raw.get("markdown", "")), words=int(data.get("words", 0)),
                sentences=int(data.get("sentences", 0)), found_by=str(raw.get("found_by", "")),
                over_limit_at=raw.get("over_limit_at"), visible=str(raw.get("visible", "")),
                notes=tuple(raw.get("notes") or ()), concepts_found=tuple(data.get("concepts_found") or ()),
                concepts_missing=tuple(data.get("concepts_missing") or ()),
                attachments=dict(raw.get("attachments") or {}),
                nearby=tuple({"index": int(c.get("index", 0)), "source": str(c.get("source", ""))}
                             for c in raw.get("nearby") or () if isinstance(c, Mapping)))
        return cls(id=qid, title=str(data.get("title", "")),
                   points=_float(data.get("points", 0.0), f"questions.{qid}.points"),
                   max_points=_float(data.get("max_points", 0.0), f"questions.{qid}.max_points"),
                   status=_status(data.get("status"), QUESTION_STATUSES, f"questions.{qid}.status"),
                   cases=tuple(_case_from_json(c) for c in data.get("checks") or ()),
                   answer=answer, comment=str(data.get("comment", "")), scored_by=str(data.get("scored_by", "")),
                   auto_points=None if data.get("auto_points") is None
                   else _float(data.get("auto_points"), f"questions.{qid}.auto_points"))


def _case_json(c: CaseResult) -> dict[str, Any]:
    """A check as contract §6 names it, plus what a report needs to show the first failure."""
    return {"name": c.name, "passed": c.passed, "points": round(c.points, 4),
            "max_points": round(c.max_points, 4), "message": c.message, "mistakes": list(c.mistakes),
            "function": c.function, "case": c.index, "params": c.params, "shapes": c.shapes,
            "expected": c.expected, "got": c.got, "max_abs": c.max_abs, "max_rel": c.max_rel,
            "series": {k: list(v) for k, v in c.series.items()},
            **{k: v for k, v in (("call_status", c.call_status), ("error_type", c.error_type)) if v},
            **c.findings_json(), **({"learned": [dict(n) for n in c.learned]} if c.learned else {})}


def _case_from_json(data: Mapping[str, Any]) -> CaseResult:
    return CaseResult(function=str(data.get("function", "")), index=int(data.get("case", 0)),
                      params=str(data.get("params", "")), shapes=str(data.get("shapes", "")),
                      passed=bool(data.get("passed")), points=float(data.get("points", 0.0)),
                      max_points=float(data.get("max_points", 0.0)), message=str(data.get("message", "")),
                      mistakes=tuple(data.get("mistakes") or ()), expected=data.get("expected", ""),
                      got=data.get("got", ""), max_abs=data.get("max_abs"), max_rel=data.get("max_rel"),
                      series={k: tuple(v) for k, v in (data.get("series") or {}).items()},
                      call_status=str(data.get("call_status", "")), error_type=str(data.get("error_type", "")),
                      consistent_with=tuple(data.get("consistent_with") or ()),
                      diagnosis=str(data.get("diagnosis", "")),
                      probes=tuple(dict(p) for p in data.get("probes") or ()),
                      **_cause_from_json(data.get("cause")),
                      learned=tuple({str(k): str(v) for k, v in n.items()} for n in data.get("learned") or ()
                                    if isinstance(n, Mapping)))


def _cause_from_json(value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        return {}
    lines = value.get("lines") or ()
    return {"cause": str(value.get("words", "")),
            "cause_lines": tuple(int(n) for n in lines if isinstance(n, int) and not isinstance(n, bool))}


@dataclass(frozen=True)
class Recall:
    """The long-range recall experiment as measured by the grader."""

    lstm_accuracy: float | None
    rnn_accuracy: float | None
    lstm_seconds: float | None
    rnn_seconds: float | None
    threshold: float
    message: str = ""
    tries: int = 1            # LSTM trainings run (the first that passed counts)
    rnn_run: bool = True      # False: the rubric switched the vanilla-RNN comparison off
    cpu_measured: bool = True  # False: the kernel's CPU time was unreadable; seconds are wall clock

    def to_json(self) -> dict[str, Any]:
        return {"lstm_accuracy": self.lstm_accuracy, "rnn_accuracy": self.rnn_accuracy,
                "lstm_seconds": self.lstm_seconds, "rnn_seconds": self.rnn_seconds,
                "threshold": self.threshold, "message": self.message,
                "tries": self.tries, "rnn_run": self.rnn_run,
                "seconds_are": "cpu" if self.cpu_measured else "wall"}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Recall:
        # Results written before the recall verdict kept these keys: one try, the RNN run, wall s.
        tries = data.get("tries", 1)
        return cls(_opt_float(data.get("lstm_accuracy"), "recall.lstm_accuracy"),
                   _opt_float(data.get("rnn_accuracy"), "recall.rnn_accuracy"),
                   _opt_float(data.get("lstm_seconds"), "recall.lstm_seconds"),
                   _opt_float(data.get("rnn_seconds"), "recall.rnn_seconds"),
                   _float(data.get("threshold", 0.0), "recall.threshold"), str(data.get("message", "")),
                   tries=tries if isinstance(tries, int) and not isinstance(tries, bool) else 1,
                   rnn_run=data.get("rnn_run", True) is not False,
                   cpu_measured=data.get("seconds_are", "wall") == "cpu")


@dataclass(frozen=True)
class LateNote:
    """What the late policy did (grader/batch/late.py); the deduction comes off the total."""

    seconds: int
    days: int
    deduction: float
    policy: str
    deadline: str
    submitted: str
    source: str
    message: str

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"seconds": self.seconds, "days": self.days, "deduction": self.deduction}
        for key in ("policy", "deadline", "submitted", "source"):  # what older results may lack
            if getattr(self, key):
                out[key] = getattr(self, key)
        out["message"] = self.message
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LateNote:
        return cls(int(data["seconds"]), int(data["days"]), _float(data["deduction"], "late.deduction"),
                   str(data.get("policy", "")), str(data.get("deadline", "")), str(data.get("submitted", "")),
                   str(data.get("source", "")), str(data.get("message", "")))


@dataclass(frozen=True)
class SubmissionResult:
    submission: str
    sha256: str
    status: SubmissionStatus
    group: tuple[Mapping[str, str], ...]
    questions: Mapping[str, QuestionResult]
    flags: tuple[Flag, ...]
    max_points: float
    message: str = ""
    tutor_detail: str = ""  # technical detail kept for the tutor, never shown to students
    sandbox_note: str = ""
    contact: str = ""  # whom to ask about a grade (the rubric's [rubric] contact), for the report
    other_files: tuple[str, ...] = ()
    notebook_name: str = ""
    recall: Recall | None = None
    cells: tuple[Mapping[str, Any], ...] = ()
    seconds: float = 0.0
    folder: str = ""
    rubric_sha256: str = ""
    # The notebook's code cells (without the group cell), carried from grading to the
    # copied-work check so nothing reads the archive twice.
    code_cells: tuple[str, ...] = ()
    late: LateNote | None = None
    # Who handed the file in, as the learning platform says (grader/submission/platform.py).
    platform: Mapping[str, Any] | None = None
    #: What it was graded with (grader/batch/replay.py): hashes, versions, sandbox, the secret's id.
    manifest: Mapping[str, Any] | None = None
    #: The code cell (0-based among the code cells) and line of each graded function whose code
    #: is not a ``def`` of its name (bound by assignment, given to exec): the report shows it.
    code_origins: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    #: The output fingerprints of each failing function (grader/checks/learned.py): function -> case key
    #: -> fingerprint, on its hidden cases and its public examples; the grader's own, no student text.
    fingerprints: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    #: The group's regrade requests as its report shows them (grader/tutors/scores.py's
    #: regrade_outcomes): question, requested, outcome, and once resolved decided, reason, points.
    regrades: tuple[Mapping[str, Any], ...] = ()

    @property
    def points(self) -> float:
        """The questions' points less a late deduction; 0 unless graded."""
        if self.status != "graded":
            return 0.0
        total = round(sum(round(q.points, 4) for q in self.questions.values()), 4)
        if self.late is not None:
            total = max(0.0, round(total - self.late.deduction, 4))
        return total

    def with_question(self, question: QuestionResult) -> SubmissionResult:
        return replace(self, questions={**self.questions, question.id: question})

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
            "code_cells": list(self.code_cells),
        }
        if self.status != "graded" or self.message:
            out["message"] = self.message
        if self.tutor_detail:
            out["tutor_detail"] = self.tutor_detail
        if self.sandbox_note:
            out["sandbox"] = self.sandbox_note
        if self.contact:
            out["contact"] = self.contact
        if self.recall is not None:
            out["recall"] = self.recall.to_json()
        if self.late is not None:
            out["late"] = self.late.to_json()
        if self.platform is not None:
            out["platform"] = dict(self.platform)
        if self.manifest is not None:
            out["manifest"] = dict(self.manifest)
        if self.code_origins:
            out["code_origins"] = {f: list(v) for f, v in self.code_origins.items()}
        if self.fingerprints:
            out["fingerprints"] = {f: dict(v) for f, v in self.fingerprints.items()}
        if self.regrades:
            out["regrades"] = [dict(r) for r in self.regrades]
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SubmissionResult:
        """The result a ``result.json`` holds; :class:`ResultFormatError` (naming the key) where
        it is not one this grader wrote."""
        try:
            questions = data["questions"]
            if not isinstance(questions, Mapping):
                raise ResultFormatError("questions is not an object")
            recall = data.get("recall")
            late = data.get("late")
            return cls(
                submission=str(data["submission"]), sha256=str(data.get("sha256", "")),
                status=cast(SubmissionStatus, _status(data.get("status"), SUBMISSION_STATUSES, "status")),
                group=tuple({str(k): str(v) for k, v in m.items()} for m in data.get("group") or ()),
                questions={str(qid): QuestionResult.from_json(str(qid), q) for qid, q in questions.items()},
                flags=tuple(Flag.from_json(f) for f in data.get("flags") or ()),
                max_points=_float(data.get("max_points", 0.0), "max_points"),
                message=str(data.get("message", "")), tutor_detail=str(data.get("tutor_detail", "")),
                sandbox_note=str(data.get("sandbox", "")), contact=str(data.get("contact", "")),
                other_files=tuple(data.get("other_files") or ()),
                notebook_name=str(data.get("notebook", "")),
                recall=Recall.from_json(recall) if isinstance(recall, Mapping) else None,
                cells=tuple(dict(c) for c in data.get("cells") or ()),
                seconds=_float(data.get("seconds", 0.0), "seconds"), folder=str(data.get("folder", "")),
                rubric_sha256=str(data.get("rubric_sha256", "")),
                code_cells=tuple(str(c) for c in data.get("code_cells") or ()),
                late=LateNote.from_json(late) if isinstance(late, Mapping) else None,
                platform=dict(data["platform"]) if isinstance(data.get("platform"), Mapping) else None,
                manifest=dict(data["manifest"]) if isinstance(data.get("manifest"), Mapping) else None,
                code_origins={str(f): (int(v[0]), int(v[1])) for f, v in (data.get("code_origins") or {}).items()
                              if isinstance(v, list) and len(v) == 2 and all(isinstance(n, int) for n in v)},
                fingerprints={str(f): {str(k): str(v) for k, v in cases.items()}
                              for f, cases in (data.get("fingerprints") or {}).items() if isinstance(cases, Mapping)},
                regrades=tuple(dict(r) for r in data.get("regrades") or () if isinstance(r, Mapping)))
        except ResultFormatError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ResultFormatError(f"not a result of this grader ({type(exc).__name__}: {exc})") from None
