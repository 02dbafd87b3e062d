"""The students' tools: check a notebook before handing it in, pack it, and build the release.

- :func:`check_notebook` grades a notebook exactly as the grader does, but on the rubric's public
  examples only (``Context(public=True)``: public seeds, the public held-out recall data; no hidden
  case is ever drawn), and turns the result into rows a student can act on.
- :func:`pack` reads the group cell and writes ``Name1_id1_Name2_id2[_Name3_id3].zip`` holding the
  notebook as ``sheet11.ipynb``, refusing where a rule of contract §4 would be broken.
- :func:`release` writes the bundle the course hands out: the template, the in-notebook check
  module and the public examples with their expected values (plain arrays, no pickles), and a
  README. No reference code, model answer, hidden seed or hidden expected value goes in.

Library code: raises :class:`~grader.errors.GraderError` subclasses for what a user must fix and
never exits; ``grader/student_cli.py`` holds the thin commands.
"""
from __future__ import annotations

import io
import json
import os
import re
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from grader import resources
from grader.errors import GraderError, UsageError
from grader.naming import GroupCellError, Member, check_naming, parse_filename, read_group, suggest_filename
from grader.notebook import NotebookInvalid, find_group_source, parse_notebook, template_answers
from grader.rubric import AUTO_IDS, WRITTEN_IDS, Rubric, load_rubric

TEMPLATE = resources.template_notebook()
CHECK_MODULE = resources.check_module()
NOTEBOOK_NAME = "sheet11.ipynb"
DATA_STEM = "sheet11_public"
#: Sequences in the self-check's short train_recall run (its length is the rubric's check_seq_len).
CHECK_RECALL_N = 32

EXIT_OK, EXIT_TO_FIX, EXIT_USAGE = 0, 1, 2


class PackRefused(GraderError):
    """`grade pack` would break a rule of contract §4; the message lists which."""

    exit_code = 1


# =============================================================================== public data

def _encode_input(value: Any, key: str, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    from grader.cases import LossSpec
    if isinstance(value, torch.Tensor):
        arrays[key] = value.detach().cpu().numpy().copy()
        return {"t": "array", "key": key}
    if isinstance(value, LossSpec):
        arrays[key] = value.vector.detach().cpu().numpy().copy()
        return {"t": "loss", "kind": value.kind, "key": key}
    if isinstance(value, dict):
        return {"t": "dict", "items": {k: _encode_input(v, f"{key}.{k}", arrays) for k, v in value.items()}}
    if isinstance(value, tuple):
        return {"t": "tree", "value": value}
    if isinstance(value, (str, int, float)):
        return {"t": "plain", "value": value}
    raise TypeError(f"cannot store {type(value).__name__} as a public input")


def _encode_output(value: Any, key: str, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    if isinstance(value, np.ndarray):
        arrays[key] = np.asarray(value, dtype=np.float64)
        return {"t": "array", "key": key}
    if isinstance(value, tuple):
        return {"t": "tuple", "items": [_encode_output(v, f"{key}.{i}", arrays) for i, v in enumerate(value)]}
    if isinstance(value, dict):
        return {"t": "dict", "items": {k: _encode_output(v, f"{key}.{k}", arrays) for k, v in value.items()}}
    raise TypeError(f"cannot store {type(value).__name__} as an expected value")


def _same(a: Any, b: Any, rtol: float, atol: float) -> bool:
    """Whether two outputs in to_numpy form agree within the tolerances (structure included)."""
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return a.shape == b.shape and bool(np.all(np.isfinite(b)) and np.allclose(b, a, rtol=rtol, atol=atol))
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(_same(x, y, rtol, atol) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k], rtol, atol) for k in a)
    return False


