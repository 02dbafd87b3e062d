"""The function checks of 11.4 end to end: notebooks in, points and messages out.

Fixtures (tests/files/styles, tests/files/mistakes) are made by tests/make_function_fixtures.py
from the fast reference solution; ``test_fixtures_are_up_to_date`` fails when they are stale.

- Correct solutions in other styles (numpy in and out, float64 inside, loops over batch and
  time, einsum, autograd in several ways) get full points (contract section 3).
- Each mistake students make gets less than full points and a message that names it, and the
  questions that do not use the broken function keep their points.
- A wrong shape, an int dtype, ``None`` and an exception each get a message that says what came
  back and what was expected, without the grader's own traceback.

Every notebook is graded once per test module (``graded``); the tests only read the results.
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch
from builders import GOOD_NAME, quick_context
from make_function_fixtures import FUNCTIONS, MISTAKES, MISTAKES_DIR, STYLES, STYLES_DIR, build_all

import reference
from grader.checks.cases import make_inputs
from grader.checks.compare import to_numpy
from grader.checks.mistakes import mistakes_for
from grader.grade import grade_submission
from grader.result import CaseResult, SubmissionResult
from grader.rubric import load_rubric

AUTO = ("11.4.a", "11.4.b", "11.4.c", "11.4.d")
FULL = {"11.4.a": 1.0, "11.4.b": 1.0, "11.4.c": 1.0, "11.4.d": 0.5}  # train_recall is a stub
# Questions whose reference code calls a student's function from the kernel's globals: the
# solution's tbptt_grads runs the notebook's rnn_forward, so a broken rnn_forward (other than in
# its sigmoid branch) breaks 11.4.d as well.
USED_BY = {"rnn_forward": {"11.4.d"}}
RETURN_KINDS = {"rnn_wrong_shape", "grad_norms_int_dtype", "tree_returns_none", "lstm_raises"}
NAMED = sorted(set(MISTAKES) - RETURN_KINDS)


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory):
    """name -> SubmissionResult; each fixture notebook is graded at most once."""
    ctx = quick_context()
    cache: dict[str, SubmissionResult] = {}

    def grade(path: Path) -> SubmissionResult:
        if path.stem not in cache:
            folder = tmp_path_factory.mktemp(path.stem)
            target = folder / f"{GOOD_NAME}.ipynb"
            shutil.copyfile(path, target)
            cache[path.stem] = grade_submission(target, ctx)
        return cache[path.stem]

    return grade


def _cases(result: SubmissionResult, function: str) -> list[CaseResult]:
    return [c for q in AUTO for c in result.questions[q].cases if c.function == function]


def _explain(result: SubmissionResult) -> str:
    lines = [f"status={result.status} message={result.message!r} flags={[f.code for f in result.flags]}"]
    for q in AUTO:
        lines.append(f"{q}: {result.questions[q].points}")
        lines += [f"    {c.name}: {c.message}" for c in result.questions[q].cases if not c.passed]
    return "\n".join(lines)


def _assert_graded(result: SubmissionResult) -> None:
    assert result.status == "graded", _explain(result) + "\n" + result.tutor_detail
    assert not [f for f in result.flags if f.code == "function.missing"], _explain(result)


# ------------------------------------------------------------------------------------------------
# 1. Correct solutions in other styles


@pytest.mark.slow
@pytest.mark.parametrize("style", sorted(STYLES))
def test_other_styles_get_full_points(graded, style: str) -> None:
    result = graded(STYLES_DIR / f"{style}.ipynb")
    _assert_graded(result)
    for qid, points in FULL.items():
        assert result.questions[qid].points == pytest.approx(points), _explain(result)
    recall = [c for c in result.questions["11.4.d"].cases if c.function == "train_recall"]
    assert len(recall) == 1 and not recall[0].passed  # the stub, and nothing else, lost points


RETURNS = {  # what each style's functions hand back, so a style cannot quietly be the reference
    "styles_numpy": lambda v: isinstance(v, np.ndarray) and v.dtype in (np.float32, np.float64),
    "styles_float64_loops": lambda v: isinstance(v, torch.Tensor) and v.dtype == torch.float64,
    "styles_einsum": lambda v: isinstance(v, torch.Tensor) and v.dtype == torch.float32,
}


def _leaves(value):
    if isinstance(value, dict):
        return [value[k] for k in sorted(value)]
    return list(value) if isinstance(value, tuple) else [value]


@pytest.mark.parametrize("style", sorted(STYLES))
def test_styles_match_the_reference_in_process(style: str) -> None:
    """Fast: run the style's cells here on every hidden case; values match, return kinds differ."""
    namespace: dict = {}
    for function in FUNCTIONS:
        exec(compile(STYLES[style][function], f"<{style}:{function}>", "exec"), namespace)
    rubric = load_rubric()
    for check in rubric.checks():
        for case in check.cases:
            inputs = make_inputs(check.function, case.seed, case.params)
            expected = to_numpy(getattr(reference, check.function)(**inputs))
            got = namespace[check.function](**make_inputs(check.function, case.seed, case.params))
            assert all(RETURNS[style](v) for v in _leaves(got)), (check.function, type(got))
            for e, g in zip(_leaves(expected), _leaves(to_numpy(got))):
                np.testing.assert_allclose(g, e, rtol=check.rtol, atol=check.atol,
                                           err_msg=f"{style} {check.function} seed {case.seed}")


