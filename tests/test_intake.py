"""Bad input: archives and notebooks that must be refused (or accepted) before any kernel runs.

The fixtures are in ``tests/files/hostile/`` (written by ``tests/make_hostile_fixtures.py``).
Most tests here read a submission with :func:`grader.submission.intake.read_submission` and
:func:`grader.submission.notebook.parse_notebook` only; those that grade stop before a kernel starts.
The one that renders a report (``test_script_in_answers_is_inert_in_the_report``) starts a kernel.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import re
import time
import zipfile
from pathlib import Path

import pytest
from builders import GOOD_NAME, notebook_bytes, slowness, solution, write_zip
from make_hostile_fixtures import FIXTURES, fixture

from grader.grade import grade_submission
from grader.rubric import load_rubric
from grader.submission.intake import read_submission
from grader.submission.notebook import NotebookInvalid, parse_notebook

RUBRIC = load_rubric()


def read(path: Path, max_notebook_mb: float | None = None, **archive: float):
    limits = dataclasses.replace(RUBRIC.archive, **archive) if archive else RUBRIC.archive
    return read_submission(path, limits, RUBRIC.limits.max_notebook_mb if max_notebook_mb is None else max_notebook_mb)


@pytest.fixture
def no_zip_reads(monkeypatch):
    """Fail the test if anything is read out of a zip (only its headers may be looked at)."""
    opened: list[str] = []
    original_open = zipfile.ZipFile.open

    def refuse(self, name, *args, **kwargs):
        if (args[:1] or [kwargs.get("mode", "r")])[0] == "w":   # writing a test zip is fine
            return original_open(self, name, *args, **kwargs)
        opened.append(getattr(name, "filename", name))
        raise AssertionError(f"an entry was read out of a zip that should be refused: {name}")

    monkeypatch.setattr(zipfile.ZipFile, "open", refuse)
    monkeypatch.setattr(zipfile.ZipFile, "read", refuse)
    monkeypatch.setattr(zipfile.ZipFile, "extract", refuse)
    monkeypatch.setattr(zipfile.ZipFile, "extractall", refuse)
    return opened


def test_fixtures_exist():
    missing = [fx.filename for fx in FIXTURES.values() if not fx.path.exists()]
    assert not missing, "run `python tests/make_hostile_fixtures.py`"


# -- archives refused from their headers --------------------------------------------------------
@pytest.mark.parametrize("key, reason", [
    ("zip_dotdot", "'../evil.py' points outside"),
    ("zip_absolute", "'/tmp/evil.py' points outside"),
    ("zip_symlink", "symbolic link"),
    ("zip_bomb", "zip bomb"),
    ("zip_huge_total", "unpacks to more than 300 MB"),
    ("zip_nested", "another archive"),
    ("zip_non_utf8", "not UTF-8"),
])
def test_unsafe_zip_is_refused_before_anything_is_read(key, reason, no_zip_reads):
    t0 = time.monotonic()
    intake = read(fixture(key))
    assert intake.problem_code == "archive.unsafe"
    assert reason in intake.problem
    assert intake.notebook is None
    assert no_zip_reads == []
    assert time.monotonic() - t0 < 1.0 * slowness()


@pytest.mark.parametrize("key", ["zip_dotdot", "zip_symlink", "zip_bomb", "zip_nested"])
def test_unsafe_zip_is_rejected_with_every_question_at_zero(key, tmp_path):
    ctx_rubric = RUBRIC
    from builders import quick_context
    result = grade_submission(fixture(key), quick_context())
    data = result.to_json()
    assert data["status"] == "rejected"
    assert data["points"] == 0
    assert [f["code"] for f in data["flags"]] == ["archive.unsafe"]
    assert data["message"]
    assert set(data["questions"]) == set(ctx_rubric.questions)
    assert all(q["points"] == 0 for q in data["questions"].values())


def test_zip_bomb_ratio_and_total_from_headers(tmp_path, no_zip_reads):
    # A ratio just under the limit passes; the sum of many entries over the total does not.
    many = write_zip(tmp_path / f"{GOOD_NAME}.zip", {f"part{i}.bin": bytes(400_000) for i in range(5)})
    intake = read(many, max_total_mb=1.5)
    assert intake.problem_code == "archive.unsafe" and "more than 1.5 MB" in intake.problem


def test_many_entries_refused(tmp_path, no_zip_reads):
    path = write_zip(tmp_path / f"{GOOD_NAME}.zip", {f"f{i}.txt": b"x" for i in range(30)})
    intake = read(path, max_entries=20)
    assert intake.problem_code == "archive.unsafe" and "30 entries" in intake.problem


def test_deep_folders_refused(tmp_path, no_zip_reads):
    path = write_zip(tmp_path / f"{GOOD_NAME}.zip", {"/".join(["d"] * 12) + "/sheet11.ipynb": b"{}"})
    assert read(path).problem_code == "archive.unsafe"


def test_windows_backslash_and_drive_paths_refused(tmp_path, no_zip_reads):
    for name in ("..\\..\\evil.ipynb", "C:/evil.ipynb"):
        path = write_zip(tmp_path / f"{GOOD_NAME}.zip", {name: b"{}"})
        assert read(path).problem_code == "archive.unsafe", name


def test_utf8_flagged_name_is_fine(tmp_path):
    nb = notebook_bytes(solution())
    path = write_zip(tmp_path / f"{GOOD_NAME}.zip", {"Übung/sheet11.ipynb": nb, "Übung/Lösung.pdf": b"%PDF"})
    intake = read(path)
    assert intake.problem_code == "" and intake.notebook == nb
    assert intake.other_files == ("Übung/Lösung.pdf",)


# -- damaged files --------------------------------------------------------------------------
def test_truncated_zip_is_an_error_with_a_reason():
    intake = read(fixture("zip_truncated"))
    assert intake.problem_code == "archive.contents"
    assert "damaged or truncated" in intake.problem


def test_empty_and_garbage_zip(tmp_path):
    for data in (b"", b"PK\x03\x04 not really", bytes(1000)):
        path = tmp_path / f"{GOOD_NAME}.zip"
        path.write_bytes(data)
        assert read(path).problem_code == "archive.contents"


def test_damaged_notebook_entry_inside_a_good_zip(tmp_path):
    nb = notebook_bytes(solution())
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("sheet11.ipynb", nb)
    data = bytearray(buf.getvalue())
    start = data.find(b"PK\x03\x04") + 30 + len("sheet11.ipynb")
    data[start + 100: start + 400] = bytes(300)   # corrupt the compressed stream
    path = tmp_path / f"{GOOD_NAME}.zip"
    path.write_bytes(bytes(data))
    intake = read(path)
    assert intake.notebook is None and intake.problem_code == "archive.contents"


@pytest.mark.parametrize("key, words", [
    ("truncated_notebook", "not valid JSON"),
    ("not_json", "not valid JSON"),
    ("r_kernel", "kernel is R"),
])
def test_invalid_notebook(key, words):
    intake = read(fixture(key))
    assert intake.notebook is not None
    with pytest.raises(NotebookInvalid, match=words):
        parse_notebook(intake.notebook)


@pytest.mark.parametrize("key", ["truncated_notebook", "not_json", "r_kernel"])
def test_invalid_notebook_is_graded_as_error_without_a_kernel(key, monkeypatch):
    from builders import quick_context

    from grader.kernel import execute
    monkeypatch.setattr(execute.KernelSession, "run_notebook",
                        lambda *a: pytest.fail("no kernel may start for an invalid notebook"))
    data = grade_submission(fixture(key), quick_context()).to_json()
    assert data["status"] == "error"
    assert [f["code"] for f in data["flags"]] == ["notebook.invalid"]
    assert data["message"] and data["points"] == 0


@pytest.mark.parametrize("text", ["{}", "[]", '{"cells": "nope"}', '{"cells": [{"cell_type": "alien"}]}',
                                  '{"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [{}]}',
                                  "\ufeff{", "null", '"a string"'])
def test_json_that_is_not_a_notebook(text):
    with pytest.raises(NotebookInvalid):
        parse_notebook(text.encode())


def test_notebook_over_the_size_limit(tmp_path):
    path = fixture("big_image")
    size_mb = path.stat().st_size / 2**20
    intake = read(path, max_notebook_mb=1)
    assert intake.problem_code == "notebook.invalid" and intake.notebook is None
    assert "limit is 1 MB" in intake.problem
    # inside a zip too, from the header's size
    zipped = write_zip(tmp_path / f"{GOOD_NAME}.zip", {"sheet11.ipynb": path.read_bytes()})
    intake = read(zipped, max_notebook_mb=1)
    assert intake.problem_code == "notebook.invalid" and intake.notebook is None
    assert size_mb > 1


def test_stored_outputs_are_cleared_before_running():
    nb = parse_notebook(fixture("big_image").read_bytes())
    assert all(c.outputs == [] for c in nb.cells if c.cell_type == "code")
    assert all(c.execution_count is None for c in nb.cells if c.cell_type == "code")


def test_neither_zip_nor_notebook(tmp_path):
    path = tmp_path / f"{GOOD_NAME}.pdf"
    path.write_bytes(b"%PDF-1.4")
    intake = read(path)
    assert intake.problem_code == "archive.contents" and ".zip nor an .ipynb" in intake.problem


# -- what a zip holds -------------------------------------------------------------------------
def test_two_notebooks_neither_named_like_the_template():
    intake = read(fixture("zip_two_notebooks"))
    assert intake.problem_code == "archive.contents" and intake.notebook is None
    assert "part1.ipynb" in intake.problem and "sheet11.ipynb" in intake.problem


def test_two_notebooks_one_named_like_the_template():
    intake = read(fixture("zip_two_with_template"))
    assert intake.problem_code == "" and intake.notebook_name == "work/sheet11.ipynb"
    assert "work/sheet11.ipynb was graded" in intake.note
    assert intake.other_files == ("old/copy.ipynb",)


def test_macosx_and_checkpoints_are_ignored():
    intake = read(fixture("zip_macosx"))
    assert intake.problem_code == "" and intake.note == ""
    assert intake.notebook_name == "sheet11.ipynb"
    assert intake.other_files == ()


def test_pdf_beside_the_notebook_is_listed():
    intake = read(fixture("zip_with_pdf"))
    assert intake.problem_code == ""
    assert intake.notebook_name == "Lovelace_Turing/sheet11.ipynb"
    assert intake.other_files == ("Lovelace_Turing/answers.pdf",)


def test_zip_without_a_notebook(tmp_path):
    path = write_zip(tmp_path / f"{GOOD_NAME}.zip", {"answers.pdf": b"%PDF", "__MACOSX/._x.ipynb": b"x"})
    intake = read(path)
    assert intake.problem_code == "archive.contents" and "no notebook" in intake.problem
    assert intake.other_files == ("answers.pdf",)


def test_intake_never_changes_the_submission():
    for fx in FIXTURES.values():
        before = hashlib.sha256(fx.path.read_bytes()).hexdigest()
        stat = fx.path.stat()
        intake = read(fx.path)
        assert intake.sha256 == before
        assert hashlib.sha256(fx.path.read_bytes()).hexdigest() == before
        assert fx.path.stat().st_mtime_ns == stat.st_mtime_ns


# -- markup in answers ------------------------------------------------------------------------
ACTIVE = {
    "script tag": re.compile(r"<script[^>]*>[^<]*alert", re.I),
    "event handler": re.compile(r"""<[a-z][^>]*\son[a-z]+\s*=\s*["']?[^"'>]*alert""", re.I),
    "javascript: url": re.compile(r"""(href|src|action|formaction)\s*=\s*["']?\s*javascript:""", re.I),
    "css javascript:": re.compile(r"url\(\s*javascript:", re.I),
    "iframe": re.compile(r"<iframe", re.I),
}


