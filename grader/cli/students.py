"""The students' commands: ``grade check``, ``grade pack``, ``grade release`` (thin; the work is
in :mod:`grader.students.student`).

Exit codes: ``grade check``: 0 every public check passes and nothing is missing, 1 something to
fix (a check failed, an answer or function is missing, a rule or the group cell is broken), 2 the
command could not run. ``grade pack``: 0 packed, 1 refused (a rule of contract §4 would be
broken), 2 could not run. ``grade release``: 0 written, 2 could not run.
"""
from __future__ import annotations

import os
import sys

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from grader.cli.common import fail, plain, rubric_option, sandbox_option, shown
from grader.errors import GraderError

_STYLE = {"pass": ("green", "pass"), "fail": ("bold red", "FIX"), "todo": ("yellow", "OPEN"),
          "advice": ("cyan", "advice"), "info": ("dim", "info")}


def _fail(console: Console, exc: GraderError) -> None:
    fail(exc, console)  # the one printer (grader/cli/common.py): markup escaped


def _say(console: Console, label: str, style: str, text: str) -> None:
    """Print our coloured ``label`` and then ``text`` (students' names, file names, paths) as plain
    text: a Text object is never parsed as Rich markup, so ``[/]`` in a name is printed as written."""
    console.print(Text.assemble((label, style), " ", text) if label else Text(text), highlight=False,
                  soft_wrap=True)


@click.command("check")
@click.argument("notebook", type=click.Path(dir_okay=False))
@rubric_option()
@sandbox_option()
@click.option("--full", is_flag=True,
              help="Also run the recall experiment of 11.4.d as grading does: train_recall at the "
                   "rubric's seq_len, tries and CPU limit, on public held-out data (takes as long "
                   "as your training). Without it train_recall gets one short interface run.")
def check_command(notebook: str, rubric_path: str | None, sandbox_mode: str, full: bool) -> None:
    """Run NOTEBOOK as grading does, on the public examples only, and list what to fix.

    With --full, train_recall is trained as grading trains it (see --full below).

    Exit code 0: every public check passes and nothing is missing; 1: something to fix;
    2: the command could not run.
    """
    from grader.students.student import check_notebook
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    err = Console(stderr=True)
    out = Console()
    try:
        what = "public examples, the full recall experiment" if full else "public examples only"
        with err.status(f"running the notebook ({what}) ..."):
            report = check_notebook(notebook, rubric_path, sandbox_mode, full=full)
    except GraderError as exc:
        _fail(err, exc)
        return
    if report.sandbox_note:
        err.print(f"[bold yellow]warning:[/] {shown(report.sandbox_note)}", highlight=False)
    table = Table(title=f"grade check: {shown(report.submission)}", show_lines=False, expand=False)
    for col in ("question", "check", "result", "what to do / details"):
        table.add_column(col, overflow="fold")
    for r in report.rows:
        style, word = _STYLE.get(r.status, ("white", r.status))
        table.add_row(shown(r.question), Text(plain(r.item)), Text(word, style=style), Text(plain(r.message)))
    out.print(table)
    counts = report.counts()
    summary = ", ".join(f"{counts[k]} {_STYLE[k][1]}" for k in ("pass", "fail", "todo", "advice") if counts.get(k))
    if report.ok:
        out.print(f"[green]Everything that can be checked automatically is in order[/] ({summary}). "
                  "The grader also runs hidden examples of the same sizes; tutors grade the written answers.",
                  highlight=False)
    else:
        out.print(f"[red]Not ready yet:[/] {summary}. Fix the rows marked FIX and OPEN, then run "
                  "`grade check` again.", highlight=False)
    sys.exit(report.exit_code)


@click.command("pack")
@click.argument("notebook", type=click.Path(dir_okay=False))
@click.argument("extras", nargs=-1, type=click.Path(dir_okay=False))
@click.option("-o", "--output", "out_dir", default=".", show_default=True,
              type=click.Path(file_okay=False), help="Folder for the zip.")
@click.option("--force", is_flag=True, help="Pack even where a naming or group rule is broken.")
@rubric_option()
def pack_command(notebook: str, extras: tuple[str, ...], out_dir: str, force: bool,
                 rubric_path: str | None) -> None:
    """Pack NOTEBOOK (and EXTRAS) as Name1_id1_Name2_id2[_Name3_id3].zip from its group cell.

    Exit code 0: packed; 1: refused (the reason is printed; --force packs anyway);
    2: the command could not run.
    """
    from grader.students.student import group_text, pack
    err = Console(stderr=True)
    try:
        result = pack(notebook, extras, out_dir, force, rubric_path)
    except GraderError as exc:
        _fail(err, exc)
        return
    out = Console()
    for problem in result.problems:
        out.print(f"[bold yellow]packed anyway (--force):[/] {shown(problem)}", highlight=False)
    for warning in result.warnings:
        out.print(f"[cyan]note:[/] {shown(warning)}", highlight=False)
    out.print(f"[green]wrote[/] {shown(result.path)}  ({shown(', '.join(result.entries))}; "
              f"group: {shown(group_text(result.members))})", highlight=False, soft_wrap=True)


@click.command("release")
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder for the bundle.")
@rubric_option()
def release_command(out_dir: str, rubric_path: str | None) -> None:
    """Write the bundle handed out to students: template, check module, public examples, README."""
    from grader.students.student import release
    err = Console(stderr=True)
    try:
        written = release(out_dir, rubric_path)
    except GraderError as exc:
        _fail(err, exc)
        return
    Console().print("wrote " + shown(", ".join(str(p) for p in written)), highlight=False, soft_wrap=True)