def public_data(rubric: Rubric) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The public examples of every function with their expected values and the outputs of every
    known mistake that can be told apart on them: a JSON-able description and plain arrays.

    Only ``Check.public_cases()`` and the recall's public held-out seed are used.
    """
    import reference
    from grader import cases as case_inputs
    from grader.compare import to_numpy
    from grader.mistakes import mistakes_for

    arrays: dict[str, np.ndarray] = {}
    functions: dict[str, Any] = {}
    questions: dict[str, list[str]] = {qid: [] for qid in AUTO_IDS}
    for check in rubric.checks():
        questions[rubric.question_of(check.function)].append(check.function)
        cases = []
        for i, case in enumerate(check.public_cases(), start=1):
            inputs = case_inputs.make_inputs(check.function, case.seed, case.params)
            prefix = f"{check.function}.{i}"
            expected = to_numpy(getattr(reference, check.function)(**inputs))
            mistakes = []
            for mistake in mistakes_for(check.function):
                try:
                    if not mistake.applies(inputs):
                        continue
                    wrong = to_numpy(mistake.compute(**inputs))
                except Exception:  # noqa: BLE001 - a variant that cannot run here is not shown
                    continue
                if _same(expected, wrong, check.rtol, check.atol):
                    continue
                mistakes.append({"key": mistake.key, "description": mistake.description,
                                 "output": _encode_output(wrong, f"{prefix}.mistake.{mistake.key}", arrays)})
            cases.append({"params": case.describe(),
                          "args": {k: _encode_input(v, f"{prefix}.in.{k}", arrays) for k, v in inputs.items()},
                          "expected": _encode_output(expected, f"{prefix}.expected", arrays),
                          "mistakes": mistakes})
        functions[check.function] = {"rtol": check.rtol, "atol": check.atol, "cases": cases}
    spec = rubric.recall
    questions[spec.question].append(spec.function)
    x, y = reference.make_recall_data(CHECK_RECALL_N, spec.check_seq_len, spec.n_classes,
                                      spec.public_heldout_seed)
    recall = {"function": spec.function, "question": spec.question,
              "check_seq_len": spec.check_seq_len, "n_classes": spec.n_classes,
              "seed": spec.public_heldout_seed, "seq_len": spec.seq_len,
              "threshold": spec.threshold, "cpu_time_limit": spec.cpu_time_limit,
              "tries": spec.tries,
              "x": _encode_input(x, "train_recall.x", arrays),
              "y": _encode_input(y, "train_recall.y", arrays)}
    description = {"format": 1, "sheet": "11", "title": rubric.title,
                   "note": "Public examples of Exercise 11.4 for sheet11_check.py; arrays are in "
                           "sheet11_public.npz under the keys named here.",
                   "questions": questions, "functions": functions, "recall": recall}
    return description, arrays


# =============================================================================== release

STUDENT_README = """\
# Exercise Sheet 11: what you need

| file | what it is |
|---|---|
| `sheet11.ipynb` | the notebook you work in and hand in |
| `sheet11_check.py` | the self-check the notebook imports (`from sheet11_check import check`) |
| `sheet11_public.json`, `sheet11_public.npz` | the public examples the self-check runs |

Keep all four files in one folder and open the notebook from there.

## Check your work

- **In the notebook.** Run the cell `from sheet11_check import check` near the top. After each
  function of 11.4 there is a cell such as `check("11.4.a")`; `check()` runs everything,
  `check("lstm_cell")` one function. It calls your functions on the public examples and tells you
  what passes and what to fix: the shape or dtype that came back and the one expected, the first
  element that differs, and the known mistake your output matches (for example "`W` transposed").
  It takes a second or two. For `train_recall` it only checks the interface (an `nn.Module` that
  maps `x` of shape `(seq_len, B, {n_classes})` to logits of shape `(B, {n_classes})`) on a short
  run (seq_len {check_seq_len}).
- **How `train_recall` is graded.** The grader trains `train_recall("lstm", {seq_len}, {n_classes}, seed)`
  itself in your notebook's kernel, on one CPU thread, and needs at least {threshold:.0%} held-out
  accuracy within {cpu_time_limit:g} CPU seconds of training (CPU time, so a busy grading machine does
  not count against you). Up to {tries} seeds ({seeds}) are tried; the first success counts. While
  grading, the global `make_recall_data` relabels the classes with a secret permutation and the
  held-out data uses the same one: train on `make_recall_data`, so the model learns the labels from
  the data. {rnn_note}
- **With the grader**, where your course gives you the `grade` command:
  `grade check sheet11.ipynb` runs the whole notebook the way grading does (public examples
  only) and lists, per question, what passes and what to fix: the automatic checks, the group
  cell, missing answers and the word, sentence and citation rules. Exit code 0 means everything
  that can be checked automatically is in order. It trains `train_recall` only briefly;
  `grade check --full sheet11.ipynb` also runs the grading experiment above (on public held-out
  data), so you see what grading will see. It takes as long as your training does, up to {tries}
  times.