# ------------------------------------------------------------------------------------------------
# 2. Named mistakes


def test_every_named_scenario_has_a_mistake_description() -> None:
    """The phrases the tests look for are in grader/checks/mistakes.py's wording."""
    for name in NAMED:
        scenario = MISTAKES[name]
        descriptions = [m.description for m in mistakes_for(scenario.function)]
        assert any(scenario.phrase in d for d in descriptions), (name, scenario.phrase)


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMED)
def test_mistake_is_named(graded, name: str) -> None:
    scenario = MISTAKES[name]
    result = graded(MISTAKES_DIR / f"{name}.ipynb")
    _assert_graded(result)
    question = result.questions[scenario.question]
    assert question.points < FULL[scenario.question], _explain(result)

    cases = _cases(result, scenario.function)
    failed = [c for c in cases if not c.passed]
    assert failed, _explain(result)
    named = [c for c in failed if "your output matches" in c.message and scenario.phrase in c.message]
    assert named, f"no failed case of {scenario.function} names {scenario.phrase!r}\n" + _explain(result)
    for case in named:
        assert f"`{scenario.function}`" in case.message
        assert any(scenario.phrase in m for m in case.mistakes)

    # Everything else in the notebook is the reference: its cases pass, its questions are full.
    others = [c for q in AUTO for c in result.questions[q].cases
              if c.function not in (scenario.function, "train_recall")
              and q not in USED_BY.get(scenario.function, set())]
    assert others and all(c.passed for c in others), _explain(result)
    for qid in AUTO:
        if qid != scenario.question and qid not in USED_BY.get(scenario.function, set()):
            assert result.questions[qid].points == pytest.approx(FULL[qid]), _explain(result)


# ------------------------------------------------------------------------------------------------
# 3. Wrong kinds of return value: the message says what came back and what was expected.


def _no_grader_traceback(case: CaseResult) -> None:
    assert "Traceback" not in case.message
    assert "grader/" not in case.message and "bridge.py" not in case.message
    assert 'File "' not in case.message


def _failed_only(result: SubmissionResult, function: str) -> list[CaseResult]:
    cases = _cases(result, function)
    assert cases and all(not c.passed and c.points == 0 for c in cases), _explain(result)
    return cases


HIDDEN_SAYS = "on this hidden case (`grade check` runs the public examples and shows it in full)"


