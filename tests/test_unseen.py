"""Red team: submissions the grader was not tuned on (tests/files/unseen/, written by
tests/make_unseen_fixtures.py), graded in one batch as a tutor would.

A: correct in unusual styles -> every automatic point. B: buggy -> the broken function's points
lost, the report names the failing case. C: hostile -> no point gained, no stall, no crash, an
inert report. ``SCENARIOS`` holds each one's expected outcome.
"""
from __future__ import annotations

import hashlib
import html
import json
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from make_unseen_fixtures import AUTO, FAST, SCENARIOS, UNSEEN, build, filename, path

from grader.checks.bridge import ArrayInfo, SeqInfo, TypeInfo, plain_text
from grader.checks.compare import _describe
from grader.rubric import DEFAULT_RUBRIC

# A short kernel time-out, and a recall experiment small enough to train in a few CPU seconds
# (seq_len 6, 4 classes, no vanilla-RNN comparison): the decision rule is the rubric's own.
SHORT = {"cell_timeout": 10, "notebook_timeout": 120, "memory_mb": 3072, "max_file_mb": 64, "call_timeout": 20,
         "seq_len": 6, "n_classes": 4, "tries": 2, "heldout_n": 200, "evidence_n": 200, "cpu_time_limit": 60,
         "wall_time_limit": 300}


def short_rubric(target: Path) -> Path:
    text = DEFAULT_RUBRIC.read_text(encoding="utf-8")
    for key, value in SHORT.items():
        text, n = re.subn(rf"(?m)^{key}\s*=\s*\d+", f"{key} = {value}", text)
        assert n == 1, key
    text, n = re.subn(r"(?m)^compare_rnn\s*=\s*true", "compare_rnn = false", text)
    assert n == 1
    target.write_text(text, encoding="utf-8")
    return target


# ------------------------------------------------------------------------------------------ fast

def test_fixtures_are_up_to_date() -> None:
    stale = [k for k in SCENARIOS if not path(k).exists() or path(k).read_bytes() != build(k)]
    assert not stale, f"run python tests/make_unseen_fixtures.py ({stale})"
    assert sorted(p.name for p in UNSEEN.glob("*.ipynb")) == sorted(filename(k) for k in SCENARIOS)


def test_the_corpus_has_thirty_scenarios_a_third_of_each_kind() -> None:
    kinds = [s.kind for s in SCENARIOS.values()]
    assert len(kinds) >= 30 and all(kinds.count(k) >= 10 for k in "ABC")


def test_a_returned_list_is_called_a_list_with_its_length() -> None:
    """The kernel sends at most 16 items of a list: the report still says what came back."""
    item = ArrayInfo(np.zeros((3, 5)), "tensor", "torch.float32")
    assert _describe(SeqInfo((item,) * 6, "list", 6)) == \
        "a list of 6 (each a tensor of shape (3, 5) and dtype torch.float32)"
    assert _describe(SeqInfo((item,) * 16, "list", 30)) == "a list of 30"
    assert _describe((1.0, 2.0)) == "a tuple of 2"


def test_kernel_text_loses_escapes_and_direction_marks() -> None:
    """A student's exception text may not recolour a terminal or reorder a report's words."""
    raw = "\x1b[2J\x1b[31mRED\x1b[0m \u202eevil\u202c\x1b]0;title\x07 </script>\n\tnext\x00\u2066x\u2069"
    assert plain_text(raw) == "RED evil </script>\n\tnextx"
    assert len(plain_text("é" * 5000)) == 800 and plain_text(None) == "None"


def test_a_result_too_large_to_send_is_described_not_blamed_on_the_function() -> None:
    assert _describe(TypeInfo("result too large to send back (80 MB as float64)")) == \
        "a result too large to send back (80 MB as float64)"