Passing the public examples is necessary, not sufficient: the grader also runs hidden examples of
the same sizes and settings (the public ones show every setting the hidden ones use: both
activations, both losses, every tree shape, `k = 1`, `1 < k < T`, `k >= T`, `T = 1`, `B = 1`), and
a tutor grades the written answers.

Like grading, the check calls each function twice on fresh copies of the same inputs: a function
must leave its arguments as it found them (values, dtype, shape, `requires_grad`, `.grad`; work on
your own copies, e.g. `W.clone()`, or with `torch.no_grad()` on new tensors) and return the same
result both times. A function that breaks either rule loses that example's points, and the check
says which rule and which input.

## Hand in

- Fill in the `GROUP` cell: 2 or 3 members, each with `name`, `student_id` (digits only) and
  `email`. Keep the cell a plain `GROUP = [...]` list; it is read, not run.
- Name the file after the group: `Name1_id1_Name2_id2.ipynb` or
  `Name1_id1_Name2_id2_Name3_id3.ipynb`, or, with extra files (a PDF, images), a zip
  `Name1_id1_Name2_id2.zip` holding the notebook. A name has no spaces and no `_`; an id is only
  digits; every member of the `GROUP` cell appears with their own id. A name may be any run of
  parts of the member's name written together (`Turing`, `AlanTuring`, `duChatelet`), and
  accents may be dropped or spelled out (`ö` as `o` or `oe`, `ß` as `ss`).
- `grade pack sheet11.ipynb [extra files]` builds that zip for you, with the notebook inside as
  `sheet11.ipynb`, and refuses (saying why) when the group cell would break a rule.
- A zip holds one notebook only; other files are fine.

## Word and sentence rules

Words are counted as a reader sees the answer: markdown and HTML are ignored, a formula or a piece
of inline code is one word, a hyphenated word or a number is one word, links, code blocks and
images do not count. Your sources do not count either: start them on a line beginning with
`Sources:` (or `Source:` / `References:`); everything from there to the end of the cell is the
source list.

- 11.2.1 and 11.2.2: at most 100 words each, and cite at least one source (a `Sources:` line, a
  URL, a DOI, or a reference such as "(Hochreiter & Schmidhuber, 1997)").
- 11.3.1: keep the list of five architectures, at most 2 sentences per item.
- 11.3.2: 3 to 5 sentences; the drawing (text art in a code block, or an image attached to the
  cell) does not count.

