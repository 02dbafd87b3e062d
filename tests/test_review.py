"""Review pages and the scoring sheet."""
from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest
from test_scores import MEMBERS, fake_output, fake_result

from grader.checks.secret import load_secret
from grader.errors import UsageError
from grader.folder.outdir import OutDir
from grader.rubric import WRITTEN_IDS
from grader.tutors.privacy import pseudonym
from grader.tutors.review import suggested_score, write_review

HOPPER = "Hopper_2570001_Dijkstra_2570002"


def _label(folder: str) -> str:
    """The blind pages' name of a group (grader/tutors/privacy.py)."""
    return pseudonym(load_secret(), folder)


def _out(tmp_path: Path) -> Path:
    one = fake_result("Lovelace_2571234_Turing_2579876", MEMBERS[0],
                      answer="<img src=x onerror=alert(1)> A CNN uses local filters.")
    two = fake_result("Hopper_2570001_Dijkstra_2570002", MEMBERS[1])
    two["flags"] = [{"code": "words.over_limit", "question": "11.2.1", "message": "112 words (limit 100)"}]
    three = fake_result("Noether_2570003_Goedel_2570004", MEMBERS[2], status="rejected")
    return fake_output(tmp_path / "out", [one, two, three])


def test_suggested_score_rounds_to_a_quarter() -> None:
    assert suggested_score(0.75, 1, 3) == 0.25
    assert suggested_score(0.75, 2, 3) == 0.5
    assert suggested_score(0.5, 5, 6) == 0.5
    assert suggested_score(0.75, 5, 5) == 0.75
    assert suggested_score(0.75, 0, 0) is None


def test_pages_and_sheet(tmp_path: Path) -> None:
    out = _out(tmp_path)
    outcome = write_review(out)
    assert [p.name for p in outcome.pages] == [f"{q}.html" for q in WRITTEN_IDS]
    rows = list(csv.DictReader(io.StringIO(outcome.sheet.read_text())))
    assert outcome.sheet.name == "scores.csv" and len(rows) == 2 * len(WRITTEN_IDS)  # the rejected one is left out
    assert list(rows[0]) == ["folder", "submission", "question", "max_points", "suggested", "points", "comment"]
    row = next(r for r in rows if r["question"] == "11.2.1" and r["folder"] == _label(HOPPER))
    assert row["max_points"] == "0.75" and row["suggested"] == "0.25" and row["points"] == "" and row["comment"] == ""
    assert row["submission"] == ""  # blind: the sheet names the group by its pseudonym only
    page = (out / "review" / "11.2.1.html").read_text()
    assert "112 words (limit 100)" in page and "Model answer" in page and "suggested 0.25" in page
    assert _label("Lovelace_2571234_Turing_2579876") in page and _label(HOPPER) in page
    assert "Lovelace" not in page and "Hopper" not in page
    assert "onerror" not in page and "Not listed" in page


def test_split_by_question_and_group(tmp_path: Path) -> None:
    out = _out(tmp_path)
    outcome = write_review(out, questions=["11.2.1"], groups=[_label(HOPPER)])
    rows = list(csv.DictReader(io.StringIO(outcome.sheet.read_text())))
    assert [(r["folder"], r["question"]) for r in rows] == [(_label(HOPPER), "11.2.1")]
    assert outcome.sheet.name == f"scores_11.2.1_{_label(HOPPER).removeprefix('Group ')}.csv"
    with pytest.raises(UsageError, match="unknown written question"):
        write_review(out, questions=["11.4.a"])
    with pytest.raises(UsageError, match="no group 'Nobody'"):
        write_review(out, groups=["Nobody"])


def test_index_shows_per_question_progress(tmp_path: Path) -> None:
    out = _out(tmp_path)
    data = json.loads((out / "Hopper_2570001_Dijkstra_2570002" / "result.json").read_text())
    data["questions"]["11.2.1"].update(status="manual", points=0.5, comment="Good: $h_t = f(h_{t-1}, x_t)$",
                                       scored_by="ada")
    (out / "Hopper_2570001_Dijkstra_2570002" / "result.json").write_text(json.dumps(data))
    outcome = write_review(out)
    assert outcome.index == out / "review" / "index.html"
    index = outcome.index.read_text()
    rows = dict(re.findall(r'<a href="([\d.a-z]+)\.html">\1</a></td>\s*<td>[^<]*</td><td class="num">[\d.]+</td>\s*'
                           r'<td class="num">(\d+)</td>', index))
    assert rows["11.2.1"] == "1" and rows["11.1.1"] == "0" and len(rows) == len(WRITTEN_IDS)
    assert index.count('<span class="done">') == 0 and "2 graded submissions" in index
    assert f"{_label('Noether_2570003_Goedel_2570004')} (rejected)" in index and "Noether" not in index
    page = (out / "review" / "11.2.1.html").read_text()
    assert 'href="index.html"' in page and 'aria-current="page"' in page
    assert "<math" in page  # the tutor's comment rendered with its formula
    assert "tutor.html" not in page  # blind: no link into a folder named after the students


def test_a_split_review_writes_an_index_of_the_pages_it_has(tmp_path: Path) -> None:
    out = _out(tmp_path)
    write_review(out, questions=["11.3.3"])
    index = (out / "review" / "index.html").read_text()
    assert '<a href="11.3.3.html">' in index and '<a href="11.1.1.html">' not in index and "(no page yet)" in index


def test_model_answers_render_their_math(tmp_path: Path) -> None:
    out = _out(tmp_path)
    write_review(out, questions=["11.3.4a"])
    page = (out / "review" / "11.3.4a.html").read_text()
    model = page[page.index('<div class="model">'):page.index("</div>", page.index('<div class="model">'))]
    assert model.count("<math") >= 3 and "math-source" not in model and "<em>" not in model


def test_an_import_refreshes_the_review_index(tmp_path: Path) -> None:
    from test_scores import _write_sheet

    from grader.tutors.scores import import_sheet
    out = _out(tmp_path)
    outcome = write_review(out)
    rows = list(csv.DictReader(io.StringIO(outcome.sheet.read_text())))
    row = next(r for r in rows if r["question"] == "11.3.3" and r["folder"] == _label(HOPPER))
    sheet = _write_sheet(tmp_path / "filled.csv", [dict(row, points="0.5")])
    before = (out / "review" / "index.html").read_text()
    import_sheet(sheet, OutDir(out), tutor="ada")
    after = (out / "review" / "index.html").read_text()
    assert before != after and re.search(r'11\.3\.3</a></td>\s*<td>[^<]*</td><td class="num">[\d.]+</td>\s*'
                                         r'<td class="num">1</td>', after)
    assert outcome.sheet.read_text().count("\n") == len(rows) + 1  # the tutor's sheet is not rewritten