def active_markup(html: str) -> dict[str, list[str]]:
    found = {name: p.findall(html) for name, p in ACTIVE.items()}
    return {name: hits for name, hits in found.items() if hits}


def test_active_markup_detector_works():
    assert set(active_markup('<script>alert(1)</script><img src=x onerror=alert(1)>'
                             '<a href="javascript:alert(1)">x</a>')) == {"script tag", "event handler", "javascript: url"}
    assert active_markup("&lt;script&gt;alert(1)&lt;/script&gt; &lt;img src=x onerror=alert(1)&gt;") == {}


@pytest.mark.slow
def test_script_in_answers_is_inert_in_the_report(tmp_path):
    from grader.batch.run import BatchSettings, run_batch
    out = tmp_path / "out"
    t0 = time.monotonic()
    outcome = run_batch([str(fixture("xss"))], BatchSettings.make(out))
    assert time.monotonic() - t0 < 60 * slowness()
    (data,) = outcome.results
    assert data["status"] == "graded"
    folder = out / FIXTURES["xss"].path.stem
    report = (folder / "report.html").read_text(encoding="utf-8")
    summary = (out / "summary.html").read_text(encoding="utf-8")
    assert "The RNN said positive" in report          # the answers are shown ...
    assert active_markup(report) == {}                  # ... but none of their markup is active
    assert active_markup(summary) == {}
    assert "<script>alert" not in report and "<script>alert" not in summary
    # `[click me](javascript:alert(1))` stays as text: no link was made of it
    assert not re.search(r"<a[^>]*javascript", report, re.I)
    json.loads((folder / "result.json").read_text())


