"""End-to-end grading of one submission: every flag of the grading issue from a fixture, and
the issue's 'done when' runs on the real reference solution and the blank template."""
from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest
from builders import FILES, GOOD_NAME, SOLUTION, TEMPLATE, notebook_bytes, quick_context, write_zip

from grader.checks import recall
from grader.grade import grade_submission
from grader.result import SubmissionResult
from grader.rubric import AUTO_IDS, WRITTEN_IDS

pytestmark = pytest.mark.slow

FLAGS = FILES / "flags"

# scenario file -> (name it is submitted under, flag code expected, question or None)
SCENARIOS = {
    "bad_name.ipynb": ("Lovelace-Turing.ipynb", "naming.pattern", None),
    "group_of_one.ipynb": ("Lovelace_2571234.ipynb", "naming.group_size", None),
    "name_mismatch.ipynb": ("Lovelace_2571234_Hopper_2579876.ipynb", "naming.mismatch", None),
    "no_group_cell.ipynb": (f"{GOOD_NAME}.ipynb", "group.missing", None),
    "bad_email.ipynb": (f"{GOOD_NAME}.ipynb", "group.email", None),
    "over_word_limit.ipynb": (f"{GOOD_NAME}.ipynb", "words.over_limit", "11.2.1"),
    "sentences_out_of_range.ipynb": (f"{GOOD_NAME}.ipynb", "sentences.out_of_range", "11.3.2"),
    "no_citation.ipynb": (f"{GOOD_NAME}.ipynb", "citation.missing", "11.2.2"),
    "missing_function.ipynb": (f"{GOOD_NAME}.ipynb", "function.missing", "11.4.c"),
    "blank_template.ipynb": (f"{GOOD_NAME}.ipynb", "answer.missing", "11.1.1"),
}


def _grade(tmp_path: Path, fixture: str, name: str, **limits: float):
    target = tmp_path / name
    shutil.copyfile(FLAGS / fixture, target)
    return grade_submission(target, quick_context(**limits))


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory):
    """(fixture, name) -> SubmissionResult at the default limits; each graded at most once, since
    several tests look at the same graded scenario (the flag and what else it costs)."""
    cache: dict[tuple[str, str], SubmissionResult] = {}

    def grade(fixture: str, name: str) -> SubmissionResult:
        if (fixture, name) not in cache:
            cache[fixture, name] = _grade(tmp_path_factory.mktemp("graded"), fixture, name)
        return cache[fixture, name]

    return grade


@pytest.mark.parametrize("fixture", sorted(SCENARIOS))
def test_each_flag_comes_from_its_fixture(graded, fixture: str) -> None:
    name, code, question = SCENARIOS[fixture]
    result = graded(fixture, name)
    assert result.status == "graded"
    hits = [f for f in result.flags if f.code == code]
    assert hits, [f.code for f in result.flags]
    assert hits[0].question == question
    assert hits[0].message
    data = result.to_json()
    assert data["flags"][0].keys() == {"code", "question", "message"}


def test_clean_submission_has_no_flag(tmp_path: Path) -> None:
    result = _grade(tmp_path, "passes_all.zip", f"{GOOD_NAME}.zip")
    assert result.status == "graded"
    assert result.flags == ()
    assert result.questions["11.4.a"].points == 1.0


def test_missing_function_keeps_other_points(graded) -> None:
    result = graded("missing_function.ipynb", f"{GOOD_NAME}.ipynb")
    lstm = [c for c in result.questions["11.4.c"].cases if c.function == "lstm_cell"]
    assert all(not c.passed and "no function named `lstm_cell`" in c.message for c in lstm)
    assert result.questions["11.4.c"].points == pytest.approx(0.5)  # tree_encode still counts
    assert result.questions["11.4.a"].points == 1.0


def test_notebook_timeout_stops_the_rest(tmp_path: Path) -> None:
    result = _grade(tmp_path, "notebook_timeout.ipynb", f"{GOOD_NAME}.ipynb", notebook_timeout=5)
    assert "notebook.timeout" in {f.code for f in result.flags}
    assert result.status == "graded"
    assert any(c["status"] == "not_run" for c in result.cells)


def test_blank_template_scores_zero_with_every_answer_missing(graded) -> None:
    result = graded("blank_template.ipynb", f"{GOOD_NAME}.ipynb")
    assert result.status == "graded"
    assert result.points == 0.0
    missing = {f.question for f in result.flags if f.code == "answer.missing"}
    assert missing == set(WRITTEN_IDS)
    for qid in AUTO_IDS:
        for case in result.questions[qid].cases:
            assert "NotImplementedError" in case.message
            assert "Traceback" not in case.message


def test_reference_solution_gets_full_automatic_points(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real solution, train_recall included, packed in a zip under a valid name.

    The recall experiment runs at a short length (seq_len 15, not the rubric's 60): this test is
    about the whole solution going through grading with every point; that the reference's LSTM
    passes at the rubric's length and its RNN does not is test_reference_recall's (in-process,
    the same train_recall), and that a correct train_recall passes when graded at the rubric's
    length is test_recall.py's (own random stream)."""
    path = write_zip(tmp_path / f"{GOOD_NAME}.zip", {"sheet11.ipynb": SOLUTION.read_bytes()})
    ctx = quick_context()
    short = dataclasses.replace(ctx.rubric, recall=dataclasses.replace(ctx.rubric.recall, seq_len=15))
    keys: list[bytes | None] = []
    draw = recall.draw_permutation
    monkeypatch.setattr(recall, "draw_permutation", lambda n, key=None: keys.append(key) or draw(n, key))
    result = grade_submission(path, dataclasses.replace(ctx, rubric=short))
    data = result.to_json()
    assert data["status"] == "graded"
    # The relabelling is keyed by the course secret and these bytes, so a re-grade trains alike.
    assert ctx.secret is not None
    assert keys == [recall.permutation_key(ctx.secret, data["sha256"])]
    assert data["flags"] == []
    assert sum(data["questions"][q]["points"] for q in AUTO_IDS) == pytest.approx(4.0)
    assert all(data["questions"][q]["status"] == "pending" for q in WRITTEN_IDS)
    assert data["recall"]["lstm_accuracy"] >= short.recall.threshold
    assert data["recall"]["rnn_run"] is True and 0.0 <= data["recall"]["rnn_accuracy"] <= 1.0


def test_template_itself_is_graded_not_crashed(tmp_path: Path) -> None:
    target = tmp_path / f"{GOOD_NAME}.ipynb"
    shutil.copyfile(TEMPLATE, target)
    result = grade_submission(target, quick_context())
    assert result.status == "graded"
    assert result.points == 0.0
    assert not result.tutor_detail


def test_submission_is_not_changed(tmp_path: Path) -> None:
    path = write_zip(tmp_path / f"{GOOD_NAME}.zip", {"a/sheet11.ipynb": notebook_bytes(
        __import__("builders").solution())})
    before = path.read_bytes()
    grade_submission(path, quick_context())
    assert path.read_bytes() == before


def test_kernel_that_stops_answering_is_said_not_called_missing(tmp_path: Path, monkeypatch) -> None:
    import grader.grade as grade_mod
    monkeypatch.setattr(grade_mod, "_defined", lambda bridge, rubric: None)
    result = _grade(tmp_path, "passes_all.zip", f"{GOOD_NAME}.zip")
    codes = [f.code for f in result.flags]
    assert "kernel.died" in codes and "function.missing" not in codes
    case = result.questions["11.4.a"].cases[0]
    assert not case.passed and "did not answer" in case.message