def test_a_half_precision_answer_is_told_its_dtype() -> None:
    """lstm_cell computed in float16: right formula, wrong precision; the message says which."""
    import torch

    import reference
    from grader.checks.bridge import Returned
    from grader.checks.cases import make_inputs
    from grader.checks.compare import compare_case, to_numpy
    inputs = make_inputs("lstm_cell", 11421, dict(B=3, D=4, H=5))
    expected = to_numpy(reference.lstm_cell(**inputs))
    half = tuple(ArrayInfo(torch.as_tensor(e).half().double().numpy(), "tensor", "torch.float16") for e in expected)
    case = compare_case("lstm_cell", 1, "", "", inputs, expected, Returned("ok", half), 1e-4, 1e-5, 0.25)
    assert not case.passed and "it came back as torch.float16" in case.message
    # ... and still after the attribution over all of the function's cases restates it.
    from grader.checks.compare import with_attribution
    assert "it came back as torch.float16" in with_attribution(case, ()).message
    full = tuple(ArrayInfo(e + 1.0, "tensor", "torch.float32") for e in expected)
    case = compare_case("lstm_cell", 1, "", "", inputs, expected, Returned("ok", full), 1e-4, 1e-5, 0.25)
    assert not case.passed and "came back as" not in case.message


def test_a_huge_integer_in_the_group_cell_gets_advice_a_student_can_use() -> None:
    from grader.errors import GroupCellError
    from grader.submission.naming import read_group
    with pytest.raises(GroupCellError) as info:
        read_group('GROUP = [{"name": "Ada Lovelace", "student_id": ' + "9" * 5000 + ', "email": "a@b.c"}]')
    message = str(info.value)
    assert "line 1" in message and "quoted text" in message and "set_int_max_str_digits" not in message


# ------------------------------------------------------------------------------------------ slow

def grade_corpus(root: Path) -> dict[str, tuple[Any, str]]:
    """Every scenario graded once, in one batch with two workers: key -> (result, report text)."""
    from grader.batch.run import BatchSettings, run_batch

    subs = root / "subs"
    subs.mkdir()
    for key in SCENARIOS:
        shutil.copyfile(path(key), subs / filename(key))
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in subs.iterdir()}
    scratch = Path(tempfile.mkdtemp(prefix="unseen-", dir="/tmp"))  # short: socket paths < 107 bytes
    old = tempfile.tempdir
    tempfile.tempdir = str(scratch)
    try:
        outcome = run_batch([str(subs)], BatchSettings.make(root / "out", str(short_rubric(root / "rubric.toml")), jobs=2))
    finally:
        tempfile.tempdir = old
        # Every kernel's run folder is removed as the batch closes: wait for it (generously);
        # what is left is reported at the end of the test.
        for _ in range(30):
            leftovers = sorted(p.name for p in scratch.iterdir())
            if not leftovers:
                break
            time.sleep(1)
        shutil.rmtree(scratch, ignore_errors=True)
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in subs.iterdir()} == before
    by_name = {r["submission"]: r for r in outcome.results}
    out = {}
    for key in SCENARIOS:
        result = by_name[filename(key)]
        folder = root / "out" / Path(filename(key)).stem
        assert json.loads((folder / "result.json").read_text(encoding="utf-8"))["points"] == result["points"]
        out[key] = (result, (folder / "report.html").read_text(encoding="utf-8"))
    out["__csv__"] = ((root / "out" / "grades.csv").read_text(encoding="utf-8"), "")
    out["__leftovers__"] = (leftovers, "")
    return out


def visible(report: str) -> str:
    """The report's text as a reader sees it."""
    text = re.sub(r"(?s)<(style|script)\b.*?</\1>", " ", report)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", text)))


def explain(result: dict) -> str:
    lines = [f"status={result['status']} message={result.get('message')!r} flags={result['flags']}"]
    for q in AUTO:
        for c in result["questions"][q].get("checks", []):
            if not c["passed"]:
                lines.append(f"  {q} {c['name']}: {c['message'][:300]}")
    return "\n".join(lines)