# -- round 2 (issue 10): nothing recursive or unbounded on a student's file -----------------------
def test_json_nested_100000_deep_is_refused_without_recursion():
    from grader.submission.notebook import MAX_JSON_DEPTH, json_depth
    data = fixture("deep_nesting").read_bytes()
    assert json_depth(data.decode()) > MAX_JSON_DEPTH
    with pytest.raises(NotebookInvalid, match="nested more than"):
        parse_notebook(data, RUBRIC.limits)


@pytest.mark.parametrize("text, depth", [
    ("[]", 1), ('{"a": [[1], {"b": 2}]}', 3), ('"[[[["', 0), ('["\\"[[", ["]"]]', 2),
    ('"\\\\"', 0), ('"never closed [[[', 0), ("[" * 1000, 1000),
])
def test_json_depth_skips_strings_and_escapes(text, depth):
    from grader.submission.notebook import json_depth
    assert json_depth(text) == depth


@pytest.mark.timeout(60)
def test_json_depth_is_linear_on_hostile_strings():
    from grader.submission.notebook import json_depth
    # An unterminated string of escapes once made the string pattern backtrack quadratically.
    assert json_depth('"\\' * 2_000_000) == 0
    assert json_depth('"' + "\\a" * 2_000_000 + "[[") == 0