Keep the tagged cells and the function names and parameters of 11.4 exactly as given, and make
sure the notebook runs from top to bottom (*Kernel → Restart & Run All*) without errors.
"""


def _hidden_tokens(rubric: Rubric) -> set[str]:
    # Seeds below 1000 (the recall's train_seed is 0) are too common a number to search for.
    return {str(s) for s in rubric.hidden_seeds() if s >= 1000}


def _template_text(rubric_path: str | Path | None) -> str:
    """The student notebook built for this rubric, so the numbers it states (train_recall's
    seq_len, threshold, CPU limit, tries) are the rubric's; the committed template where the
    build script is not there (an installed grader without the sources)."""
    build = TEMPLATE.parent / "build_template.py"
    if not build.is_file():
        return TEMPLATE.read_text(encoding="utf-8")
    import importlib.util

    import nbformat
    spec = importlib.util.spec_from_file_location("sheet11_release_build_template", build)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    nb = module.build_notebook(Path(rubric_path)) if rubric_path is not None else module.build_notebook()
    text = nbformat.writes(nb)
    return text if text.endswith("\n") else text + "\n"  # as nbformat.write stores it


def release(out_dir: str | Path, rubric_path: str | Path | None = None) -> list[Path]:
    """Write the student bundle into ``out_dir``; returns the files written."""
    rubric = load_rubric(rubric_path)
    for needed in (TEMPLATE, CHECK_MODULE):
        if not needed.is_file():
            raise UsageError(f"{needed} is missing; run `python student_template/build_template.py` "
                             "from a full checkout of the grader")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    description, arrays = public_data(rubric)
    spec = rubric.recall
    readme = STUDENT_README.format(
        n_classes=spec.n_classes, seq_len=spec.seq_len, threshold=spec.threshold,
        cpu_time_limit=spec.cpu_time_limit, tries=spec.tries, check_seq_len=spec.check_seq_len,
        seeds=", ".join(str(s) for s in range(spec.train_seed, spec.train_seed + spec.tries)),
        rnn_note="A vanilla RNN is trained once beside it for comparison, without points."
        if spec.compare_rnn else "")
    texts = {
        NOTEBOOK_NAME: _template_text(rubric_path),
        CHECK_MODULE.name: CHECK_MODULE.read_text(encoding="utf-8"),
        f"{DATA_STEM}.json": json.dumps(description, indent=1, ensure_ascii=False) + "\n",
        "README.md": readme,
    }
    hidden = _hidden_tokens(rubric)
    for name, text in texts.items():  # a last guard; tests/test_student.py proves it in depth
        leaked = sorted(h for h in hidden if re.search(rf"(?<!\d){h}(?!\d)", text))
        if leaked:
            raise GraderError(f"refusing to write the release: hidden seed {leaked[0]} appears in {name}")
    written = []
    for name, text in texts.items():
        (out / name).write_text(text, encoding="utf-8")
        written.append(out / name)
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # type: ignore[arg-type]  # numpy stubs: **kwds typed as bool; plain arrays, uncompressed; np.load(allow_pickle=False) reads them
    (out / f"{DATA_STEM}.npz").write_bytes(buf.getvalue())
    written.append(out / f"{DATA_STEM}.npz")
    return written


# =============================================================================== check

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
    trained once at the rubric's short ``check_seq_len`` and only its interface is checked.
    """
    from grader.grade import Context, grade_submission
    from grader.sandbox import choose_sandbox

    p = Path(path)
    if not p.is_file():
        raise UsageError(f"{p} does not exist or is not a file")
    if p.suffix.lower() not in (".ipynb", ".zip"):
        raise UsageError(f"{p.name} is neither a .ipynb nor a .zip file")
    rubric = load_rubric(rubric_path)
    sandbox = choose_sandbox(sandbox_mode)
    # The same pipeline as grading, on the public examples, under the name the group cell gives.
    ctx = Context.create(rubric, sandbox, public=True, full_recall=full, name_after_group=True)
    result = grade_submission(p, ctx)
    members = tuple(Member(m["name"], m["student_id"], m["email"]) for m in result.group)
    graded_as = result.submission
    return report_from_result(result, p.name, members, rubric, graded_as)


# =============================================================================== pack

@dataclass(frozen=True)
class PackResult:
    path: Path
    members: tuple[Member, ...]
    entries: tuple[str, ...]
    problems: tuple[str, ...] = ()   # rules broken, packed anyway with --force
    warnings: tuple[str, ...] = ()   # things to look at that break no rule


def _unfinished(nb: Any) -> list[str]:
    """Unanswered questions and functions still raising the template's NotImplementedError."""
    from grader.notebook import find_answer
    from grader.rules import is_blank_answer
    out = []
    template = {}
    if TEMPLATE.is_file():
        import nbformat
        template = template_answers(nbformat.read(str(TEMPLATE), as_version=4))
    blank = [qid for qid in WRITTEN_IDS if is_blank_answer(find_answer(nb, qid).source, template.get(qid))]
    if blank:
        out.append("no answer yet to " + ", ".join(blank))
    stubs = [m.group(1) for cell in nb.cells if cell.cell_type == "code"
             for m in re.finditer(r"NotImplementedError\(['\"](\w+): not implemented yet", cell.source)]
    if stubs:
        out.append("still the template's stub: " + ", ".join(f"`{s}`" for s in dict.fromkeys(stubs)))
    return out


def _member_problems(members: tuple[Member, ...]) -> list[str]:
    """What in the group cell would make a file name the grader cannot match."""
    out = []
    seen: dict[str, str] = {}
    for m in members:
        sid = m.student_id
        if not sid:
            out.append(f"{m.name} has no student_id in the group cell")
        elif not (sid.isascii() and sid.isdigit()):
            out.append(f"the student id '{sid}' of {m.name} is not digits only")
        elif sid in seen:
            out.append(f"{seen[sid]} and {m.name} share the student id {sid}")
        seen.setdefault(sid, m.name)
        family = suggest_filename((m,), ".zip").split("_", 1)[0]
        if not any(ch.isalpha() for ch in family):
            out.append(f"the name '{m.name}' has no letters a file name can use")
    return out


