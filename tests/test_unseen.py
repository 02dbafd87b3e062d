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
from pathlib import Path

import numpy as np
import pytest
from make_unseen_fixtures import AUTO, FAST, SCENARIOS, UNSEEN, build, filename, path

from grader.bridge import ArrayInfo, SeqInfo
from grader.compare import _describe
from grader.rubric import DEFAULT_RUBRIC

# A short kernel time-out, and a recall experiment small enough to train in a few CPU seconds
# (seq_len 6, 4 classes, no vanilla-RNN comparison): the decision rule is the rubric's own.
SHORT = {"cell_timeout": 10, "notebook_timeout": 120, "memory_mb": 3072, "max_file_mb": 64, "call_timeout": 20,
         "seq_len": 6, "n_classes": 4, "tries": 2, "heldout_n": 200, "cpu_time_limit": 60, "wall_time_limit": 300}


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


# ------------------------------------------------------------------------------------------ slow

@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory):
    """Every scenario graded once, in one batch with two workers: key -> (result, report text)."""
    from grader.batch import run_batch

    root = tmp_path_factory.mktemp("unseen")
    subs = root / "subs"
    subs.mkdir()
    for key in SCENARIOS:
        shutil.copyfile(path(key), subs / filename(key))
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in subs.iterdir()}
    scratch = Path(tempfile.mkdtemp(prefix="unseen-", dir="/tmp"))  # short: socket paths < 107 bytes
    old = tempfile.tempdir
    tempfile.tempdir = str(scratch)
    try:
        outcome = run_batch([str(subs)], root / "out", str(short_rubric(root / "rubric.toml")), jobs=2)
    finally:
        tempfile.tempdir = old
        leftovers = sorted(p.name for p in scratch.iterdir())
        shutil.rmtree(scratch, ignore_errors=True)
    assert leftovers == [], "a scratch folder was left behind"
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in subs.iterdir()} == before
    by_name = {r["submission"]: r for r in outcome.results}
    out = {}
    for key in SCENARIOS:
        result = by_name[filename(key)]
        folder = root / "out" / Path(filename(key)).stem
        assert json.loads((folder / "result.json").read_text(encoding="utf-8"))["points"] == result["points"]
        out[key] = (result, (folder / "report.html").read_text(encoding="utf-8"))
    out["__csv__"] = ((root / "out" / "grades.csv").read_text(encoding="utf-8"), "")
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


@pytest.mark.slow
@pytest.mark.parametrize("key", list(SCENARIOS))
def test_scenario_gets_the_fair_grade(graded, key: str) -> None:
    sc = SCENARIOS[key]
    result, report = graded[key]
    assert result["status"] == sc.status, explain(result)
    got = {q: result["questions"][q]["points"] for q in AUTO}
    assert got == pytest.approx(sc.points, abs=1e-3), explain(result)
    assert sorted({f["code"] for f in result["flags"]}) == sorted(sc.flags), explain(result)
    text = visible(report).lower()
    for snippet in sc.report:
        assert snippet.lower() in text, (snippet, explain(result))
    # Every failing check names its case, and says what went wrong, without a traceback.
    for q in AUTO:
        for c in result["questions"][q].get("checks", []):
            if not c["passed"] and sc.status == "graded":
                assert c["message"] and "Traceback" not in c["message"], c
                assert c["name"].split(",")[0] in visible(report)
    # An inert report: no script, no control or direction characters from the student.
    assert "<script" not in report.lower() and "\x1b" not in report and "\u202e" not in report
    assert "Traceback (most recent call last)" not in report


@pytest.mark.slow
@pytest.mark.parametrize("key", [k for k, s in SCENARIOS.items() if s.kind == "C"])
def test_hostile_never_gains(graded, key: str) -> None:
    result, _ = graded[key]
    for q in AUTO:
        assert result["questions"][q]["points"] <= FAST[q] + 1e-9
    assert result["points"] <= sum(FAST.values()) + 1e-9


@pytest.mark.slow
def test_a_list_return_is_reported_as_a_list(graded) -> None:
    result, report = graded["list_of_tensors"]
    messages = [c["message"] for c in result["questions"]["11.4.a"]["checks"]]
    assert all("returned a list of" in m and "tuple" not in m for m in messages), messages
    assert "returned a list of 6 (each a tensor of shape (3, 5)" in visible(report)


@pytest.mark.slow
def test_the_group_csv_holds_every_member(graded) -> None:
    csv, _ = graded["__csv__"]
    assert "Émilie du Châtelet" in csv and "Jean-Luc Picard" in csv and "Gauß" in csv
    # The 5000-digit id is a finding, not a crash: the submission has its rows.
    assert filename("huge_int_group") in csv


@pytest.mark.slow
@pytest.mark.parametrize("key", ["patch_torch", "patch_builtins"])
@pytest.mark.xfail(strict=True, reason="grader/grade.py `_defined` turns any unreadable first answer into "
                   "'the kernel did not answer' + kernel.died; the kernel answered, with forged data")
def test_a_forged_first_answer_is_not_called_a_dead_kernel(graded, key: str) -> None:
    result, _ = graded[key]
    assert "kernel.died" not in {f["code"] for f in result["flags"]}, explain(result)
