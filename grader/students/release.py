"""The bundle the course hands out (`grade release`): the template built for the rubric, the
in-notebook check module and the public examples with their expected values (plain arrays, no
pickles), and a README. No reference code, model answer, hidden seed or hidden expected value
goes in; ``tests/test_student.py`` searches the bundle for each.

The mistakes tutors named in earlier terms that the rubric loads (``[[learned_mistakes]]``) go in
as their public part only (grader/checks/learned.py's :func:`~grader.checks.learned.public_part`:
title, explanation, fingerprints on the public examples, and the rubric's quantum), beside the
function's public examples, so ``sheet11_check`` names them as grading does;
``tests/test_learned_release.py`` searches the bundle for everything else an entry holds.
"""
from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from grader import resources
from grader.errors import GraderError, UsageError
from grader.rubric import AUTO_IDS, Rubric, case_key, load_rubric

TEMPLATE = resources.template_notebook()
CHECK_MODULE = resources.check_module()
NOTEBOOK_NAME = "sheet11.ipynb"
DATA_STEM = "sheet11_public"
#: Sequences in the self-check's short train_recall run (its length is the rubric's check_seq_len).
CHECK_RECALL_N = 32

def _encode_input(value: Any, key: str, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    from grader.checks.cases import LossSpec
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
    from grader.checks import cases as case_inputs
    from grader.checks.compare import to_numpy
    from grader.checks.learned import public_part
    from grader.checks.mistakes import mistakes_for

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
        keys = [case_key("public", case.seed, case.params, None) for case in check.public_cases()]
        named = [public_part(entry, keys) for entry in rubric.learned.mistakes if entry.function == check.function]
        functions[check.function] = {"rtol": check.rtol, "atol": check.atol, "cases": cases,
                                     "learned": [entry for entry in named if entry is not None]}
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
                   "questions": questions, "functions": functions, "recall": recall,
                   "learned_quantum": rubric.learned.quantum}
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
  element that differs, and the known mistake your output matches (for example "`W` transposed"),
  including the mistakes your tutors explained to earlier years' students, with their note.
  It takes a second or two. For `train_recall` it only checks the interface (an `nn.Module` that
  maps `x` of shape `(seq_len, B, {n_classes})` to logits of shape `(B, {n_classes})`) on a short
  run (seq_len {check_seq_len}).
- **How `train_recall` is graded.** The grader trains `train_recall("lstm", {seq_len}, {n_classes}, seed)`
  itself in your notebook's kernel, on one CPU thread, and needs at least {threshold:.0%} held-out
  accuracy within {cpu_time_limit:g} CPU seconds of training (CPU time, so a busy grading machine does
  not count against you). Seed after seed is tried until one succeeds, while the tries together
  stay under {cpu_budget:g} CPU seconds (at most {tries} tries): a fast trainer gets more tries.{sure} While
  grading, the global `make_recall_data` relabels the classes with a secret permutation and the
  held-out data uses the same one: train on `make_recall_data`, so the model learns the labels from
  the data. {rnn_note}
- **With the grader**, where your course gives you the `grade` command:
  `grade check sheet11.ipynb` runs the whole notebook the way grading does (public examples
  only) and lists, per question, what passes and what to fix: the automatic checks, the group
  cell, missing answers and the word, sentence and citation rules. Exit code 0 means everything
  that can be checked automatically is in order. It trains `train_recall` only briefly;
  `grade check --full sheet11.ipynb` also runs the grading experiment above (on public held-out
  data), so you see what grading will see. It takes as long as your training does, up to
  {cpu_budget:g} CPU seconds for the tries together.

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
    text = str(nbformat.writes(nb))
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
        cpu_budget=spec.cpu_budget,
        sure=(" A correct implementation that reaches the threshold on half of its seeds and gets n tries fails "
              "them all with probability 0.5^n; each correct implementation the rule was calibrated on fails it "
              f"with probability at most {spec.false_fail_bound:.1e}.") if spec.false_fail_bound else "",
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


