"""The output folder's one owner: safe names, paths that stay inside, links refused, atomic writes,
results read back typed and every unreadable one named."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_scores import MEMBERS, fake_output, fake_result

import grader.folder.outdir
from grader.errors import OutputFolderError, UsageError
from grader.folder.outdir import MAX_NAME, OutDir, folder_name, safe_pages, write_atomic
from grader.result import SubmissionResult


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.text(), st.lists(st.sampled_from([".", "/", "\\", "..", "\x00", "\u202e", " ", "a", "é"]),
                                     max_size=12).map("".join)))
def test_a_folder_name_is_always_one_plain_name(stem: str) -> None:
    name = folder_name(stem)
    assert name and name not in (".", "..") and not name.startswith(".")
    assert "/" not in name and "\\" not in name and ".." not in name
    assert len(name) <= MAX_NAME + len("submission_")
    assert all(ch.isprintable() for ch in name)
    assert folder_name(name) == name  # stable


def test_paths_stay_inside_and_links_are_refused(tmp_path: Path) -> None:
    out = OutDir(tmp_path / "out", create=True)
    assert out.path("A", "result.json") == (tmp_path / "out" / "A" / "result.json").resolve()
    for bad in ("..", ".", "a/b", "", "x\\y"):
        with pytest.raises(OutputFolderError, match="not a plain file name"):
            out.path(bad, "result.json")
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "out" / "L").symlink_to(outside, target_is_directory=True)
    with pytest.raises(OutputFolderError, match="symbolic link"):
        out.write(("L", "result.json"), "{}")
    (tmp_path / "out" / "grades.csv").symlink_to(outside / "stolen.csv")
    with pytest.raises(OutputFolderError, match="symbolic link"):
        out.write(("grades.csv",), "x")
    assert list(outside.iterdir()) == []


def test_writes_are_atomic_and_leave_no_temporary_file(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "f.txt"
    write_atomic(target, "one\r\ntwo")
    assert target.read_bytes() == b"one\r\ntwo" and oct(target.stat().st_mode)[-3:] == "644"

    def interrupted(fd: int) -> None:  # Ctrl-C in the middle of a write
        raise KeyboardInterrupt
    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_atomic(target, "three")
    assert target.read_text() == "one\ntwo" and [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_not_a_folder_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not a folder"):
        OutDir(tmp_path / "missing")


def test_results_read_back_typed_and_unreadable_ones_are_named(tmp_path: Path) -> None:
    out = fake_output(tmp_path / "out", [fake_result("A_1_B_2", MEMBERS[0]), fake_result("C_3_D_4", MEMBERS[1])])
    folder = OutDir(out)
    assert [r.folder for r in folder.results()] == ["A_1_B_2", "C_3_D_4"]
    (out / "C_3_D_4" / "result.json").write_text(json.dumps({"submission": "x", "status": "graded"}))
    (out / "E_5_F_6").mkdir()
    (out / "E_5_F_6" / "result.json").write_text("[" * 100000)  # deep nesting: named, not a crash
    loaded = folder.load_results()
    assert [r.folder for r in loaded.results] == ["A_1_B_2"]
    assert [u.split(":")[0] for u in loaded.unreadable] == ["C_3_D_4/result.json", "E_5_F_6/result.json"]
    with pytest.raises(OutputFolderError, match="C_3_D_4/result.json.*E_5_F_6/result.json"):
        folder.results()


def test_a_report_that_cannot_be_drawn_becomes_a_short_page(monkeypatch) -> None:
    def broken(data, confirmed=()):
        raise ValueError("math domain error")
    monkeypatch.setattr(grader.folder.outdir, "render_pages", broken)
    pages = safe_pages(SubmissionResult.from_json(fake_result("A_1_B_2", MEMBERS[0])))
    assert set(pages) == {"report.html", "tutor.html"}
    assert all("could not be drawn (ValueError)" in html and "result.json" in html for html in pages.values())


def test_a_result_is_written_once_and_only_when_it_changes(tmp_path: Path) -> None:
    out = OutDir(tmp_path / "out", create=True)
    result = SubmissionResult.from_json(fake_result("A_1_B_2", MEMBERS[0]))
    assert out.write_submission(result)
    stamp = os.stat(out.path("A_1_B_2", "result.json")).st_mtime_ns
    assert not out.write_submission(result)
    assert os.stat(out.path("A_1_B_2", "result.json")).st_mtime_ns == stamp
    assert out.read_result("A_1_B_2") == result