@pytest.mark.slow
def test_wrong_shape_says_both_shapes(graded) -> None:
    result = graded(MISTAKES_DIR / "rnn_wrong_shape.ipynb")
    _assert_graded(result)
    assert result.questions["11.4.a"].points == 0.0
    cases = _failed_only(result, "rnn_forward")
    for case in cases:
        shapes = dict(re.findall(r"(\w+) \(([\d, ]+)\)", case.shapes))
        T, B, _ = (int(s) for s in shapes["x"].split(","))
        Hd = int(shapes["W"].split(",")[0])
        # a hidden case: the expected shape, not the returned one (a shape can carry an input out)
        assert case.message.startswith(f"returned a tensor of another shape; expected shape {(T, B, Hd)}"), \
            case.message
        assert case.message.endswith(HIDDEN_SAYS) and str((T, Hd, B)) not in case.message, case.message
        _no_grader_traceback(case)
    assert result.questions["11.4.b"].points == 1.0 and result.questions["11.4.c"].points == 1.0


@pytest.mark.slow
def test_int_dtype_says_dtype_and_expected_float(graded) -> None:
    result = graded(MISTAKES_DIR / "grad_norms_int_dtype.ipynb")
    _assert_graded(result)
    assert result.questions["11.4.b"].points == pytest.approx(1.0 - 0.375)
    for case in _failed_only(result, "hidden_grad_norms"):
        # a dtype is one of a few names: said on a hidden case too
        assert case.message == ("returned dtype torch.int64; expected a floating-point tensor (torch.float32) "
                                + HIDDEN_SAYS), case.message
        _no_grader_traceback(case)
    for qid in ("11.4.a", "11.4.c", "11.4.d"):
        assert result.questions[qid].points == pytest.approx(FULL[qid])


@pytest.mark.slow
def test_none_says_none_and_expected_tensor(graded) -> None:
    result = graded(MISTAKES_DIR / "tree_returns_none.ipynb")
    _assert_graded(result)
    assert result.questions["11.4.c"].points == pytest.approx(0.5)
    for case in _failed_only(result, "tree_encode"):
        d = int(re.search(r"W \((\d+), ", case.shapes).group(1))
        assert d and case.message == "returned None; expected a tensor " + HIDDEN_SAYS, case.message
        _no_grader_traceback(case)
    for qid in ("11.4.a", "11.4.b", "11.4.d"):
        assert result.questions[qid].points == pytest.approx(FULL[qid])


@pytest.mark.slow
def test_exception_says_what_was_raised_and_expected(graded) -> None:
    result = graded(MISTAKES_DIR / "lstm_raises.ipynb")
    _assert_graded(result)
    assert result.questions["11.4.c"].points == pytest.approx(0.5)
    for case in _failed_only(result, "lstm_cell"):
        # the exception's class, not its message: it may quote the hidden inputs
        assert case.message.startswith("`lstm_cell` raised RuntimeError on this hidden case"), case.message
        assert "mat1 and mat2" not in case.message, case.message
        _no_grader_traceback(case)
    for qid in ("11.4.a", "11.4.b", "11.4.d"):
        assert result.questions[qid].points == pytest.approx(FULL[qid])


# ------------------------------------------------------------------------------------------------
# 4. The committed fixtures are what the generator makes.


def _normalised(text: str) -> dict:
    nb = nbformat.reads(text, as_version=4)
    for cell in nb.cells:
        cell.pop("id", None)
    return nb


def test_fixtures_are_up_to_date() -> None:
    built = build_all()
    on_disk = set(STYLES_DIR.glob("*.ipynb")) | set(MISTAKES_DIR.glob("*.ipynb"))
    assert on_disk == set(built), "run: python tests/make_function_fixtures.py"
    for path, nb in built.items():
        assert _normalised(path.read_text(encoding="utf-8")) == _normalised(nbformat.writes(nb)), (
            f"{path.name} is stale; run: python tests/make_function_fixtures.py")


# ------------------------------------------------------------------------------------------------
# 5. The rules of contract §3 (inputs left as found; the same result twice): tests/files/contract,
#    made by tests/make_contract_fixtures.py.

from make_contract_fixtures import BREAKS, CONTRACT_DIR  # noqa: E402
from make_contract_fixtures import build_all as build_contract  # noqa: E402

