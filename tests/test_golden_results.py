"""result.json is the product a course keeps: a few fixtures graded end to end are compared with
golden files in tests/files/golden/, key for key. Timings and the machine's sandbox note are left
out, floats are kept to four significant digits; everything else (points, checks, messages, mistakes, probe findings, flags, answers) must be
byte-stable. After an intended change: pytest tests/test_golden_results.py --update-goldens, then
review the diff."""
from __future__ import annotations

import json
from typing import Any

import pytest
from builders import FILES, quick_context

from grader.grade import grade_submission

pytestmark = pytest.mark.slow

GOLDEN = FILES / "golden"
#: scenario -> fixture notebook: a wrong function with a named mistake, rule flags on the
#: written answers, and a function that is missing.
CASES = {
    "mistake_w_transposed": FILES / "mistakes" / "rnn_W_transposed.ipynb",
    "flags_over_word_limit": FILES / "flags" / "over_word_limit.ipynb",
    "flags_missing_function": FILES / "flags" / "missing_function.ipynb",
}
# rubric_sha256 moves with every edit of the rubric file, comments included; the rubric has its own tests.
# The manifest's versions and sandbox are the machine's (grader/batch/replay.py); its hashes and secret id stay.
VOLATILE = {"seconds", "sandbox_note", "rubric_sha256", "lstm_seconds", "rnn_seconds", "cpu_seconds", "wall_seconds",
            "grader_version", "torch_version", "python_version", "sandbox"}


def _stable(value: Any) -> Any:
    """The result without what depends on the machine or the clock."""
    if isinstance(value, dict):
        return {k: _stable(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_stable(v) for v in value]
    if isinstance(value, float):
        # float32 work in the kernel differs in its last bits between processors (SIMD paths);
        # four significant digits keep every difference a grade or a message shows.
        return float(f"{value:.4g}")
    return value


@pytest.fixture(scope="module")
def ctx():
    return quick_context(cell_timeout=60, notebook_timeout=300)


@pytest.mark.parametrize("name", sorted(CASES))
def test_result_json_matches_its_golden_file(name: str, ctx, update_goldens: bool) -> None:
    result = grade_submission(CASES[name], ctx)
    text = json.dumps(_stable(result.to_json()), indent=1, ensure_ascii=False, sort_keys=True) + "\n"
    path = GOLDEN / f"{name}.result.json"
    if update_goldens:
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"{path} is missing: run pytest tests/test_golden_results.py --update-goldens"
    golden = path.read_text(encoding="utf-8")
    if text != golden:
        changed = [k for k in json.loads(golden) if json.loads(golden)[k] != json.loads(text).get(k)]
        pytest.fail(f"{name}: result.json differs from {path.name} in {changed}; if intended: "
                    "pytest tests/test_golden_results.py --update-goldens")


def test_the_comparison_sees_a_changed_point() -> None:
    # The check above must be able to fail on what matters: points are not volatile.
    a = {"points": 1.0, "seconds": 3.0, "questions": {"11.4.a": {"points": 1.0, "seconds": 1}}}
    b = {"points": 0.75, "seconds": 9.0, "questions": {"11.4.a": {"points": 1.0, "seconds": 2}}}
    assert _stable(a) != _stable(b)
    assert _stable({**a, "points": 0.75}) == _stable(b) | {"questions": _stable(a)["questions"]}
