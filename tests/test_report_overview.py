"""The top of the student's report (per-question overview, the next step, whom to contact), the
grouping of repeated messages, the self-check cells' outputs left out, the notice to a member no
tutor confirmed yet, and automatic points a tutor set by hand: from the result.json fixtures."""
from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

from grader.pages.report import render_report, render_tutor_report
from grader.result import SubmissionResult
from grader.rubric import load_rubric

FIXTURES = Path(__file__).resolve().parent / "files" / "reports"


def fixture(kind: str) -> dict[str, Any]:
    return copy.deepcopy(json.loads((FIXTURES / f"{kind}.json").read_text(encoding="utf-8")))


def _text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def test_the_report_opens_with_points_per_question_and_the_next_step() -> None:
    data = fixture("failing")
    data["contact"] = "Dr. Tutor, tutor@uni.example"
    html = render_report(SubmissionResult.from_json(data))
    overview, rest = html.index('id="overview"'), html.index("Programming (11.4)")
    step = html.index('id="next-step"')
    assert overview < step < rest
    table = _text(html[overview:step])
    for qid in data["questions"]:
        assert qid in table
    text = _text(html[step:rest])
    assert 'check("11.4.a")' in text and "grade check sheet11.ipynb" in text
    assert "To contest a grade: Dr. Tutor, tutor@uni.example" in text


def test_the_contact_comes_from_the_rubric() -> None:
    rubric = load_rubric()
    assert rubric.contact and "tutor" in rubric.contact


def test_points_so_far_only_while_something_is_pending() -> None:
    data = fixture("good")
    assert any(q.get("status") == "pending" for q in data["questions"].values())
    assert "Points so far" in render_report(SubmissionResult.from_json(data))
    for q in data["questions"].values():
        if q.get("status") == "pending":
            q.update(status="manual", points=0.25, scored_by="ada", comment="ok")
    html = render_report(SubmissionResult.from_json(data))
    assert "Points so far" not in html and "<th>Points</th>" in html


def test_identical_messages_are_one_row_with_a_count() -> None:
    data = fixture("good")
    q = data["questions"]["11.4.a"]
    for c in q["checks"]:
        c.update(passed=False, points=0.0, message="`rnn_forward` raised NotImplementedError: stub")
    n = len(q["checks"])
    assert n >= 2
    html = render_report(SubmissionResult.from_json(data))
    section = html[html.index('id="q-11-4-a"'):html.index('id="q-11-4-b"')]
    assert section.count("raised NotImplementedError") == 1
    assert f"{n} checks, the same outcome" in section and f"×{n}" in section


def test_the_self_checks_output_is_left_out_of_a_graded_report() -> None:
    data = fixture("good")
    data["cells"].append({"index": 99, "status": "ok", "seconds": 0.0, "error": None, "self_check": True,
                          "outputs": [{"kind": "text", "text": "The self-check is not available: put ..."}]})
    html = render_report(SubmissionResult.from_json(data))
    assert "The self-check is not available" not in html
    assert re.search(r"The output of the \d+ self-check cells? is left out", html)
    data["cells"][-1]["self_check"] = False  # the same text from another cell is the student's own
    assert "The self-check is not available" in render_report(SubmissionResult.from_json(data))


def test_an_unconfirmed_member_is_told_they_get_no_points_yet() -> None:
    data = fixture("good")
    data["group"] = [*data["group"], {"name": "Mallory Extra", "student_id": "2999999", "email": "m@uni.example"}]
    html = render_report(SubmissionResult.from_json(data))
    assert "Mallory Extra (2999999) gets no points yet" in _text(html)
    assert "gets no points yet" not in render_report(SubmissionResult.from_json(data), confirmed=["2999999"])
    assert "gets no points yet" not in render_report(SubmissionResult.from_json(fixture("good")))  # members the file name names


def test_automatic_points_set_by_a_tutor_show_the_reason_and_the_checks_points() -> None:
    data = fixture("failing")
    q = data["questions"]["11.4.a"]
    q.update(auto_points=q["points"], points=1.0, scored_by="ada", comment="W^T is accepted this term")
    student, tutor = _text(render_report(SubmissionResult.from_json(data))), _text(render_tutor_report(SubmissionResult.from_json(data)))
    assert "Points set by a tutor (the checks gave" in student and "W^T is accepted this term" in student
    assert "(ada)" not in student and "Points set by a tutor (ada)" in tutor


def test_the_contact_is_checked_where_the_rubric_is_read(tmp_path: Path) -> None:
    import pytest

    from grader.errors import RubricError
    from grader.resources import default_rubric
    text = default_rubric().read_text(encoding="utf-8")
    assert "\ncontact = " in text
    path = tmp_path / "rubric.toml"
    path.write_text(re.sub(r"\ncontact = .*\n", "\ncontact = \"" + "x" * 301 + "\"\n", text, count=1))
    with pytest.raises(RubricError) as err:
        load_rubric(path)
    assert "rubric.contact" in str(err.value) and "longer than 300" in str(err.value)
    path.write_text(re.sub(r"\ncontact = .*\n", "\ncontact = \"  Dr.   Who\"\n", text, count=1))
    assert load_rubric(path).contact == "Dr. Who"


def test_grading_marks_the_self_check_cells_and_the_code_after_an_answer() -> None:
    import nbformat

    from grader.grade import is_self_check, nearby_code
    from grader.resources import template_notebook
    nb = nbformat.read(str(template_notebook()), as_version=4)
    checks = [i for i, c in enumerate(nb.cells) if is_self_check(c)]
    assert len(checks) == 9 and all("check(" in nb.cells[i].source for i in checks[1:])
    answer = next(i for i, c in enumerate(nb.cells) if "answer-11.3.3" in c.metadata.get("tags", []))
    assert nearby_code(nb, answer) == ()  # the template has no code there
    nb.cells.insert(answer + 1, nbformat.v4.new_markdown_cell("My working:"))
    nb.cells.insert(answer + 2, nbformat.v4.new_code_cell("p = W @ [c1; c2]\nprint(p)"))
    nb.cells.insert(answer + 3, nbformat.v4.new_code_cell(""))
    assert nearby_code(nb, answer) == ({"index": answer + 2, "source": "p = W @ [c1; c2]\nprint(p)"},)
    assert nearby_code(nb, None) == ()