def pack(notebook: str | Path, extras: Iterable[str | Path] = (), out_dir: str | Path = ".",
         force: bool = False, rubric_path: str | Path | None = None) -> PackResult:
    """Write ``Name1_id1_Name2_id2[_Name3_id3].zip`` into ``out_dir`` from the group cell.

    Raises
    ------
    UsageError
        The notebook or an extra file cannot be read, or the group cell gives no names at all.
    PackRefused
        A rule of contract §4 would be broken (lists every one); ``force`` packs anyway.
    """
    rubric = load_rubric(rubric_path)
    nb_path = Path(notebook)
    if not nb_path.is_file():
        raise UsageError(f"{nb_path} does not exist or is not a file")
    if nb_path.suffix.lower() != ".ipynb":
        raise UsageError(f"{nb_path.name} is not a notebook (.ipynb); pass the notebook first, "
                         "then any extra files")
    data = nb_path.read_bytes()
    try:
        nb = parse_notebook(data)
    except NotebookInvalid as exc:
        raise UsageError(f"{nb_path.name}: {exc}") from None
    source, found_by = find_group_source(nb)
    if not source:
        raise UsageError(f"{nb_path.name} has no group cell (GROUP = [...]); the zip is named "
                         "after it, so fill it in first")
    try:
        members = read_group(source)
    except GroupCellError as exc:
        raise UsageError(f"{nb_path.name}: {exc}") from None

    problems: list[str] = []
    if found_by != "tag":
        problems.append("the group cell has lost its `group` tag (the grader flags this); "
                        "add the tag back or start from the template's cell")
    name = suggest_filename(members, ".zip")
    own = _member_problems(members)
    problems += own
    for finding in check_naming(name, members, rubric.naming.group_size):
        if own and finding.code in ("naming.pattern", "naming.mismatch"):
            continue  # the file name is made from the cell: the cell's problems above explain it
        problems.append(f"{finding.code}: {finding.message}")
    max_bytes = rubric.limits.max_notebook_mb * 1024 * 1024
    if len(data) > max_bytes:
        problems.append(f"the notebook is {len(data) / 1e6:.1f} MB; the limit is "
                        f"{rubric.limits.max_notebook_mb:g} MB (clear large outputs)")

    entries: dict[str, Path] = {NOTEBOOK_NAME: nb_path}
    for extra in extras:
        e = Path(extra)
        if not e.is_file():
            raise UsageError(f"{e} does not exist or is not a file")
        if e.resolve() == nb_path.resolve():
            continue
        if e.suffix.lower() == ".ipynb":
            problems.append(f"{e.name}: a zip may hold one notebook only")
        if e.name.lower() == NOTEBOOK_NAME or e.name in entries:
            problems.append(f"{e.name}: two files of that name; rename one")
            continue
        entries[e.name] = e
    if problems and not force:
        raise PackRefused("not packed: " + "; ".join(problems)
                          + ". Fix the group cell (or the files) and pack again, or pack anyway with --force.")

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    target = out / name
    tmp = out / f".{name}.part"
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for arcname, src in entries.items():
            zf.write(src, arcname)
    os.replace(tmp, target)

    from grader.intake import read_submission
    intake = read_submission(target, rubric.archive, rubric.limits.max_notebook_mb)
    if intake.notebook is None:
        problem = f"the grader would not accept the zip: {intake.problem}"
        if not force:
            target.unlink(missing_ok=True)
            raise PackRefused("not packed: " + problem)
        problems.append(problem)
    return PackResult(target, members, tuple(entries), tuple(problems), tuple(_unfinished(nb)))


def group_text(members: Iterable[Member]) -> str:
    return ", ".join(f"{m.name} ({m.student_id}, {m.email})" for m in members)


def rows_as_dicts(report: CheckReport) -> list[Mapping[str, str]]:
    return [{"question": r.question, "item": r.item, "status": r.status, "message": r.message}
            for r in report.rows]