RULE_INPUTS = 'breaks the rule "a function leaves its arguments as it found them"'


def test_contract_fixtures_are_up_to_date() -> None:
    built = build_contract()
    assert set(CONTRACT_DIR.glob("*.ipynb")) == set(built), "run: python tests/make_contract_fixtures.py"
    for path, nb in built.items():
        assert _normalised(path.read_text(encoding="utf-8")) == _normalised(nbformat.writes(nb)), (
            f"{path.name} is stale; run: python tests/make_contract_fixtures.py")


def _in_process(path: Path, tmp_path: Path) -> dict[str, list[CaseResult]]:
    """Fast: the fixture's code cells run in this process, the grader's hidden cases go through the
    real bridge code (files, JSON, .npy) into them; function -> its case results."""
    from test_bridge import SECRET, FakeSession

    from grader.checks.bridge import Bridge
    from grader.grade import _run_check
    nb = nbformat.read(str(path), as_version=4)
    namespace: dict = {"__name__": "__main__"}
    for cell in nb.cells:
        if cell.cell_type == "code" and "GROUP" not in cell.source:
            exec(compile(cell.source, cell.get("id", "cell"), "exec"), namespace)
    (tmp_path / "calls").mkdir()
    bridge = Bridge(FakeSession(tmp_path / "calls", namespace))  # type: ignore[arg-type]
    rubric = load_rubric()
    return {check.function: _run_check(bridge, check, True, rubric, public=False, secret=SECRET)
            for check in rubric.checks()}


@pytest.mark.parametrize("name", sorted(BREAKS))
def test_a_broken_rule_costs_the_cases_and_is_named_in_process(name: str, tmp_path: Path) -> None:
    breaks = BREAKS[name]
    results = _in_process(CONTRACT_DIR / f"{name}.ipynb", tmp_path)
    for function, cases in results.items():
        if function == breaks.function:
            assert all(not c.passed and c.points == 0.0 for c in cases), [c.message for c in cases]
            for c in cases:
                for phrase in breaks.said:
                    assert phrase in c.message, c.message
        else:
            assert all(c.passed for c in cases), (function, [c.message for c in cases if not c.passed])


def test_unusual_correct_styles_keep_the_rules_in_process(tmp_path: Path) -> None:
    results = _in_process(CONTRACT_DIR / "keeps_unusual_styles.ipynb", tmp_path)
    for function, cases in results.items():
        assert all(c.passed for c in cases), (function, [c.message for c in cases if not c.passed])


@pytest.mark.slow
@pytest.mark.parametrize("name", ["breaks_tbptt_requires_grad_on_callers_params",
                                  "breaks_tbptt_zeroes_callers_params"])
def test_an_input_changing_tbptt_loses_its_points_with_the_rule_named(graded, name: str) -> None:
    """Issue 9 §2 and issue 10: each gets 0 of 0.5 for tbptt_grads in a real sandboxed kernel;
    the report names the rule and the input; every other function keeps its points."""
    breaks = BREAKS[name]
    result = graded(CONTRACT_DIR / f"{name}.ipynb")
    _assert_graded(result)
    cases = _failed_only(result, "tbptt_grads")
    for case in cases:
        assert RULE_INPUTS in case.message, case.message
        for phrase in breaks.said:
            assert phrase in case.message, case.message
        _no_grader_traceback(case)
    assert result.questions["11.4.d"].points == 0.0, _explain(result)
    for qid in ("11.4.a", "11.4.b", "11.4.c"):
        assert result.questions[qid].points == pytest.approx(FULL[qid]), _explain(result)


@pytest.mark.slow
def test_unusual_correct_styles_get_full_points_in_a_kernel(graded) -> None:
    result = graded(CONTRACT_DIR / "keeps_unusual_styles.ipynb")
    _assert_graded(result)
    for qid in AUTO:
        assert result.questions[qid].points == pytest.approx(FULL[qid]), _explain(result)
