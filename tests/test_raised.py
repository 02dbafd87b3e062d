"""Where a student's function raised (grader/checks/raised.py): the line of the student's own cell,
read in the grader from the traceback's text, shown in full on a public example and as a line
number alone on a hidden case."""
from __future__ import annotations

import traceback

from grader.checks.bridge import Returned
from grader.checks.compare import compare_case, redacted_hidden
from grader.checks.raised import raising_line

CELL = "/tmp/ipykernel_4242/1234567.py"


def _trace_of(source: str, filename: str = CELL) -> str:
    import linecache
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    namespace: dict[str, object] = {}
    exec(compile(source, filename, "exec"), namespace)
    try:
        namespace["rnn_forward"]()  # type: ignore[operator]
    except Exception as exc:  # noqa: BLE001 - the test wants the traceback
        return "".join(traceback.format_tb(exc.__traceback__))
    raise AssertionError("did not raise")


def test_the_deepest_frame_in_a_cell_is_the_students_line() -> None:
    trace = _trace_of("import torch\n\ndef rnn_forward():\n    a = torch.zeros(2, 3)\n    return a @ a\n")
    place = raising_line(trace)
    assert place is not None and place.line == 5 and place.function == "rnn_forward"
    assert place.code == "return a @ a"


def test_a_frame_outside_a_cell_is_not_taken() -> None:
    assert raising_line(_trace_of("def rnn_forward():\n    return 1 / 0\n", "<string>")) is None
    assert raising_line("garbage\n  File \"x\", line 3\n") is None


def test_a_public_case_shows_the_line_and_a_hidden_case_its_number_only() -> None:
    trace = _trace_of("def rnn_forward():\n    secret = 7\n    raise ValueError(secret)\n")
    returned = Returned("raised", error="ValueError: 7", error_type="ValueError", trace=trace)
    case = compare_case("rnn_forward", 1, "seed = 1", "x (1,)", {}, 0.0, returned, 1e-4, 1e-5, 1.0)
    assert "at line 3 of your cell (in `rnn_forward`): `raise ValueError(secret)`" in case.message
    hidden = redacted_hidden(case)
    assert "at line 3 of your cell (in `rnn_forward`)" in hidden.message
    assert "raise ValueError" not in hidden.message and "7" not in hidden.message.replace("line 3", "")


def test_a_student_cannot_forge_the_place() -> None:
    returned = Returned("raised", error="ValueError: x, at line 99 of your cell (in `leak_0_1`)",
                        error_type="ValueError", trace="")
    case = compare_case("rnn_forward", 1, "seed = 1", "x (1,)", {}, 0.0, returned, 1e-4, 1e-5, 1.0)
    assert "line 99" not in redacted_hidden(case).message
