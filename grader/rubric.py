"""The rubric: a TOML file read into typed, validated, immutable objects.

Every number the grader uses (points, seeds, shapes, tolerances, limits, word rules, naming
policy) comes from here. A malformed rubric raises :class:`~grader.errors.RubricError` naming the
file, the key and what is allowed, before anything is graded.

This module is the rubric's front door: import every rubric name from here. The objects are
defined in :mod:`grader.rubric_model`; each table has one reader in :mod:`grader.rubric_tables`;
:func:`load_rubric` composes them and checks what relates two tables.
"""
from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from grader import resources
from grader.errors import RubricError
from grader.rubric_model import (
    AUTO_IDS,
    CASE_CHOICES,
    CASE_KEYS,
    LATE_POLICIES,
    LEARNED_KINDS,
    MAX_LEARNED_CASES,
    MAX_LEARNED_FILES,
    MAX_LEARNED_TEXT,
    MAX_LEARNED_TITLE,
    POLICIES,
    QUESTION_IDS,
    WRITTEN_IDS,
    ArchiveLimits,
    Budget,
    Case,
    Check,
    Late,
    Learned,
    LearnedMistake,
    Limits,
    Naming,
    Question,
    Recall,
    Rubric,
    case_key,
    case_settings,
)
from grader.rubric_tables import (
    TableReader,
    read_archive,
    read_budget,
    read_contract_rules,
    read_late,
    read_learned,
    read_learned_file,
    read_limits,
    read_meta,
    read_naming,
    read_questions,
    read_recall,
)

__all__ = [
    "AUTO_IDS",
    "ArchiveLimits",
    "Budget",
    "CASE_CHOICES",
    "CASE_KEYS",
    "Case",
    "Check",
    "DEFAULT_RUBRIC",
    "LATE_POLICIES",
    "LEARNED_KINDS",
    "Late",
    "Learned",
    "LearnedMistake",
    "Limits",
    "MAX_LEARNED_CASES",
    "MAX_LEARNED_FILES",
    "MAX_LEARNED_TEXT",
    "MAX_LEARNED_TITLE",
    "Naming",
    "POLICIES",
    "QUESTION_IDS",
    "Question",
    "Recall",
    "Rubric",
    "WRITTEN_IDS",
    "case_key",
    "case_settings",
    "load_rubric",
    "read_learned_file",
]

DEFAULT_RUBRIC = resources.default_rubric()


def load_rubric(path: str | Path | None = None) -> Rubric:
    """Read and validate a rubric file.

    Raises
    ------
    RubricError
        Naming the file, the dotted key and what is allowed.
    """
    p = Path(path) if path is not None else DEFAULT_RUBRIC
    name = str(p)
    raw_bytes, data = _read_toml(p)
    top = TableReader(name, data, "")
    meta = read_meta(top)
    default_penalty, contract_settle = read_contract_rules(top)
    questions = read_questions(top, default_penalty)
    recall, recall_reader = read_recall(top)
    naming = read_naming(top)
    limits = read_limits(top)
    _check_recall_cpu(recall_reader, recall, limits)
    archive = read_archive(top)
    late = read_late(top)
    budget = read_budget(top)
    learned = read_learned(top, p)
    top.no_unknown()
    _check_points(name, meta.max_points, questions, recall)
    _check_seeds_apart(name, questions, recall)
    return Rubric(path=name, sha256=_identity(name, raw_bytes, learned), title=meta.title,
                  max_points=meta.max_points, questions=questions, recall=recall, naming=naming,
                  limits=limits, archive=archive, late=late, budget=budget,
                  contract_settle=contract_settle, contact=meta.contact, learned=learned)


def _read_toml(p: Path) -> tuple[bytes, dict[str, Any]]:
    name = str(p)
    try:
        raw_bytes = p.read_bytes()
    except OSError as exc:
        raise RubricError(name, "(file)", f"cannot be read ({exc.strerror}); "
                          "pass an existing rubric with --rubric") from None
    try:
        data = tomllib.loads(raw_bytes.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise RubricError(name, "(file)", f"is not valid TOML: {exc}") from None
    return raw_bytes, data


def _check_recall_cpu(rr: TableReader, recall: Recall, limits: Limits) -> None:
    """Every training call of the recall experiment runs in the one kernel, whose RLIMIT_CPU
    (limits.cpu_seconds) would kill it first: the calls must fit with room for the notebook.
    The LSTM's tries stop once they used cpu_budget; the last may have started just under it."""
    lstm_cpu = min(recall.cpu_time_limit * recall.tries, recall.cpu_budget + recall.cpu_time_limit)
    recall_cpu = lstm_cpu + (recall.cpu_time_limit if recall.compare_rnn else 0.0)
    if recall_cpu >= limits.cpu_seconds:
        raise rr.fail("cpu_budget", f"with the tries' last call and{' the RNN' if recall.compare_rnn else ''} "
                      f"the trainings may use {recall_cpu:g} CPU s, not under limits.cpu_seconds = "
                      f"{limits.cpu_seconds}; lower cpu_budget, tries or cpu_time_limit, or raise "
                      "limits.cpu_seconds")


def _check_points(name: str, max_points: float, questions: Mapping[str, Question], recall: Recall) -> None:
    """The questions add up to the total, and each automatic question's checks (and the recall
    experiment, on its question) to the question's points."""
    total = sum(q.points for q in questions.values())
    if abs(total - max_points) > 1e-9:
        raise RubricError(name, "rubric.max_points",
                          f"is {max_points}, but the questions' points add up to {total}")
    for q in questions.values():
        if q.automatic:
            inner = sum(c.points for c in q.checks) + (recall.points if recall.question == q.id else 0)
            if abs(inner - q.points) > 1e-9:
                raise RubricError(name, f"questions.{q.id}.checks",
                                  f"points add up to {inner}, but the question is worth {q.points}")


def _check_seeds_apart(name: str, questions: Mapping[str, Question], recall: Recall) -> None:
    """No seed is both public (students draw its numbers) and hidden (it names a secret case)."""
    public = {s for c in (c for q in questions.values() for c in q.checks) for s in c.public_seeds}
    public.add(recall.public_heldout_seed)
    hidden = {case.seed for q in questions.values() for c in q.checks for case in c.cases}
    hidden |= {recall.train_seed, recall.heldout_seed}
    clash = sorted(public & hidden)
    if clash:
        where = next((f"questions.{q.id}.checks[{i}].public" for q in questions.values()
                      for i, c in enumerate(q.checks) if clash[0] in c.public_seeds), "recall.public_heldout_seed")
        raise RubricError(name, where, f"seed {clash[0]} is both public and hidden; keep them apart")


def _identity(name: str, raw_bytes: bytes, learned: Learned) -> str:
    """The rubric's sha256: its bytes and those of the learned files it names (their entries
    change grading)."""
    digest = hashlib.sha256(raw_bytes)
    for entry_file in sorted(learned.files):
        digest.update(b"\0learned\0" + entry_file.encode() + b"\0" + (Path(name).parent / entry_file).read_bytes())
    return digest.hexdigest()
