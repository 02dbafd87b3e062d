"""The ``grade`` command: parses arguments, calls library functions, prints. Nothing more.

Exit codes: 0 every submission was graded; 1 at least one was rejected or could not be graded;
2 the command could not run (bad arguments, bad rubric, sandbox missing); 130 interrupted by
Ctrl-C (SIGINT), 143 stopped by SIGTERM. Interrupted or not, the output folder then holds
``grades.csv`` and ``summary.html`` for what finished; the same command grades the rest.
"""
from __future__ import annotations

# First, before the slow imports: a Ctrl-C from now on is held until the batch can keep what
# finished (grader/batch/interrupt.py), so no moment of a run ends in a traceback.
import os
import sys

from grader.batch import interrupt

if __name__ == "__main__" or os.path.basename(sys.argv[0]) == "grade":  # a program, not an import
    interrupt.install()

from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from grader.cli.common import (  # noqa: F401
    EXIT_INTERRUPTED,
    EXIT_NOT_ALL_GRADED,
    EXIT_OK,
    EXIT_USAGE,
    boundary,
    interrupted_exit,
    output_option,
    rubric_option,
    sandbox_option,
    shown,
)
from grader.errors import UsageError
from grader.result import SubmissionResult


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


_KEPT = "Finished submissions are kept; run the same command to go on."


