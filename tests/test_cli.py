from __future__ import annotations

import shutil
import signal
from pathlib import Path

import pytest
from builders import FILES, GOOD_NAME
from click.testing import CliRunner

import grader.tutors.export
from grader.cli.main import EXIT_NOT_ALL_GRADED, EXIT_OK, EXIT_USAGE, main
from grader.errors import Interrupted, OutputFolderError


def test_help_lists_the_options() -> None:
    result = CliRunner().invoke(main, ["run", "--help"])
    assert result.exit_code == 0
    for option in ("-o", "-j", "--rubric", "--sandbox", "--regrade"):
        assert option in result.output


def test_a_path_that_does_not_exist_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, [str(tmp_path / "nothing.zip"), "-o", str(tmp_path / "o")])
    assert result.exit_code == EXIT_USAGE
    assert "does not exist" in result.output
    assert "Traceback" not in result.output


def test_a_bad_rubric_is_a_usage_error(tmp_path: Path) -> None:
    rubric = tmp_path / "r.toml"
    rubric.write_text("[rubric]\ntitle = 3\n")
    sub = tmp_path / f"{GOOD_NAME}.ipynb"
    sub.write_text("{}")
    result = CliRunner().invoke(main, [str(sub), "--rubric", str(rubric), "-o", str(tmp_path / "o")])
    assert result.exit_code == EXIT_USAGE
    assert "r.toml" in result.output and "rubric.title" in result.output


@pytest.mark.slow
def test_exit_code_says_whether_everything_was_graded(tmp_path: Path) -> None:
    good = tmp_path / f"{GOOD_NAME}.zip"
    shutil.copyfile(FILES / "flags" / "passes_all.zip", good)
    result = CliRunner().invoke(main, [str(good), "-o", str(tmp_path / "o")])
    assert result.exit_code == EXIT_OK, result.output
    # Rich wraps long paths at the terminal's width, wherever the temporary folder happens to be
    assert "graded" in result.output and "grades.csv" in result.output.replace("\n", "")
    broken = tmp_path / "Broken_1111111_Zip_2222222.zip"
    broken.write_bytes(b"not a zip")
    result = CliRunner().invoke(main, [str(good), str(broken), "-o", str(tmp_path / "o")])
    assert result.exit_code == EXIT_NOT_ALL_GRADED
    assert "Traceback" not in result.output


@pytest.mark.parametrize("command", ["run", "review", "scores", "export", "similarity", "confirm"])
def test_the_output_option_is_the_same_everywhere(command: str) -> None:
    result = CliRunner().invoke(main, [command, "--help"])
    assert result.exit_code == 0 and "-o, --output" in result.output


@pytest.mark.parametrize("raised, code", [(KeyboardInterrupt(), 130), (Interrupted(signal.SIGINT), 130),
                                          (Interrupted(signal.SIGTERM), 143)])
def test_an_interrupt_exits_with_its_code_and_no_traceback(monkeypatch, tmp_path: Path, raised, code) -> None:
    def stop(*args, **kwargs):
        raise raised
    monkeypatch.setattr(grader.tutors.export, "export", stop)
    result = CliRunner().invoke(main, ["export", "-o", str(tmp_path)])
    assert result.exit_code == code and "Interrupted" in result.output and "Traceback" not in result.output


def test_the_one_boundary_prints_grader_errors_escaped(monkeypatch, tmp_path: Path) -> None:
    def refuse(*args, **kwargs):
        raise OutputFolderError("[bold]x[/bold] is a symbolic link")
    monkeypatch.setattr(grader.tutors.export, "export", refuse)
    result = CliRunner().invoke(main, ["export", "-o", str(tmp_path)])
    assert result.exit_code == 2 and "[bold]x[/bold] is a symbolic link" in result.output
