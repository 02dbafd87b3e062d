"""``grade verify``: the gradebook's chain (grader/folder/ledger.py) and every ``result.json`` against it.

:func:`verify` reads the ledger and every chained table through the gradebook, checks them with
:func:`grader.folder.ledger.verify_gradebook`, then checks each ``result.json`` of the folder
(:func:`check_result_files`): its row in ``results`` (same file, same rubric) with the tutors'
scores applied must give the same status, group, points of every question and total, and the
regrade requests its report shows must be the gradebook's (``regrade_requests``). Problems are
named in the chain's order; the first is the first row edited outside ``grade``.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from grader.errors import UsageError
from grader.folder import ledger
from grader.folder.outdir import GRADEBOOK, OutDir
from grader.result import SubmissionResult
from grader.tutors.scores import apply_manual, regrade_outcomes


def check_result_files(out: OutDir, results_rows: Sequence[Mapping[str, Any]],
                       manual: Sequence[Mapping[str, Any]],
                       overrides: Sequence[Mapping[str, Any]] = (),
                       regrades: Mapping[str, Sequence[Mapping[str, Any]]] | None = None) -> tuple[int, list[str]]:
    """Every ``result.json`` of ``out`` against the gradebook: its row in ``results`` (same
    file, same rubric) with the tutors' scores and overrides of automatic points applied must
    give the same status, group, points of every question and total; where ``regrades`` is given
    (``folder -> `` the outcomes of its regrade requests), the requests the file shows must be
    those. Returns (files checked, problems)."""
    by_key = {(r["folder"], r["sha256"], r["rubric_sha256"]): r for r in results_rows}
    scores: dict[str, dict[str, dict[str, Any]]] = {}
    for m in manual:
        scores.setdefault(str(m["folder"]), {})[str(m["question"])] = dict(m)
    for o in overrides:
        scores.setdefault(str(o["folder"]), {})[str(o["question"])] = {
            "points": o["points"], "tutor": o["tutor"], "comment": o["reason"], "override": True}
    loaded = out.load_results()
    problems = [f"{u} cannot be read" for u in loaded.unreadable]
    for result in loaded.results:
        row = by_key.get((result.folder, result.sha256, result.rubric_sha256))
        if row is None:
            problems.append(f"{result.folder}/result.json: the gradebook holds no result of this file with this "
                            "rubric: it was written or edited outside grade")
            continue
        stored = apply_manual(SubmissionResult.from_json({**json.loads(row["result_json"]), "folder": result.folder}),
                              scores.get(result.folder, {}))
        diffs = []
        if stored.status != result.status:
            diffs.append(f"status {stored.status} -> {result.status}")
        if [dict(m) for m in stored.group] != [dict(m) for m in result.group]:
            diffs.append("group")
        for qid, q in stored.questions.items():
            other = result.questions.get(qid)
            if other is None or round(other.points, 4) != round(q.points, 4) or other.status != q.status:
                diffs.append(f"{qid} {q.points:g} ({q.status}) -> "
                             + (f"{other.points:g} ({other.status})" if other else "missing"))
        if round(stored.points, 4) != round(result.points, 4) and not diffs:
            diffs.append(f"points {stored.points:g} -> {result.points:g}")
        if regrades is not None and [dict(r) for r in result.regrades] != [dict(r) for r in
                                                                        regrades.get(result.folder, ())]:
            diffs.append("its regrade requests are not the gradebook's")
        if diffs:
            problems.append(f"{result.folder}/result.json differs from the gradebook: {'; '.join(diffs)}")
    return len(loaded.results), problems


def verify(out: OutDir, secret: bytes) -> ledger.Verdict:
    """The chain of ``out``'s gradebook, then every ``result.json`` against it."""
    if not out.path(GRADEBOOK).exists():
        raise UsageError(f"'{out}' has no gradebook.sqlite; give the output folder of `grade` with -o")
    key = ledger.ledger_key(secret)
    with out.gradebook() as book:
        entries = book.ledger_entries()
        tables = {t: book.table_rows(t) for t in ledger.CHAINED}
        manual = book.table_rows("manual_scores")
        overrides = book.table_rows("point_overrides")
        regrades = regrade_outcomes(book)
    verdict = ledger.verify_gradebook(entries, tables, manual, key, ledger.read_head(out.gradebook_path),
                                      overrides)
    verdict.results, problems = check_result_files(out, tables["results"], manual, overrides, regrades)
    verdict.problems += problems
    return verdict