@main.command("run")
@click.argument("paths", nargs=-1, required=True)
@output_option("Folder for reports, result.json files, grades.csv and summary.html.")
@click.option("-j", "--jobs", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Submissions graded at once; each kernel uses one thread.")
@rubric_option()
@sandbox_option()
@click.option("--regrade", is_flag=True, help="Grade again even what is finished and unchanged.")
@click.option("--cluster", default=None, metavar="ADDRESS",
              help="Grade on Dask workers: local:N (N processes here) or tls://HOST:8786 (needs the cluster "
                   "extra and `grade cluster-credentials`).")
@click.option("--connect-timeout", default=10.0, show_default=True, type=click.FloatRange(0.5, 600),
              help="Seconds to reach the --cluster scheduler before giving up (exit 2).")
@click.option("--deadline", default=None, metavar="TIME",
              help="ISO-8601 deadline (e.g. 2024-02-01T23:59, local time); the rubric's late policy applies.")
@click.option("--manifest", default=None, type=click.Path(dir_okay=False, exists=True),
              help="CSV with the columns submission,time (ISO-8601); else the platform's time or a file's "
                   "modification time counts.")
@click.option("--roster", default=None, type=click.Path(dir_okay=False, exists=True),
              help="The course's participants: Moodle participants CSV (or grading worksheet), Canvas gradebook "
                   "export. Students in no submission get a 'no submission' row; kept for later runs.")
def run_command(paths: tuple[str, ...], out_dir: str, jobs: int, rubric_path: str | None,
                sandbox_mode: str, regrade: bool, deadline: str | None, manifest: str | None,
                cluster: str | None = None, connect_timeout: float = 10.0, roster: str | None = None) -> None:
    """Grade PATHS into OUTPUT: .zip or .ipynb files, folders (searched), globs, or a Moodle or
    Canvas "download all submissions" zip (or the same unpacked)."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    console = Console(stderr=True)
    with interrupt.installed(), boundary(console, _KEPT):
        if manifest and not deadline:
            raise UsageError("--manifest needs --deadline: the times only matter against a deadline")
        from grader.batch.late import parse_time
        when = parse_time(deadline, "--deadline") if deadline else None
        if cluster and jobs != 1:
            raise UsageError("-j does not apply with --cluster: the cluster's workers grade one submission each")
        outcome = _run(console, paths, Path(out_dir), jobs, rubric_path, sandbox_mode, regrade,
                       when, Path(manifest) if manifest else None, cluster, connect_timeout,
                       Path(roster) if roster else None)
        interrupt.hold()  # the outputs are complete: a signal from here on only sets the exit code
        late_signal = interrupt.pending()
    if late_signal:
        interrupted_exit(late_signal, console, "The batch had finished; its outputs are complete.")
    not_graded = [r for r in outcome.typed if r.status != "graded"]
    sys.exit(EXIT_NOT_ALL_GRADED if not_graded else EXIT_OK)


_COLOURS = {"graded": "green", "rejected": "yellow", "error": "red"}


def _run(console: Console, paths: tuple[str, ...], out_dir: Path, jobs: int, rubric_path: str | None,
         sandbox_mode: str, regrade: bool, deadline: Any = None, manifest: Path | None = None,
         cluster: str | None = None, connect_timeout: float = 10.0, roster: Path | None = None) -> Any:
    from grader.batch.cluster import executor
    from grader.batch.run import BatchSettings, run_batch
    # Decided once (the rubric read, the sandbox chosen) and handed down to every worker.
    settings = BatchSettings.make(out_dir, rubric_path, jobs, sandbox_mode, regrade, deadline, manifest, roster,
                                  grade_all=executor(cluster, connect_timeout) if cluster else None)
    if settings.sandbox.note:
        console.print(f"[bold yellow]warning:[/] {shown(settings.sandbox.note)}", highlight=False)
    progress = Progress(TextColumn("[bold]grading"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=console, transient=True)
    task = progress.add_task("grading", total=None)

    def started(total: int, skipped: int) -> None:
        progress.update(task, total=total)
        if skipped:
            console.print(f"{skipped} submission(s) already graded and unchanged: kept.")

    def finished(result: SubmissionResult, kept: bool) -> None:
        progress.advance(task)
        if kept:
            return
        colour = _COLOURS.get(result.status, "white")
        codes = ", ".join(dict.fromkeys(f.code for f in result.flags))
        console.print(f"[{colour}]{result.status:>8}[/] {result.points:5.2f}/{result.max_points:g}  "
                      f"{shown(result.submission)}" + (f"  [dim]{shown(codes)}[/]" if codes else ""),
                      highlight=False)

    with progress:
        outcome = run_batch(paths, settings, on_start=started, on_result=finished)
    for note in outcome.notes:
        console.print(f"[bold yellow]not graded:[/] {shown(note)}", highlight=False)
    table = Table(title=f"{len(outcome.typed)} submissions")
    for col in ("submission", "status", "auto points", "flags"):
        table.add_column(col)
    for r in outcome.typed:
        table.add_row(shown(r.submission), f"[{_COLOURS.get(r.status, 'white')}]{shown(r.status)}[/]",
                      f"{r.points:.2f}", shown(", ".join(dict.fromkeys(f.code for f in r.flags))))
    Console().print(table)
    for change in outcome.changes:  # what a re-grade changed; tutors' scores are kept
        moved = ", ".join(f"{q} {old:g} -> {new:g}" for q, (old, new) in change["questions"].items())
        status = f"{change['old_status']} -> {change['status']}" if change["old_status"] != change["status"] else ""
        what = "; ".join(x for x in (status, moved) if x)
        console.print(f"[cyan]changed[/] {shown(change['submission'])}: {shown(what)}", highlight=False)
    console.print(f"Reports: {shown(out_dir)}/<submission>/report.html   Gradebook CSV: "
                  f"{shown(out_dir)}/grades.csv   Summary: {shown(out_dir)}/summary.html", highlight=False)
    return outcome


# Sub-commands that live in their own modules are registered below, one line each.
from grader.cli import tutors as _tutor  # noqa: E402

main.add_command(_tutor.review_command)
main.add_command(_tutor.scores_command)
main.add_command(_tutor.serve_command)
main.add_command(_tutor.export_command)
main.add_command(_tutor.similarity_command)
main.add_command(_tutor.confirm_command)
main.add_command(_tutor.privacy_command)
main.add_command(_tutor.purge_command)
main.add_command(_tutor.verify_command)
main.add_command(_tutor.replay_command)
main.add_command(_tutor.audit_command)
main.add_command(_tutor.mistakes_group)
main.add_command(_tutor.requests_group)
from grader.cli.students import check_command, pack_command, release_command  # noqa: E402

main.add_command(check_command, "check")
main.add_command(pack_command, "pack")
main.add_command(release_command, "release")
from grader.cli.cluster import credentials_command, scheduler_command, worker_command  # noqa: E402

main.add_command(worker_command, "worker")
main.add_command(scheduler_command, "scheduler")
main.add_command(credentials_command, "cluster-credentials")


if __name__ == "__main__":
    main()
