"""A mutation audit of the rubric and of the diagnoses (`grade audit`, issue 22 item 3).

Mutants are made by **operator rules** applied with :mod:`ast` to the reference's own source
(reference/*.py), never from a hand-written list of bugs. Each function of 11.4 (``train_recall``
aside) is audited on its *unit*: the function and the private helpers of its module it relies on
(:data:`UNITS`); one mutant changes one node of one of them. The operators (:data:`OPERATORS`):

- ``transpose``: an operand of a matmul transposed, or its transposition dropped;
- ``swap``: the operands of a non-commutative operator, or two items of a tuple or list (two
  gates of an unpacking, two children, a returned pair) swapped;
- ``off_by_one``: a ``range`` bound, a slice bound, an integer index or an integer term +-1;
- ``drop_term`` / ``double_term``: one term of a sum (or factor of a product) dropped, or doubled;
- ``activation``: tanh for sigmoid (or back) at one place, or one branch of an activation test
  taken for the other;
- ``detach``: a ``detach``/``clone``/``requires_grad_`` dropped, ``no_grad`` for ``enable_grad``
  (or back), or a state detached inside a loop;
- ``reduction``: sum for mean (or back), a product for a sum, cross-entropy summed over the
  batch, a norm squared, the Frobenius norm for the spectral one;
- ``return_slice``: the last (or first) entry of the result returned alone;
- ``in_place``: a sum or product with an argument computed in place on it (the input changed);
- ``compare``: ``<`` for ``<=``, ``>`` for ``>=``, ``==`` for ``!=`` (and back).

Each mutant is a **real function**: a standalone program (the function, the helpers it needs and
its imports, unparsed from the mutated tree) that is executed in a fresh namespace, or put into a
notebook cell. It is graded with the grader's own code in the grader's process (the mutants are
the project's own code, not student code): the real :class:`~grader.checks.bridge.Bridge` over an
in-process session (:class:`InProcessSession`, which runs the kernel-side call code in the
mutant's namespace, files and all), ``grader.grade._run_check`` on the hidden cases (and the
public ones), and :func:`grader.checks.probes.review`. :func:`pipeline_sample` grades a few mutants
through the whole pipeline instead (a notebook from the template with the mutant in place,
:func:`grader.grade.grade_submission` in a kernel) and says whether both agree.

Per mutant: **killed** (the hidden cases cost it points), **named/located** (what the report says
about it, in the report's own words: a named mistake, a mistake named for one setting, a layout
finding, a located term, a broken contract rule; see :func:`finding_kind`), or **survived** (it
keeps full points). A mutant is **equivalent** when it agrees with the reference (values within
1e-5, inputs untouched, the same result twice) on :data:`EQUIVALENCE_DRAWS` random inputs over the
rubric's settings with random sizes; it is listed with that reason (and, when the changed line is
never reached on those inputs, with that). A non-equivalent mutant that keeps full points makes
the audit refuse the rubric, naming the mutant and an input on which it differs from the
reference (:attr:`Verdict.witness`), which a new case could use.
"""
from __future__ import annotations

import ast
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from grader.checks import probes
from grader.checks.bridge import Bridge
from grader.result import CaseResult
from grader.rubric import Check, Rubric
from grader.tutors.audit_claims import check_claim
from grader.tutors.audit_equivalence import (
    EQUIVALENCE_DRAWS,
    InProcessSession,
    find_difference,
    reached_lines,
)
from grader.tutors.audit_findings import NAMED_KINDS, AuditReport, Verdict, finding_kind
from grader.tutors.audit_mutants import (
    FUNCTIONS,
    OPERATORS,
    UNITS,
    Mutant,
    _program_tree,
    generate,
    run_program,
    sample,
)
from grader.tutors.audit_report import pipeline_sample, summary_lines

__all__ = ["EQUIVALENCE_DRAWS", "FUNCTIONS", "NAMED_KINDS", "OPERATORS", "UNITS", "AuditReport",
           "InProcessSession", "Mutant", "Verdict", "all_mutants", "audit", "finding_kind", "generate",
           "grade_mutant", "pipeline_sample", "run_audit", "sample", "summary_lines"]


def grade_in_process(fn_namespace: dict[str, Any], check: Check, rubric: Rubric, secret: bytes | None,
                     public: bool, cells: Sequence[str] = ()) -> list[CaseResult]:
    """One check of the rubric on a function defined in ``fn_namespace``, graded as
    grader/grade.py grades it (cases, contract rules, probes) over an in-process Bridge;
    ``cells``: the source it was compiled from, as a notebook's code cells."""
    from grader.grade import _run_check  # the grader's own step, not a copy of it
    with tempfile.TemporaryDirectory(prefix="sheet11-audit-") as folder:
        bridge = Bridge(InProcessSession(fn_namespace, Path(folder)))  # type: ignore[arg-type]
        checked = _run_check(bridge, check, True, rubric, public, "", None if public else secret,
                             cells=cells)
        return probes.review(check, checked, bridge, rubric.limits.call_timeout, public,
                             None if public else secret)