def check_scenario(key: str, result: dict, report: str) -> None:
    sc = SCENARIOS[key]
    assert result["status"] == sc.status, explain(result)
    got = {q: result["questions"][q]["points"] for q in AUTO}
    assert got == pytest.approx(sc.points, abs=1e-3), explain(result)
    assert sorted({f["code"] for f in result["flags"]}) == sorted(sc.flags), explain(result)
    text = visible(report)
    for snippet in sc.report:
        assert snippet.lower() in text.lower(), (snippet, explain(result))
    # Every failing check names its case in the report and says what went wrong, without a traceback.
    for q in AUTO:
        for c in result["questions"][q].get("checks", []):
            if not c["passed"] and sc.status == "graded":
                assert c["message"] and "Traceback" not in c["message"], c
                assert c["name"] in text, c["name"]
    # An inert report: no script; the grader's own messages carry no terminal escape or
    # direction mark from the student (answers and outputs: test_answers_and_outputs_...).
    assert "<script" not in report.lower()
    for q in AUTO:
        for c in result["questions"][q].get("checks", []):
            assert "\x1b" not in c["message"] and "\u202e" not in c["message"], c["message"]
    assert "Traceback (most recent call last)" not in report
    if sc.kind == "C":  # hostile code never earns more than the honest solution it was put into
        assert all(got[q] <= FAST[q] + 1e-9 for q in AUTO), explain(result)


@pytest.mark.slow
def test_every_scenario_gets_the_fair_grade(tmp_path: Path) -> None:
    """One batch (so `-n 2` does not grade the corpus twice); every scenario's failure is listed."""
    graded = grade_corpus(tmp_path)
    failures = []
    for key in SCENARIOS:
        result, report = graded[key]
        try:
            check_scenario(key, result, report)
        except AssertionError as exc:
            failures.append(f"{key}: {exc}")
    # A list comes back as a list (on a hidden case without its length: grader/checks/compare.py).
    result, report = graded["list_of_tensors"]
    messages = [c["message"] for c in result["questions"]["11.4.a"]["checks"]]
    if not all("returned a list;" in m and "tuple" not in m for m in messages):
        failures.append(f"list_of_tensors: {messages}")
    # Members with diacritics reach the CSV; the 5000-digit id is a finding, not a crash.
    csv, _ = graded["__csv__"]
    for member in ("Émilie du Châtelet", "Jean-Luc Picard", "Gauß", filename("huge_int_group")):
        if member not in csv:
            failures.append(f"grades.csv lacks {member}")
    # A kernel whose answers its own patches garbled (json.dump, eval) answered: it is not dead.
    for key in ("patch_torch", "patch_builtins"):
        if "kernel.died" in {f["code"] for f in graded[key][0]["flags"]}:
            failures.append(f"{key}: reported as a dead kernel")
    # With -j 2 inside one process, the workers close the kernels they started ahead themselves
    # at the end: no run folder (sheet11-run-<worker pid>-*) outlives run_batch.
    leftovers, _ = graded["__leftovers__"]
    if leftovers:
        failures.append(f"run_batch(jobs=2) left {leftovers} in the scratch folder")
    assert not failures, "\n\n".join(failures)


@pytest.mark.slow
def test_a_forged_first_answer_is_not_called_a_dead_kernel(tmp_path: Path) -> None:
    from builders import quick_context

    from grader.grade import grade_submission
    target = tmp_path / filename("patch_torch")
    shutil.copyfile(path("patch_torch"), target)
    result = grade_submission(target, quick_context(cell_timeout=10, notebook_timeout=120))
    assert "kernel.died" not in {f.code for f in result.flags}
    # Every function was tried, each check says what came back, and none earns anything.
    checks = [c for q in ("11.4.a", "11.4.b", "11.4.c") for c in result.questions[q].cases]
    assert checks and all(c.points == 0 and c.call_status != "missing" for c in checks)


@pytest.mark.slow
def test_answers_and_outputs_lose_direction_marks_in_the_report(tmp_path: Path) -> None:
    from builders import quick_context

    from grader.grade import grade_submission
    from grader.pages.report import render_report
    target = tmp_path / filename("nasty_text")
    shutil.copyfile(path("nasty_text"), target)
    report = render_report(grade_submission(target, quick_context(cell_timeout=10, notebook_timeout=120)))
    assert "\u202e" not in report and "\x1b" not in report
