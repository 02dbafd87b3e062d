"""The students' commands print students' text as text: a name, an e-mail or a path holding Rich
markup (``[/]``, ``[bold]``, ``[link=...]``) is printed as written, never parsed (issue 21, item 7)."""
from __future__ import annotations

from builders import set_group, solution, write_notebook
from click.testing import CliRunner

from grader.cli.main import main

WIDE = {"COLUMNS": "400"}  # rich wraps at 80 columns when not on a terminal

MARKUP_GROUP = [("Ada [/] Lovelace", "2571234", "ada@uni.example"),
                ("[bold red]Alan[/] Turing", "2579876", "alan@uni.example")]


def test_pack_prints_a_member_name_holding_markup_as_written(tmp_path):
    nb = solution(fast=True)
    set_group(nb, MARKUP_GROUP)
    path = write_notebook(nb, tmp_path / "sheet11.ipynb")
    result = CliRunner().invoke(main, ["pack", str(path), "-o", str(tmp_path / "out"), "--force"], env=WIDE)
    assert result.exit_code == 0, result.output
    assert "MarkupError" not in result.output and "Traceback" not in result.output
    assert "Ada [/] Lovelace" in result.output
    assert "[bold red]Alan[/] Turing" in result.output
    assert list((tmp_path / "out").glob("*.zip"))


def test_pack_prints_refusal_and_notes_holding_markup_as_written(tmp_path):
    nb = solution(fast=True)
    set_group(nb, MARKUP_GROUP[:1])  # a group of one: refused, then packed anyway with --force
    path = write_notebook(nb, tmp_path / "[red]alone[/].ipynb")
    runner = CliRunner()
    refused = runner.invoke(main, ["pack", str(path), "-o", str(tmp_path / "out")], env=WIDE)
    assert refused.exit_code == 1, refused.output
    forced = runner.invoke(main, ["pack", str(path), "-o", str(tmp_path / "[/]out"), "--force"], env=WIDE)
    assert forced.exit_code == 0, forced.output
    assert "packed anyway" in forced.output and "[/]out" in forced.output
    assert "Ada [/] Lovelace" in forced.output


def test_release_prints_an_output_folder_holding_markup_as_written(tmp_path):
    out = tmp_path / "[bold]bundle[/]"
    result = CliRunner().invoke(main, ["release", "-o", str(out)], env=WIDE)
    assert result.exit_code == 0, result.output
    assert "[bold]bundle[/]" in result.output