def grade_mutant(mutant: Mutant, rubric: Rubric, secret: bytes, reached: set[int] | None = None,
                 draws: int = EQUIVALENCE_DRAWS) -> Verdict:
    """Grade one mutant on the hidden and public cases, and decide whether it is equivalent."""
    start = time.perf_counter()
    check = _check(rubric, mutant.function)
    namespace = run_program(mutant.program, mutant.ident)
    difference, worst = find_difference(mutant.function, namespace[mutant.function], check, draws)
    hidden = grade_in_process(namespace, check, rubric, secret, public=False, cells=(mutant.program,))
    public = grade_in_process(namespace, check, rubric, secret, public=True, cells=(mutant.program,))
    kind, text = finding_kind(hidden)
    claim, right = check_claim(kind, hidden, mutant, namespace[mutant.function], check)
    if kind == "raised_line" and not right:  # a true place, but not the change: not located
        kind, claim, right = "error", "", None
    reason = ""
    if difference is None:
        reason = (f"agrees with the reference on {draws} random inputs over the rubric's settings "
                  f"(largest relative difference {worst:.1e}), leaves its inputs as it found them "
                  "and returns the same result twice")
        if reached is not None and mutant.line and mutant.line not in reached:
            reason += "; the changed line is never reached on these inputs"
    return Verdict(mutant, difference is None, difference, round(sum(r.points for r in hidden), 6),
                   check.points, sum(not r.passed for r in public), kind, text, reason,
                   time.perf_counter() - start, claim, right)


def _check(rubric: Rubric, function: str) -> Check:
    for check in rubric.checks():
        if check.function == function:
            return check
    raise KeyError(f"the rubric has no check of {function}")




def audit(rubric: Rubric, secret: bytes, mutants: Sequence[Mutant],
          progress: Callable[[Verdict], None] | None = None, draws: int = EQUIVALENCE_DRAWS) -> AuditReport:
    """Grade every mutant (in the grader's process) and collect the verdicts."""
    start = time.perf_counter()
    reached: dict[str, set[int]] = {}
    verdicts = []
    for m in mutants:
        if m.function not in reached:
            reached[m.function] = reached_lines(m.function, ast.unparse(_program_tree(m.function)),
                                                _check(rubric, m.function), draws)
        v = grade_mutant(m, rubric, secret, reached[m.function], draws)
        verdicts.append(v)
        if progress:
            progress(v)
    return AuditReport(tuple(verdicts), time.perf_counter() - start)


def all_mutants(functions: Sequence[str] = FUNCTIONS) -> list[Mutant]:
    return [m for f in functions for m in generate(f)]



def run_audit(functions: Sequence[str], per_function: int | None, pipeline: int, verbose: bool,
              rubric_path: str | None, echo: Callable[[str], None]) -> int:
    """`grade audit`: 0 when every non-equivalent mutant loses points (and the pipeline sample
    agrees), 1 otherwise (the survivors are named with a case that catches each)."""
    from grader.checks.secret import load_secret
    from grader.errors import UsageError
    from grader.rubric import load_rubric
    unknown = [f for f in functions if f not in UNITS]
    if unknown:
        raise UsageError(f"--function: {', '.join(unknown)} is not one of {', '.join(FUNCTIONS)}")
    rubric = load_rubric(rubric_path)
    secret = load_secret()
    mutants = all_mutants(functions or FUNCTIONS)
    if per_function:
        mutants = sample(mutants, per_function)
    echo(f"Grading {len(mutants)} mutants of the reference in this process ...")

    def progress(v: Verdict) -> None:
        if verbose:
            state = "equivalent" if v.equivalent else "SURVIVED" if v.survived else f"killed, {v.kind}"
            echo(f"  {v.mutant.ident:32} {state:18} {v.mutant.where}: {v.mutant.change}")

    report = audit(rubric, secret, mutants, progress)
    for line in summary_lines(report):
        echo(line)
    if report.equivalent:
        echo("")
        echo(f"Equivalent mutants ({len(report.equivalent)}):")
        for v in report.equivalent:
            echo(f"  {v.mutant.ident} ({v.mutant.where}: {v.mutant.change}): {v.reason}")
    code = 0
    if pipeline:
        import tempfile as _tempfile

        from grader.grade import Context
        from grader.kernel.sandbox import choose_sandbox
        picked = sample([v.mutant for v in report.relevant], max(1, -(-pipeline // len(FUNCTIONS))))[:pipeline]
        ctx = Context.create(rubric, choose_sandbox("auto"), secret=secret)
        with _tempfile.TemporaryDirectory(prefix="sheet11-audit-nb-") as folder:
            agreements = pipeline_sample(picked, {v.mutant.ident: v for v in report.verdicts}, ctx, Path(folder))
        echo("")
        echo(f"Through the whole pipeline (a notebook in a kernel), {len(agreements)} mutants:")
        for a in agreements:
            echo(f"  {a.mutant.ident:32} in process {a.in_process[0]:g} points, {a.in_process[1]}; "
                 f"pipeline {a.pipeline[0]:g} points, {a.pipeline[1]}: {'agrees' if a.agrees else 'DIFFERS'}")
        if not all(a.agrees for a in agreements):
            echo("The in-process audit and the pipeline disagree: the audit's figures do not stand.")
            code = 1
    if report.refused:
        echo("")
        echo("Refused: a wrong function keeps full points under this rubric. Add a case that catches each:")
        for line in report.refusals():
            echo(f"  {line}")
        code = 1
    return code
