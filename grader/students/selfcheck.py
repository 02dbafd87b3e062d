"""`grade check`: a notebook graded exactly as the grader does, but on the rubric's public
examples only (``Context(public=True)``: public seeds, the public held-out recall data; no hidden
case is ever drawn), turned into rows a student can act on.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from grader.errors import UsageError
from grader.rubric import AUTO_IDS, WRITTEN_IDS, Rubric, load_rubric
from grader.submission.naming import Member, check_naming, parse_filename

#: `grade check`: every public check passes and nothing is missing / something to fix.
EXIT_OK, EXIT_TO_FIX = 0, 1


@dataclass(frozen=True)
class Row:
    """One line of `grade check`: ``status`` is pass, fail, todo (missing), advice or info."""

    question: str
    item: str
    status: str
    message: str = ""


@dataclass(frozen=True)
class CheckReport:
    submission: str
    rows: tuple[Row, ...]
    sandbox_note: str = ""
    suggested_name: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not any(r.status in ("fail", "todo") for r in self.rows)

    @property
    def exit_code(self) -> int:
        return EXIT_OK if self.ok else EXIT_TO_FIX

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.rows:
            out[r.status] = out.get(r.status, 0) + 1
        return out


_RUN_CODES = ("cell.timeout", "notebook.timeout", "kernel.died", "notebook.invalid")


def _written_rows(result: Any, rubric: Rubric) -> list[Row]:
    rows = []
    for qid in WRITTEN_IDS:
        q = result.questions[qid]
        rule = rubric.questions[qid]
        flags = [f for f in result.flags if f.question == qid]
        if any(f.code == "answer.missing" for f in flags):
            rows.append(Row(qid, "answer", "todo", "no answer yet: write it in the cell below the question "
                                                   f"(tag answer-{qid})"))
            continue
        for f in flags:
            rows.append(Row(qid, f.code, "fail", f.message))
        a = q.answer
        if a is None:
            continue
        facts = [f"{a.words} word{'s' if a.words != 1 else ''}"
                 + (f" (limit {rule.max_words})" if rule.max_words else "")]
        if rule.min_sentences or rule.max_sentences or rule.expected_items:
            facts.append(f"{a.sentences} sentence{'s' if a.sentences != 1 else ''}")
        if rule.require_citation and not any(f.code == "citation.missing" for f in flags):
            facts.append("a source is cited")
        if not flags:
            rows.append(Row(qid, "answer", "pass", "answered: " + ", ".join(facts)))
        for note in a.notes:
            rows.append(Row(qid, "note", "advice", note))
    return rows


def _auto_rows(result: Any, rubric: Rubric) -> list[Row]:
    rows = []
    for qid in AUTO_IDS:
        q = result.questions[qid]
        seen_todo: set[str] = set()
        for case in q.cases:
            item = f"{case.function}, example {case.index} ({case.params})"
            recall = case.function == rubric.recall.function
            if recall and case.got and "(interface only)" not in case.params:
                detail = (f"LSTM: {case.got} held-out accuracy on the public held-out data "
                          f"(needs {case.expected}); {case.message}")
            else:
                detail = case.message
            if case.passed:
                rows.append(Row(qid, item, "pass", detail if recall else ""))
                continue
            not_implemented = case.call_status == "raised" and case.error_type == "NotImplementedError"
            if case.call_status == "missing" or not_implemented:
                if case.function in seen_todo:
                    continue
                seen_todo.add(case.function)
                text = (f"`{case.function}` is not implemented yet" if not_implemented
                        else f"no function named `{case.function}` is defined after the notebook ran "
                             "(keep the name exactly as given)")
                rows.append(Row(qid, case.function, "todo", text))
                continue
            message = detail
            if case.expected and case.got and not case.mistakes and not recall:
                message += f"; expected {case.expected}, got {case.got}"
            # A mistake the tutors named in an earlier term (grader/checks/learned.py), as the
            # report and sheet11_check say it; one line, since a row is printed on one line.
            for note in case.learned:
                title, explanation = note.get("title", ""), " ".join(note.get("explanation", "").split())
                message += f"; a note from your tutors: {title}" + (f": {explanation}" if explanation else "")
            rows.append(Row(qid, item, "fail", message))
    return rows


def report_from_result(result: Any, real_name: str, members: tuple[Member, ...], rubric: Rubric,
                       graded_as: str) -> CheckReport:
    """The rows of `grade check` from a public-mode grading result."""
    rows: list[Row] = []
    if result.status != "graded":
        rows.append(Row("submission", result.status, "fail", result.message))
    # Graded under the name the group cell gives, naming flags are about the cell; without a
    # readable cell they are about the file name, which is advice below.
    group_flags = [f for f in result.flags if f.question is None and (
        f.code.startswith("group.") or (members and f.code.startswith("naming.")))]
    for f in group_flags:
        rows.append(Row("group", f.code, "fail", f.message))
    if members and not group_flags:
        rows.append(Row("group", "GROUP cell", "pass",
                        ", ".join(f"{m.name} ({m.student_id})" for m in members)))
    if members and real_name != graded_as:
        advice = [f for f in check_naming(real_name, members, rubric.naming.group_size)
                  if f.code in ("naming.pattern", "naming.mismatch")]
        if advice:
            rows.append(Row("file name", real_name, "advice",
                            f"hand it in as '{Path(graded_as).stem}.ipynb' (or a zip '{Path(graded_as).stem}.zip'; "
                            "`grade pack` builds it): " + "; ".join(f.message for f in advice)))
    elif not members:
        parsed = parse_filename(real_name)
        if not parsed.ok:
            rows.append(Row("file name", real_name, "advice", parsed.problem))
    for f in result.flags:
        if f.question is None and f.code in _RUN_CODES:
            rows.append(Row("notebook", f.code, "fail", f.message))
        elif f.question is None and f.code == "archive.contents":
            rows.append(Row("submission", f.code, "advice", f.message))
    for cell in result.cells:
        if cell.get("status") == "error":
            rows.append(Row("notebook", f"cell {cell['index'] + 1}", "fail",
                            f"this cell raised {cell.get('error') or 'an error'}; the notebook must run "
                            "top to bottom without errors"))
    rows += _written_rows(result, rubric)
    rows += _auto_rows(result, rubric)
    return CheckReport(real_name, tuple(rows), result.sandbox_note,
                       graded_as if members else "", result.seconds)


def check_notebook(path: str | Path, rubric_path: str | Path | None = None,
                   sandbox_mode: str = "auto", full: bool = False) -> CheckReport:
    """Grade ``path`` (.ipynb or .zip) as the grader does, on the public examples only.

    ``full`` runs the recall experiment as grading does (``grade check --full``: the rubric's
    seq_len, tries and limits, on the public held-out data); without it ``train_recall`` is
    trained once at the rubric's short ``check_seq_len`` and only its interface is checked. With
    ``full`` on a machine where this process may use two or more CPUs, the vanilla-RNN comparison
    runs in a second kernel from the start, beside the LSTM's tries (grader/checks/recall_side.py).
    """
    from grader.grade import Context, grade_submission
    from grader.kernel.sandbox import choose_sandbox
    from grader.kernel.spare import AlwaysSpare, usable_cpus

    p = Path(path)
    if not p.is_file():
        raise UsageError(f"{p} does not exist or is not a file")
    if p.suffix.lower() not in (".ipynb", ".zip"):
        raise UsageError(f"{p.name} is neither a .ipynb nor a .zip file")
    rubric = load_rubric(rubric_path)
    sandbox = choose_sandbox(sandbox_mode)
    # The same pipeline as grading, on the public examples, under the name the group cell gives.
    ctx = Context.create(rubric, sandbox, public=True, full_recall=full, name_after_group=True)
    if full and usable_cpus() >= 2:  # the RNN comparison in a second kernel, beside the LSTM's tries
        ctx = replace(ctx, spare=AlwaysSpare())
    result = grade_submission(p, ctx)
    members = tuple(Member(m["name"], m["student_id"], m["email"]) for m in result.group)
    graded_as = result.submission
    return report_from_result(result, p.name, members, rubric, graded_as)


