"""The ``grade`` command: parses arguments, calls library functions, prints. Nothing more.

Exit codes: 0 every submission was graded; 1 at least one was rejected or could not be graded;
2 the command could not run (bad arguments, bad rubric, sandbox missing); 130 interrupted.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from grader.errors import GraderError

EXIT_OK, EXIT_NOT_ALL_GRADED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class _DefaultGroup(click.Group):
    """``grade PATH...`` grades; ``grade <command> ...`` runs a sub-command."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h", "--version"):
            args = ["run", *args]
        elif not args:
            args = ["run", "--help"]
        return super().parse_args(ctx, args)


@click.group(cls=_DefaultGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="sheet11-grader")
def main() -> None:
    """Grade Exercise Sheet 11 submissions.

    \b
    grade submissions/*.zip -o graded      grade a batch (same as `grade run ...`)
    """


@main.command("run")
@click.argument("paths", nargs=-1, required=True)
@click.option("-o", "--output", "out_dir", default="graded", show_default=True, type=click.Path(file_okay=False),
              help="Folder for reports, result.json files, grades.csv and summary.html.")
@click.option("-j", "--jobs", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Submissions graded at once; each kernel uses one thread.")
@click.option("--rubric", "rubric_path", default=None, type=click.Path(dir_okay=False),
              help="Rubric file (default: rubrics/sheet11.toml).")
@click.option("--sandbox", "sandbox_mode", default="auto", show_default=True,
              type=click.Choice(["auto", "bwrap", "none"]),
              help="How student kernels are confined; `none` must be asked for knowingly.")
@click.option("--regrade", is_flag=True, help="Grade again even what is finished and unchanged.")
@click.option("--deadline", default=None, metavar="TIME",
              help="ISO-8601 deadline (e.g. 2024-02-01T23:59, local time); the rubric's late policy applies.")
@click.option("--manifest", default=None, type=click.Path(dir_okay=False, exists=True),
              help="CSV with the columns submission,time (ISO-8601); else a file's modification time counts.")
def run_command(paths: tuple[str, ...], out_dir: str, jobs: int, rubric_path: str | None,
                sandbox_mode: str, regrade: bool, deadline: str | None, manifest: str | None) -> None:
    """Grade PATHS (.zip or .ipynb files, folders or globs) into OUTPUT."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    console = Console(stderr=True)
    try:
        if manifest and not deadline:
            from grader.errors import UsageError
            raise UsageError("--manifest needs --deadline: the times only matter against a deadline")
        from grader.late import parse_time
        when = parse_time(deadline, "--deadline") if deadline else None
        outcome = _run(console, paths, Path(out_dir), jobs, rubric_path, sandbox_mode, regrade,
                       when, Path(manifest) if manifest else None)
    except GraderError as exc:
        console.print(f"[bold red]error:[/] {exc}", soft_wrap=True, highlight=False)
        sys.exit(EXIT_USAGE)
    except KeyboardInterrupt:
        console.print("[yellow]Interrupted. Finished submissions are kept; run the same command to go on.[/]")
        sys.exit(EXIT_INTERRUPTED)
    not_graded = [r for r in outcome.results if r["status"] != "graded"]
    sys.exit(EXIT_NOT_ALL_GRADED if not_graded else EXIT_OK)


_COLOURS = {"graded": "green", "rejected": "yellow", "error": "red"}


def _run(console: Console, paths: tuple[str, ...], out_dir: Path, jobs: int, rubric_path: str | None,
         sandbox_mode: str, regrade: bool, deadline: Any = None, manifest: Path | None = None) -> Any:
    from grader.batch import run_batch
    from grader.sandbox import choose_sandbox
    sandbox = choose_sandbox(sandbox_mode)
    if sandbox.note:
        console.print(f"[bold yellow]warning:[/] {sandbox.note}")
    progress = Progress(TextColumn("[bold]grading"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=console, transient=True)
    task = progress.add_task("grading", total=None)

    def started(total: int, skipped: int) -> None:
        progress.update(task, total=total)
        if skipped:
            console.print(f"{skipped} submission(s) already graded and unchanged: kept.")

    def finished(data: dict[str, Any], kept: bool) -> None:
        progress.advance(task)
        if kept:
            return
        colour = _COLOURS.get(data["status"], "white")
        codes = ", ".join(dict.fromkeys(f["code"] for f in data["flags"]))
        console.print(f"[{colour}]{data['status']:>8}[/] {data['points']:5.2f}/{data['max_points']:g}  "
                      f"{data['submission']}" + (f"  [dim]{codes}[/]" if codes else ""))

    with progress:
        outcome = run_batch(paths, out_dir, rubric_path, jobs, sandbox_mode, regrade,
                            on_start=started, on_result=finished, deadline=deadline, manifest=manifest)
    table = Table(title=f"{len(outcome.results)} submissions")
    for col in ("submission", "status", "auto points", "flags"):
        table.add_column(col)
    for r in outcome.results:
        table.add_row(r["submission"], f"[{_COLOURS.get(r['status'], 'white')}]{r['status']}[/]",
                      f"{r['points']:.2f}", ", ".join(dict.fromkeys(f["code"] for f in r["flags"])))
    Console().print(table)
    for change in getattr(outcome, "changes", []):  # what a re-grade changed; tutors' scores are kept
        moved = ", ".join(f"{q} {old:g} -> {new:g}" for q, (old, new) in change["questions"].items())
        status = f"{change['old_status']} -> {change['status']}" if change["old_status"] != change["status"] else ""
        console.print(f"[cyan]changed[/] {change['submission']}: " + "; ".join(x for x in (status, moved) if x),
                      highlight=False)
    console.print(f"Reports: {out_dir}/<submission>/report.html   Gradebook CSV: {out_dir}/grades.csv   "
                  f"Summary: {out_dir}/summary.html")
    return outcome


# Sub-commands that live in their own modules are registered below, one line each.
from grader import tutor_cli as _tutor  # noqa: E402

main.add_command(_tutor.review_command)
main.add_command(_tutor.scores_command)
main.add_command(_tutor.export_command)
main.add_command(_tutor.similarity_command)
from grader.student_cli import check_command, pack_command, release_command  # noqa: E402
main.add_command(check_command, "check")
main.add_command(pack_command, "pack")
main.add_command(release_command, "release")


if __name__ == "__main__":
    main()
