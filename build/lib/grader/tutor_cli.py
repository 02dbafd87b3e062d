"""The tutors' commands: ``grade review``, ``grade scores``, ``grade export``, ``grade similarity``.

Thin click wrappers around grader.review, grader.scores, grader.export and grader.similarity;
they are registered on the ``grade`` group at the end of grader/cli.py.
"""
from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape as rich_escape

from grader.errors import GraderError

_OUT = click.option("-o", "--output", "out_dir", default="graded", show_default=True,
                    type=click.Path(file_okay=False), help="The graded output folder.")


def _fail(exc: GraderError) -> None:
    Console(stderr=True).print(f"[bold red]error:[/] {rich_escape(str(exc))}", soft_wrap=True, highlight=False)
    sys.exit(exc.exit_code)


@click.command("review")
@_OUT
@click.option("--question", "questions", multiple=True, metavar="ID", help="Only this written question (repeatable).")
@click.option("--group", "groups", multiple=True, metavar="FOLDER", help="Only this submission folder (repeatable).")
@click.option("--to", "to", default=None, type=click.Path(file_okay=False),
              help="Folder for the pages and the sheet (default OUTPUT/review).")
def review_command(out_dir: str, questions: tuple[str, ...], groups: tuple[str, ...], to: str | None) -> None:
    """Review pages per written question and a scoring sheet (CSV) for the tutors."""
    from grader.review import write_review
    try:
        outcome = write_review(Path(out_dir), questions, groups, Path(to) if to else None)
    except GraderError as exc:
        _fail(exc)
        return
    click.echo(f"{len(outcome.pages)} review page(s) in {outcome.pages[0].parent if outcome.pages else to}")
    click.echo(f"Scoring sheet ({outcome.rows} rows): {outcome.sheet}")
    click.echo(f"Fill in points and comments, then: grade scores {outcome.sheet} -o {out_dir}")


@click.command("scores")
@click.argument("sheet", type=click.Path(dir_okay=False, exists=True))
@_OUT
@click.option("--tutor", default=None, help="Who scored (default: the login name).")
@click.option("--rubric", "rubric_path", default=None, type=click.Path(dir_okay=False),
              help="Rubric file (default: rubrics/sheet11.toml).")
def scores_command(sheet: str, out_dir: str, tutor: str | None, rubric_path: str | None) -> None:
    """Import a filled scoring sheet: all rows or none; then render everything again."""
    from grader.scores import import_sheet
    try:
        outcome = import_sheet(Path(sheet), Path(out_dir), tutor, rubric_path)
    except GraderError as exc:
        _fail(exc)
        return
    click.echo(f"{outcome.scores} score(s) in the sheet; {len(outcome.changed)} new or changed; "
               f"{len(outcome.rewritten)} submission(s) rendered again.")
    for s in outcome.changed:
        click.echo(f"  {s.submission} {s.question}: {s.points:g}")


@click.command("export")
@_OUT
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv", show_default=True)
@click.option("--to", "to", default=None, help="File to write (default OUTPUT/export.<format>; '-' for stdout).")
@click.option("--rubric", "rubric_path", default=None, type=click.Path(dir_okay=False),
              help="Rubric file (default: rubrics/sheet11.toml).")
def export_command(out_dir: str, fmt: str, to: str | None, rubric_path: str | None) -> None:
    """Per-student grades (with the tutors' scores) as CSV or JSON."""
    from grader.export import export
    try:
        path, text = export(Path(out_dir), fmt, Path(to) if to else None, rubric_path)
    except GraderError as exc:
        _fail(exc)
        return
    if path is None:
        click.echo(text, nl=False)
    else:
        click.echo(f"Grades written to {path}")


@click.command("similarity")
@_OUT
def similarity_command(out_dir: str) -> None:
    """Compare every pair of groups again (code and answers) and rewrite summary.html."""
    from grader.scores import load_results, sync_outputs
    from grader.similarity import write_similarity
    try:
        data = write_similarity(load_results(Path(out_dir)), Path(out_dir))
        sync_outputs(Path(out_dir))
    except GraderError as exc:
        _fail(exc)
        return
    above = [p for p in data["pairs"] if p["score"] >= data["threshold"]]
    click.echo(f"{data['pairs_compared']} pair(s) compared; {len(above)} at or above {data['threshold']:.0%}.")
    for p in data["pairs"][:5]:
        click.echo(f"  {p['score']:.0%}  {p['a_label']}  ~  {p['b_label']}")