def test_deep_notebook_stops_only_itself(tmp_path):
    result = grade_submission(fixture("deep_nesting"), _context())
    assert result.status == "error" and [f.code for f in result.flags] == ["notebook.invalid"]


def test_too_many_cells_is_a_finding_not_work():
    with pytest.raises(NotebookInvalid, match="3[0-9,]* cells; at most 1000"):
        parse_notebook(fixture("cell_flood").read_bytes(), RUBRIC.limits)


def test_attachments_keep_images_only_and_are_inlined_once():
    from grader.pages.report import render_markdown
    nb = parse_notebook(fixture("attachment_flood").read_bytes(), RUBRIC.limits)
    cell = next(c for c in nb.cells if "answer-11.3.2" in c.metadata.get("tags", []))
    assert list(cell.attachments) == ["tree.png"]
    assert any("page.html" in n for n in nb.metadata["sheet11_attachment_notes"])
    html = render_markdown(cell.source, cell.attachments)
    image = len(cell.attachments["tree.png"]["image/png"])
    assert html.count("data:image/png;base64,") == 1
    assert len(html) < image + 20_000
    assert "<script" not in html


def test_attachments_over_the_notebook_cap_are_dropped_with_a_note():
    from grader.submission.notebook import clean_attachments
    nb = parse_notebook(fixture("attachment_flood").read_bytes())
    notes = clean_attachments(nb, max_bytes=100_000)
    cell = next(c for c in nb.cells if "answer-11.3.2" in c.metadata.get("tags", []))
    assert cell.attachments == {}
    assert any("tree.png" in n and "passed" in n for n in notes)


@pytest.mark.parametrize("values", [
    [5e-324], [0.0, 5e-324, 1e-300], [1e308, 1.7e308], [float("inf"), float("nan"), -1.0, 2.0],
    [-3.0, -1e308, 1e308], list(range(1, 200_001)),
])
@pytest.mark.parametrize("log", [True, False])
def test_charts_draw_any_numbers(values, log):
    from grader.pages.charts import MAX_POINTS, Line, line_chart
    from grader.pages.report import _env
    svg = line_chart(_env, [Line("a", values, "#000"), Line("b", values[::-1], "#111")], "t", "x", "y", log=log)
    drawable = [v for v in values if v == v and abs(v) != float("inf") and (v > 0 or not log)]
    if not drawable:
        assert svg is None
        return
    assert svg is not None and "<svg" in svg and "nan" not in svg and "inf" not in svg
    assert svg.count("<circle") <= 2 * MAX_POINTS


def test_bar_chart_takes_nan_inf_and_negative_values():
    from grader.pages.charts import Bar, bar_chart
    from grader.pages.report import _env
    svg = bar_chart(_env, [Bar("a", float("nan")), Bar("b", -3.0), Bar("c", float("inf"))], "t", "x", "y",
                    float("nan"), (float("inf"), "line"))
    assert svg is not None and 'height="-' not in svg and "nan" not in svg.split("<title>nan")[0]


def _context():
    from builders import quick_context
    return quick_context()


def test_an_oversized_file_is_refused_from_its_size_without_reading_it(tmp_path, monkeypatch):
    big = tmp_path / f"{GOOD_NAME}.ipynb"
    with open(big, "wb") as f:
        f.truncate(30 * 1024 * 1024)  # sparse: 30 MB of zeros over the 25 MB limit
    monkeypatch.setattr(Path, "read_bytes", lambda self: pytest.fail("the file was read whole"))
    intake = read_submission(big, RUBRIC.archive, RUBRIC.limits.max_notebook_mb)
    assert intake.problem_code == "notebook.invalid" and "limit" in intake.problem
    archive = tmp_path / f"{GOOD_NAME}.zip"
    with open(archive, "wb") as f:
        f.truncate(int(RUBRIC.archive.max_total_mb * 1024 * 1024) + 1)
    intake = read_submission(archive, RUBRIC.archive, RUBRIC.limits.max_notebook_mb)
    assert intake.problem_code == "archive.unsafe"
