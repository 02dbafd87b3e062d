"""`grade audit`'s output: the per-function table and figures, and a sample graded through the
whole pipeline (a notebook from the template with the mutant in place, graded in a kernel) to show
that the in-process audit agrees with real grading."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grader.tutors.audit_findings import AuditReport, Verdict, finding_kind
from grader.tutors.audit_mutants import FUNCTIONS, Mutant

__all__ = ["PipelineAgreement", "mutant_notebook", "pipeline_sample", "summary_lines"]



@dataclass(frozen=True)
class PipelineAgreement:
    mutant: Mutant
    in_process: tuple[float, str]   # (points, kind) in process
    pipeline: tuple[float, str]     # (points, kind) through grade_submission in a kernel

    @property
    def agrees(self) -> bool:
        return abs(self.in_process[0] - self.pipeline[0]) < 1e-9 and self.in_process[1] == self.pipeline[1]


def mutant_notebook(mutant: Mutant, template: Path) -> Any:
    """The template with the mutant's program in its function's cell, a group filled in, and
    the try-it and self-check cells left out (they would only call the other stubs)."""
    import nbformat
    nb = nbformat.read(str(template), as_version=4)
    keep = []
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        if any(t.startswith(("try-", "check-")) for t in tags):
            continue
        if "group" in tags:
            cell.source = ('GROUP = [{"name": "Ada Lovelace", "student_id": "2571234", "email": "ada@uni.example"}, '
                           '{"name": "Alan Turing", "student_id": "2579876", "email": "alan@uni.example"}]')
        if f"function-{mutant.function}" in tags:
            cell.source = mutant.program
        keep.append(cell)
    nb.cells = keep
    return nb


def pipeline_sample(mutants: Sequence[Mutant], verdicts: Mapping[str, Verdict], ctx: Any,
                    folder: Path) -> list[PipelineAgreement]:
    """Grade each mutant through :func:`grader.grade.grade_submission` (a kernel, the hidden
    cases) and compare with its in-process verdict."""
    import nbformat

    from grader.grade import grade_submission
    from grader.resources import template_notebook
    out = []
    for m in mutants:
        path = folder / f"Lovelace_2571234_Turing_2579876_{m.ident.replace('/', '_')}.ipynb"
        nbformat.write(mutant_notebook(m, template_notebook()), str(path))
        result = grade_submission(path, ctx, name="Lovelace_2571234_Turing_2579876.ipynb")
        qid = ctx.rubric.question_of(m.function)
        checks = [c for c in result.questions[qid].cases if c.function == m.function]
        kind, _ = finding_kind(checks)
        v = verdicts[m.ident]
        out.append(PipelineAgreement(m, (v.points, v.kind), (round(sum(c.points for c in checks), 6), kind)))
    return out

# ------------------------------------------------------------------------------------------------
# `grade audit`: the table, the figures, the refusal.


def summary_lines(report: AuditReport) -> list[str]:
    """The per-function table and the figures, as plain text lines."""
    counts = report.counts()
    kinds = ("named", "setting", "layout", "located", "contract", "hedged", "raised_line", "raised_cause",
             "error", "shape", "nan", "unlocated", "wrong")
    head = f"{'function':20} {'mutants':>7} {'equiv':>5} {'killed':>6} {'surv':>4} {'named/loc':>9}  " + \
        " ".join(f"{k[:8]:>8}" for k in kinds)
    lines = [head]
    total: dict[str, int] = {}
    for function in FUNCTIONS:
        row = counts.get(function)
        if not row:
            continue
        for k, v in row.items():
            total[k] = total.get(k, 0) + v
        lines.append(_row(function, row, kinds))
    lines.append(_row("all", total, kinds))
    relevant = len(report.relevant)
    killed = sum(v.killed for v in report.relevant)
    named = sum(v.killed and v.named_or_located for v in report.relevant)
    valued = [v for v in report.relevant if v.killed and v.kind not in ("error", "raised_line", "raised_cause")]
    lines += ["",
              f"{len(report.verdicts)} mutants, {len(report.equivalent)} equivalent, {relevant} to be killed: "
              f"killed {killed} ({100 * report.killed_rate:.1f} %), survived {len(report.survivors)}",
              f"named or located: {named} of {killed} killed ({100 * report.named_rate:.1f} %); "
              f"of the {len(valued)} killed mutants that return a value (no exception): "
              f"{sum(v.named_or_located for v in valued)} "
              f"({100 * sum(v.named_or_located for v in valued) / max(1, len(valued)):.1f} %)",
              f"wrong claims (a mistake, term or line named that is not the change): {len(report.wrong_claims)}",
              f"audit time {report.seconds:.0f} s"]
    for wrong in report.wrong_claims:
        lines.append(f"  WRONG {wrong.mutant.ident} ({wrong.mutant.where}: {wrong.mutant.change}): "
                     f"the report says {wrong.claim}")
    return lines


def _row(name: str, row: Mapping[str, int], kinds: Sequence[str]) -> str:
    return (f"{name:20} {row.get('mutants', 0):>7} {row.get('equivalent', 0):>5} {row.get('killed', 0):>6} "
            f"{row.get('survived', 0):>4} {row.get('named_or_located', 0):>9}  "
            + " ".join(f"{row.get(k, 0):>8}" for k in kinds))

