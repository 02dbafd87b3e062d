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
    (("{ seed = 11402, T = 9", "{ seed = 804113, T = 9"), "questions.11.4.a.checks[0].public",
     "both public and hidden"),
    (("public = [\n  { seed = 11431", "public_seeds = [11431]\npublic = [\n  { seed = 11431"),
     "questions.11.4.d.checks[0].public_seeds", "replaced by `public`"),
    (("penalty = 1.0", "penalty = 1.5"), "contract_rules.penalty", "from 0.0"),
    (("false_fail_bound = ", "false_fail_bound = 1.5 # "), "recall.false_fail_bound", "a probability"),
    (("rtol = 1e-4\natol = 1e-5", "rtol = 1e-4\natol = 1e-5\ncontract_penalty = -0.5"),
     "questions.11.4.a.checks[0].contract_penalty", "to 1.0"),
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


# -------------------------------------------------------------------------------------------
# Public examples must show every setting a hidden case uses (issue 9, section 3).

TANH_ONLY = ('{ seed = 11403, T = 5, B = 4, D = 3, H = 3, activation = "sigmoid" },\n'
             '  { seed = 11404, T = 1, B = 2, D = 5, H = 4, activation = "sigmoid" },',
             '{ seed = 11403, T = 5, B = 4, D = 3, H = 3, activation = "tanh" },\n'
             '  { seed = 11404, T = 1, B = 2, D = 5, H = 4, activation = "tanh" },')


@pytest.mark.parametrize(("change", "where", "setting"), [
    (TANH_ONLY, "questions.11.4.a.checks[0].public", 'activation = "sigmoid"'),
    (('{ seed = 11404, T = 1,', '{ seed = 11404, T = 2,'), "questions.11.4.a.checks[0].public", "T = 1"),
    (('{ seed = 11402, T = 9, B = 1,', '{ seed = 11402, T = 9, B = 2,'), "questions.11.4.a.checks[0].public",
     "B = 1"),
    (('{ seed = 11415, H = 4, activation = "sigmoid" }', '{ seed = 11415, H = 4, activation = "tanh" }'),
     "questions.11.4.b.checks[0].public", 'activation = "sigmoid"'),
    (('spectral_norm = 3.0, loss = "squared" },\n]\ncases = [\n  { seed = 804311',
      'spectral_norm = 3.0, loss = "linear" },\n]\ncases = [\n  { seed = 804311'),
     "questions.11.4.b.checks[1].public", 'loss = "squared"'),
    (('{ seed = 11426, d = 5, leaves = 12, shape = "left_chain" }',
      '{ seed = 11426, d = 5, leaves = 12, shape = "random" }'),
     "questions.11.4.c.checks[1].public", 'shape = "left_chain"'),
    (('C = 4, k = 1 },\n  { seed = 11433', 'C = 4, k = 2 },\n  { seed = 11433'),
     "questions.11.4.d.checks[0].public", "k = 1"),
    (('C = 2, k = 9 },\n]\ncases', 'C = 2, k = 2 },\n]\ncases'),
     "questions.11.4.d.checks[0].public", "k >= T"),
    (('{ seed = 11431, T = 7, B = 4, D = 3, H = 5, C = 3, k = 3 }',
      '{ seed = 11431, T = 7, B = 4, D = 3, H = 5, C = 3, k = 7 }'),
     "questions.11.4.d.checks[0].public", "1 < k < T"),
])
def test_public_examples_must_cover_every_hidden_setting(tmp_path: Path, change: tuple[str, str],
                                                         where: str, setting: str) -> None:
    old, new = change
    assert TEXT.count(old) == 1, old
    path = _write(tmp_path, TEXT.replace(old, new))
    with pytest.raises(RubricError) as err:
        load_rubric(path)
    message = str(err.value)
    assert f"{path}: {where}:" in message
    assert re.search(rf"has no `\w+` example with {re.escape(setting)},", message), message
    assert "hidden case cases[" in message and "Add a public example with" in message


def test_the_rubric_covers_every_hidden_setting_and_every_choice() -> None:
    """The shipped rubric: every hidden setting shown in public; each activation, loss and tree
    shape, and the k regimes of tbptt, are exercised by the hidden cases."""
    from grader.rubric import case_settings
    rubric = load_rubric()
    for check in rubric.checks():
        hidden = {v for c in check.cases for v in case_settings(check.function, c.params).values()}
        public = {v for c in check.public_cases() for v in case_settings(check.function, c.params).values()}
        assert hidden <= public, (check.function, hidden - public)
    tb = next(c for c in rubric.checks() if c.function == "tbptt_grads")
    assert {case_settings("tbptt_grads", c.params)["k"] for c in tb.cases} == {"k = 1", "1 < k < T", "k >= T"}


def test_public_cases_have_their_own_parameters() -> None:
    rubric = load_rubric()
    rnn = next(c for c in rubric.checks() if c.function == "rnn_forward")
    assert [c.params["activation"] for c in rnn.public_cases()] == ["tanh", "tanh", "sigmoid", "sigmoid"]
    assert rnn.public_seeds == tuple(c.seed for c in rnn.public_cases())


def test_contract_penalty_default_global_and_per_check(tmp_path: Path) -> None:
    assert {c.contract_penalty for c in load_rubric().checks()} == {1.0}
    text = TEXT.replace("penalty = 1.0", "penalty = 0.5").replace(
        "rtol = 1e-4\natol = 1e-5", "rtol = 1e-4\natol = 1e-5\ncontract_penalty = 0.0", 1)
    rubric = load_rubric(_write(tmp_path, text))
    got = {c.function: c.contract_penalty for c in rubric.checks()}
    assert got["rnn_forward"] == 0.0 and got["lstm_cell"] == 0.5
