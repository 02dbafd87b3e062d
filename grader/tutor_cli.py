"""The tutors' commands: ``grade review``, ``grade scores``, ``grade serve``, ``grade export``,
``grade similarity``, ``grade confirm``, ``grade audit``.

Thin click wrappers around grader.review, grader.scores, grader.export, grader.similarity and the
gradebook; they are registered on the ``grade`` group at the end of grader/cli.py. Errors go
through the one boundary of grader/cli_common.py.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from grader.cli_common import boundary, output_option, rubric_option


@click.command("review")
@output_option()
@click.option("--question", "questions", multiple=True, metavar="ID", help="Only this written question (repeatable).")
@click.option("--group", "groups", multiple=True, metavar="FOLDER", help="Only this submission folder (repeatable).")
@click.option("--to", "to", default=None, type=click.Path(file_okay=False),
              help="Folder for the pages and the sheet (default OUTPUT/review).")
def review_command(out_dir: str, questions: tuple[str, ...], groups: tuple[str, ...], to: str | None) -> None:
    """Review pages per written question and a scoring sheet (CSV) for the tutors."""
    from grader.review import write_review
    with boundary():
        outcome = write_review(Path(out_dir), questions, groups, Path(to) if to else None)
    click.echo(f"{len(outcome.pages)} review page(s) in {outcome.pages[0].parent if outcome.pages else to}; "
               f"start at {outcome.index}")
    click.echo(f"Scoring sheet ({outcome.rows} rows): {outcome.sheet}")
    click.echo(f"Fill in points and comments, then: grade scores {outcome.sheet} -o {out_dir}")


@click.command("scores")
@click.argument("sheet", type=click.Path(dir_okay=False, exists=True))
@output_option()
@click.option("--tutor", default=None, help="Who scored (default: the login name).")
@rubric_option()
def scores_command(sheet: str, out_dir: str, tutor: str | None, rubric_path: str | None) -> None:
    """Import a filled scoring sheet: all rows or none; then render everything again."""
    from grader.scores import import_sheet
    with boundary():
        outcome = import_sheet(Path(sheet), Path(out_dir), tutor, rubric_path)
    click.echo(f"{outcome.scores} score(s) in the sheet; {len(outcome.changed)} new or changed; "
               f"{len(outcome.rewritten)} submission(s) rendered again.")
    for s in outcome.changed:
        click.echo(f"  {s.submission} {s.question}: {s.points:g}")


@click.command("export")
@output_option()
@click.option("--format", "fmt", type=click.Choice(["csv", "json", "moodle", "canvas"]), default="csv",
              show_default=True,
              help="csv/json: the grades; moodle/canvas: fill the platform's file given with --into.")
@click.option("--to", "to", default=None,
              help="File to write (csv/json: default OUTPUT/export.<format>, '-' for stdout; moodle/canvas: default "
                   "<into>-graded.csv beside it; the --into file itself to replace it in place, atomically).")
@click.option("--into", "into", default=None, type=click.Path(dir_okay=False, exists=True),
              help="moodle: the downloaded offline grading worksheet; canvas: the gradebook export (CSV).")
@click.option("--column", "column", default=None, metavar="NAME",
              help="canvas: the assignment column to fill, e.g. 'Sheet 11 (4711)' (needed when there are several).")
@click.option("--require-complete", is_flag=True,
              help="Exit with 1 and write nothing while submissions are not graded or answers not scored.")
@rubric_option()
def export_command(out_dir: str, fmt: str, to: str | None, into: str | None, column: str | None,
                   require_complete: bool, rubric_path: str | None) -> None:
    """Per-student grades (with the tutors' scores) as CSV or JSON, or into Moodle's or Canvas's file."""
    from rich.console import Console
    from rich.markup import escape as rich_escape

    from grader.errors import UsageError
    from grader.export import export, export_platform, incomplete
    from grader.scores import load_results
    err = Console(stderr=True)
    path: Path | None = None
    text = ""
    with boundary():
        if fmt in ("moodle", "canvas") and not into:
            where = "Moodle (Download grading worksheet)" if fmt == "moodle" else "Canvas (Grades > Export)"
            raise UsageError(f"--format {fmt} needs --into FILE: the file downloaded from {where}")
        if into and fmt not in ("moodle", "canvas"):
            raise UsageError("--into is for --format moodle or canvas")
        try:
            missing = incomplete(load_results(Path(out_dir)))
        except UsageError:
            missing = []  # no results to judge: the export below says so, with the same error
        if missing:
            err.print(f"[bold yellow]warning:[/] grading is not complete ({len(missing)}):", highlight=False)
            for line in missing:
                err.print(f"  {rich_escape(line)}", highlight=False, soft_wrap=True)
            if require_complete:
                err.print("Nothing was written (--require-complete).", highlight=False)
                sys.exit(1)
        if fmt in ("moodle", "canvas"):
            assert into is not None
            outcome = export_platform(Path(out_dir), fmt, Path(into), Path(to) if to else None, column)
        else:
            path, text = export(Path(out_dir), fmt, Path(to) if to else None, rubric_path)
    if fmt in ("moodle", "canvas"):
        to_stdout = outcome.path is None
        if to_stdout:
            sys.stdout.buffer.write(outcome.text)
            sys.stdout.flush()
        say = (lambda line: click.echo(line, err=True)) if to_stdout else click.echo
        say(f"{outcome.filled} student(s) filled in; {outcome.changed} field(s) changed; "
            f"written to {outcome.path or 'standard output'}")
        if outcome.not_in_grades:
            say(f"Not in the grades, left as they are ({len(outcome.not_in_grades)}; no submission?):")
            for line in outcome.not_in_grades:
                say(f"  {line}")
        for line in outcome.unconfirmed:
            say(f"  no grade: {line}")
        say(f"Upload {outcome.path or 'it'} to " + ("Moodle (Grading action: Upload grading worksheet)."
                                                    if fmt == "moodle" else "Canvas (Grades > Import)."))
    elif path is None:
        click.echo(text, nl=False)
    else:
        click.echo(f"Grades written to {path}")


@click.command("serve")
@output_option()
@click.option("--port", default=8011, show_default=True, type=click.IntRange(0, 65535),
              help="Port on 127.0.0.1 (0: any free one).")
@click.option("--tutor", default=None, help="Who scores (default: the login name); each browser can set its own.")
@rubric_option()
def serve_command(out_dir: str, port: int, tutor: str | None, rubric_path: str | None) -> None:
    """Score the written answers in the browser (a local web app on 127.0.0.1)."""
    from grader.errors import UsageError
    from grader.scores import default_tutor
    from grader.serve import clean_tutor, serve
    with boundary():
        name = clean_tutor(tutor) if tutor is not None else default_tutor()
        if name is None:
            raise UsageError("--tutor: a name of 1 to 60 printable characters, please")
        serve(Path(out_dir), port, name, click.echo, rubric_path)


@click.command("similarity")
@output_option()
@rubric_option()
def similarity_command(out_dir: str, rubric_path: str | None) -> None:
    """Compare every pair of groups again (code and answers) and rewrite summary.html."""
    from grader.outdir import OutDir
    from grader.scores import sync_outputs
    from grader.similarity import batch_similarity
    with boundary():
        out = OutDir(Path(out_dir))
        data = batch_similarity([r.to_json() for r in out.results()])
        out.write_similarity(data)
        sync_outputs(out, rubric_path)
    above = [p for p in data["pairs"] if p["score"] >= data["threshold"]]
    click.echo(f"{data['pairs_compared']} pair(s) compared; {len(above)} at or above {data['threshold']:.0%}.")
    for p in data["pairs"][:5]:
        click.echo(f"  {p['score']:.0%}  {p['a_label']}  ~  {p['b_label']}")


@click.command("confirm")
@click.argument("folder")
@click.argument("student_ids", nargs=-1, required=True)
@output_option()
@click.option("--tutor", default=None, help="Who confirmed (default: the login name).")
@rubric_option()
def confirm_command(folder: str, student_ids: tuple[str, ...], out_dir: str, tutor: str | None,
                    rubric_path: str | None) -> None:
    """Confirm group members the file name does not name, so grades.csv gives them points.

    FOLDER is the submission's folder in OUTPUT; STUDENT_IDS are ids from its group cell."""
    from grader.scores import confirm_members
    with boundary():
        done = confirm_members(Path(out_dir), folder, student_ids, tutor, rubric_path, time.time())
    for sid in student_ids:
        click.echo(f"{'confirmed' if sid in done else 'already confirmed'}: {sid} in {folder}")


@click.command("audit")
@click.option("--function", "functions", multiple=True, metavar="NAME",
              help="Only the mutants of this function of 11.4 (repeatable; default: all seven).")
@click.option("--sample", "per_function", default=None, type=click.IntRange(1, 10_000), metavar="N",
              help="A fixed sample of N mutants per function instead of all of them.")
@click.option("--pipeline", "pipeline", default=0, type=click.IntRange(0, 50), metavar="N",
              help="Also grade N of the mutants through the whole pipeline (a notebook in a kernel) "
                   "and say whether it agrees with the in-process audit.")
@click.option("--verbose", is_flag=True, help="One line per mutant.")
@rubric_option()
def audit_command(functions: tuple[str, ...], per_function: int | None, pipeline: int, verbose: bool,
                  rubric_path: str | None) -> None:
    """Mutation audit: grade mutants of the reference; refuse (exit 1) a rubric a mutant survives."""
    from grader.audit import run_audit
    with boundary():
        code = run_audit(functions, per_function, pipeline, verbose, rubric_path, click.echo)
    sys.exit(code)
