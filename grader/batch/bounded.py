"""Steps of a submission that the batch's own process would otherwise run unbounded, run under
that submission's budget: in a forked child with at most ``grader_seconds`` of wall time and
``grader_memory_mb`` more address space, the answer coming back as JSON (nothing is unpickled).

- :func:`run_bounded` runs one such step (:class:`OverBudget` when it takes longer, runs out of
  memory or fails).
- :class:`SimilarityPrep` makes each group's part of the copied-work comparison as its result
  arrives, bounded, and keeps it; :func:`bounded_similarity` then only compares, and names the
  groups left out.
- :func:`bounded_pages` draws a kept result's pages again (a fallback page where it is over).

grader/batch/run.py is the front door: every name here is importable from there.
"""
from __future__ import annotations

import json
import os
import resource
import select
import signal
import time
from collections.abc import Callable
from typing import Any

import psutil

from grader.batch import interrupt
from grader.batch.workers import _die_with_parent
from grader.checks.similarity import batch_similarity
from grader.folder.outdir import safe_pages
from grader.result import SubmissionResult
from grader.rubric import Rubric

__all__ = ["OverBudget", "SimilarityPrep", "bounded_pages", "bounded_similarity", "run_bounded"]


class OverBudget(Exception):
    """A per-submission step did not finish within the submission's budget."""


def run_bounded(fn: Callable[[Any], Any], arg: Any, seconds: float, memory_mb: int) -> Any:
    """``fn(arg)`` in a forked child under one submission's budget: at most ``seconds`` of wall
    time and ``memory_mb`` more address space; the result comes back as JSON (nothing is
    unpickled). :class:`OverBudget` when it takes longer, runs out of memory or fails.

    For the steps of a submission that the batch's own process would otherwise run unbounded: a
    kept result's pages drawn again, its part of the copied-work comparison."""
    read_fd, write_fd = os.pipe()
    pid = interrupt.fork()
    if pid == 0:  # the child: compute, answer, exit without running the parent's cleanup
        code = 0
        try:
            os.close(read_fd)
            _die_with_parent()
            have = psutil.Process().memory_info().vms
            _, hard = resource.getrlimit(resource.RLIMIT_AS)
            soft = have + memory_mb * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_AS, (soft if hard == resource.RLIM_INFINITY else min(soft, hard), hard))
            data = json.dumps({"value": fn(arg)}, ensure_ascii=True).encode("ascii")
            with os.fdopen(write_fd, "wb") as w:
                w.write(data)
        except BaseException:  # noqa: BLE001 - the parent sees no answer and says so
            code = 1
        os._exit(code)
    os.close(write_fd)
    chunks: list[bytes] = []
    deadline = time.monotonic() + seconds
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise OverBudget(f"it took longer than the grader's {seconds:g} s")
            ready, _, _ = select.select([read_fd], [], [], min(left, 1.0))
            if ready:
                chunk = os.read(read_fd, 1 << 20)
                if not chunk:
                    break
                chunks.append(chunk)
    finally:
        os.close(read_fd)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.waitpid(pid, 0)
    try:
        return json.loads(b"".join(chunks))["value"]
    except (ValueError, KeyError) as exc:
        raise OverBudget(f"it failed or needed more than the grader's {memory_mb} MB of memory") from exc


class SimilarityPrep:
    """Each group's part of the copied-work comparison (lexing its code, folding its text), made
    in a forked child under its submission's budget (:func:`run_bounded`) and kept for the end of
    the batch: a batch makes it as each result arrives (while the graders work), so the end only
    compares (:func:`bounded_similarity`).

    The modules and caches that work needs (the lexer, the template's answers) are loaded in this
    process, once, on a fixed document of ours, before the first group's child is forked: each
    child then only does its group's work (without this, every child loaded them again: 0.6 s
    per group, 20 minutes for 2,000 groups; benchmarks/scale.py, docs/performance.md "Scale")."""

    def __init__(self, budget: Any) -> None:
        self.budget = budget
        self.warm = False
        # folder -> (the result it was made for, its prepared work or why it was left out)
        self.made: dict[str, tuple[SubmissionResult, dict[str, Any] | str]] = {}

    def add(self, result: SubmissionResult) -> dict[str, Any] | str:
        """``result``'s prepared work (a string: why it is left out), made once per result."""
        from grader.checks.similarity import Document, answers_text, prepared, result_document
        kept = self.made.get(result.folder)
        if kept is not None and kept[0] is result:
            return kept[1]
        if not self.warm:
            prepared(Document("", "", "x = 1\n", answers_text({"warm": "an answer"})))
            self.warm = True
        made: dict[str, Any] | str
        try:
            made = run_bounded(lambda r: prepared(result_document(r)), result, self.budget.seconds,
                               self.budget.memory_mb)
        except OverBudget as exc:
            made = f"{result.submission}: {exc}"
        self.made[result.folder] = (result, made)
        return made


def bounded_similarity(results: list[SubmissionResult], budget: Any,
                       prep: SimilarityPrep | None = None) -> dict[str, Any]:
    """The copied-work comparison with each group's own work under its submission's budget
    (``prep``: the work made for results as they arrived, reused for the same result objects);
    a group over it is left out and named."""
    prep = prep or SimilarityPrep(budget)
    ready: dict[str, Any] = {}
    kept: list[SubmissionResult] = []
    left_out: list[str] = []
    for r in results:
        made = prep.add(r)
        if isinstance(made, str):
            left_out.append(made)
        else:
            ready[r.folder] = made
            kept.append(r)
    out = batch_similarity(kept, ready)
    if left_out:
        out["left_out"] = left_out
    return out


def bounded_pages(result: SubmissionResult, rubric: Rubric) -> dict[str, str]:
    from grader.folder.outdir import _fallback
    from grader.pages.report import PAGES
    try:
        pages = run_bounded(safe_pages, result, rubric.budget.seconds, rubric.budget.memory_mb)
        return {str(k): str(v) for k, v in pages.items()}
    except OverBudget as exc:
        html = _fallback.render(title="The report", why=f"over the grader's budget: {exc}", where="result.json")
        return {name: html for name in PAGES.values()}
