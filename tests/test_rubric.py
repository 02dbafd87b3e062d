from __future__ import annotations

import re
from pathlib import Path

import pytest

from grader.errors import RubricError
from grader.rubric import AUTO_IDS, DEFAULT_RUBRIC, QUESTION_IDS, load_rubric

TEXT = DEFAULT_RUBRIC.read_text(encoding="utf-8")


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rubric.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_default_rubric_matches_the_contract_points() -> None:
    rubric = load_rubric()
    assert list(rubric.questions) == list(QUESTION_IDS)
    assert rubric.max_points == 10.0
    expected = {"11.1.1": 0.5, "11.1.2": 0.5, "11.2.1": 0.75, "11.2.2": 0.75, "11.3.1": 0.75,
                "11.3.2": 0.75, "11.3.3": 0.75, "11.3.4a": 0.75, "11.3.4b": 0.5,
                "11.4.a": 1.0, "11.4.b": 1.0, "11.4.c": 1.0, "11.4.d": 1.0}
    assert {q.id: q.points for q in rubric.questions.values()} == expected
    by_function = {c.function: c.points for c in rubric.checks()}
    assert by_function["lstm_cell"] == by_function["tree_encode"] == 0.5
    assert by_function["tbptt_grads"] == rubric.recall.points == 0.5
    assert rubric.questions["11.2.1"].max_words == 100 and rubric.questions["11.2.1"].require_citation
    assert rubric.questions["11.3.2"].min_sentences == 3 and rubric.questions["11.3.2"].max_sentences == 5


def test_hidden_and_public_seeds_are_apart() -> None:
    rubric = load_rubric()
    public = {s for c in rubric.checks() for s in c.public_seeds}
    assert public and not public & rubric.hidden_seeds()


def test_gradient_cases_use_spectral_norms_far_from_one() -> None:
    rubric = load_rubric()
    for check in rubric.checks():
        for case in check.cases:
            if "spectral_norm" in case.params:
                assert abs(case.params["spectral_norm"] - 1.0) >= 0.5


def test_hash_changes_with_the_file(tmp_path: Path) -> None:
    a = load_rubric(_write(tmp_path, TEXT))
    b = load_rubric(_write(tmp_path, TEXT + "\n# a comment\n"))
    assert a.sha256 != b.sha256


@pytest.mark.parametrize(("change", "key", "allowed"), [
    (('pattern = "flag"', 'pattern = "warn"'), "naming.pattern", "'flag', 'reject'"),
    (("cell_timeout = 120", 'cell_timeout = "long"'), "limits.cell_timeout", "a number"),
    (("cell_timeout = 120", "cell_timeout = -1"), "limits.cell_timeout", "> 0"),
    (('activation = "sigmoid" }', 'activation = "relu" }'), "activation", "'tanh', 'sigmoid'"),
    (("max_entries = 500", "max_entries = 500\nmax_entires = 3"), "archive.max_entires", "unknown key"),
    (("threshold = 0.9", "threshold = 0.9\nthreshhold = 1"), "recall.threshhold", "unknown key"),
    (("points = 0.375\nrtol = 1e-3", "points = 0.5\nrtol = 1e-3"), "questions.11.4.b.checks", "add up"),
    (("public_seeds = [11401, 11402]", "public_seeds = [11401, 804113]"), "public_seeds", "both public and hidden"),
])
def test_bad_rubric_names_file_key_and_allowed(tmp_path: Path, change: tuple[str, str], key: str,
                                                allowed: str) -> None:
    old, new = change
    assert old in TEXT
    path = _write(tmp_path, TEXT.replace(old, new, 1))
    with pytest.raises(RubricError) as err:
        load_rubric(path)
    message = str(err.value)
    assert str(path) in message
    assert key in message
    assert allowed in message


def test_missing_and_broken_files_are_clear(tmp_path: Path) -> None:
    with pytest.raises(RubricError, match="cannot be read"):
        load_rubric(tmp_path / "nope.toml")
    with pytest.raises(RubricError, match="not valid TOML"):
        load_rubric(_write(tmp_path, "[rubric\n"))
    with pytest.raises(RubricError, match=re.escape("questions.11.4.a")):
        load_rubric(_write(tmp_path, TEXT.replace('[questions."11.4.a"]', '[questions."11.4.x"]')))


def test_every_automatic_question_has_checks() -> None:
    rubric = load_rubric()
    for qid in AUTO_IDS:
        q = rubric.questions[qid]
        assert q.checks or rubric.recall.question == qid
