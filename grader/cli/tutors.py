"""The tutors' commands: ``grade review``, ``grade scores``, ``grade serve``, ``grade export``,
``grade similarity``, ``grade confirm``, ``grade audit``, and for personal data and accountability
``grade privacy``, ``grade purge``, ``grade verify``, ``grade replay``; students' regrade requests
``grade requests import|list|replay|resolve``.

Thin click wrappers around grader.tutors (review, scores, export, privacy, retention, verify, regrades),
grader.batch.replay, grader.checks.similarity and the gradebook; they are registered on the
``grade`` group at the end of grader/cli/main.py. Errors go through the one boundary of
grader/cli/common.py.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from grader.cli.common import boundary, output_option, plain, rubric_option, shown

if TYPE_CHECKING:
    from grader.folder.outdir import OutDir
    from grader.tutors.platforms import FillOutcome


@click.command("review")
@output_option()
@click.option("--question", "questions", multiple=True, metavar="ID", help="Only this written question (repeatable).")
@click.option("--group", "groups", multiple=True, metavar="FOLDER", help="Only this submission folder (repeatable).")
@click.option("--to", "to", default=None, type=click.Path(file_okay=False),
              help="Folder for the pages and the sheet (default OUTPUT/review).")
@click.option("--reveal", "reveal", multiple=True, metavar="GROUP",
              help="Show who this group is (its pseudonym; repeatable); needs --reason, and is recorded.")
@click.option("--reason", default="", help="Why the reveal is needed (recorded with your name and the time).")
@click.option("--tutor", default=None, help="Who reviews (default: the login name); recorded with a reveal.")
def review_command(out_dir: str, questions: tuple[str, ...], groups: tuple[str, ...], to: str | None,
                   reveal: tuple[str, ...] = (), reason: str = "", tutor: str | None = None) -> None:
    """Review pages per written question and a scoring sheet (CSV) for the tutors.

    Blind: groups appear under pseudonyms (Group K7F-2QM); --group takes a pseudonym."""
    from grader.tutors.review import write_review
    from grader.tutors.scores import default_tutor
    with boundary():
        outcome = write_review(Path(out_dir), questions, groups, Path(to) if to else None, reveal, reason,
                               tutor or default_tutor())
    click.echo(f"{len(outcome.pages)} review page(s) in {plain(outcome.pages[0].parent if outcome.pages else to)}; "
               f"start at {plain(outcome.index)}")
    click.echo(f"Scoring sheet ({outcome.rows} rows): {plain(outcome.sheet)}")
    click.echo(f"Fill in points and comments, then: grade scores {plain(outcome.sheet)} -o {plain(out_dir)}")


@click.command("scores")
@click.argument("sheet", type=click.Path(dir_okay=False, exists=True))
@output_option()
@click.option("--tutor", default=None, help="Who scored (default: the login name).")
@rubric_option()
def scores_command(sheet: str, out_dir: str, tutor: str | None, rubric_path: str | None) -> None:
    """Import a filled scoring sheet: all rows or none; then render everything again."""
    from grader.folder.outdir import OutDir
    from grader.tutors.scores import import_sheet
    with boundary():
        outcome = import_sheet(Path(sheet), OutDir(Path(out_dir)), tutor, rubric_path)
    click.echo(f"{outcome.scores} score(s) in the sheet; {len(outcome.changed)} new or changed; "
               f"{len(outcome.rewritten)} submission(s) rendered again.")
    for s in outcome.changed:
        click.echo(f"  {plain(s.submission)} {plain(s.question)}: {s.points:g}")


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
@click.option("--allow-partial", is_flag=True,
              help="moodle/canvas: also write students whose written answers are not scored yet (provisional points; "
                   "the comment says what is pending).")
@click.option("--match", "matches", multiple=True, metavar="STUDENT=ROW",
              help="moodle/canvas: match a student (id or e-mail) to the platform's row (its Identifier, e-mail or "
                   "ID) by hand; kept in OUTPUT for later exports ('STUDENT=' removes it). Repeatable.")
@click.option("--feedback-zip", "feedback_zip", default=None, type=click.Path(dir_okay=False),
              help="moodle/canvas: also write the groups' report.html files as a zip the platform imports "
                   "(Moodle: Upload multiple feedback files in a zip; Canvas: Re-upload submissions).")
@rubric_option()
def export_command(out_dir: str, fmt: str, to: str | None, into: str | None, column: str | None,
                   require_complete: bool, rubric_path: str | None, allow_partial: bool = False,
                   matches: tuple[str, ...] = (), feedback_zip: str | None = None) -> None:
    """Per-student grades (with the tutors' scores) as CSV or JSON, or into Moodle's or Canvas's file."""
    from grader.folder.outdir import OutDir
    from grader.tutors.export import export, export_platform
    with boundary():
        _check_export_options(fmt, into, allow_partial, matches, feedback_zip)
        out = OutDir(Path(out_dir))
        _warn_before_export(out, require_complete)
        if fmt in ("moodle", "canvas"):
            assert into is not None
            outcome = export_platform(out, fmt, Path(into), Path(to) if to else None, column,
                                      allow_partial, matches, Path(feedback_zip) if feedback_zip else None)
        else:
            path, text = export(out, fmt, Path(to) if to else None, rubric_path)
    if fmt in ("moodle", "canvas"):
        _report_platform(outcome, fmt, feedback_zip)
    elif path is None:
        click.echo(text, nl=False)
    else:
        click.echo(f"Grades written to {plain(path)}")


def _check_export_options(fmt: str, into: str | None, allow_partial: bool, matches: tuple[str, ...],
                          feedback_zip: str | None) -> None:
    from grader.errors import UsageError
    if fmt in ("moodle", "canvas") and not into:
        where = "Moodle (Download grading worksheet)" if fmt == "moodle" else "Canvas (Grades > Export)"
        raise UsageError(f"--format {fmt} needs --into FILE: the file downloaded from {where}")
    if (into or allow_partial or matches or feedback_zip) and fmt not in ("moodle", "canvas"):
        raise UsageError("--into, --allow-partial, --match and --feedback-zip are for --format moodle or canvas")


def _warn_before_export(out: OutDir, require_complete: bool) -> None:
    """On the standard error: what is not finished (with --require-complete: exit 1, nothing
    written), then every automatic question's points set by hand. Silent where ``out`` holds no
    results (the export itself then says what is wrong)."""
    from rich.console import Console

    from grader.errors import UsageError
    from grader.tutors.export import incomplete, list_overrides
    err = Console(stderr=True)
    try:
        results = out.results()
    except UsageError:
        return
    missing = incomplete(results)
    if missing:
        err.print(f"[bold yellow]warning:[/] grading is not complete ({len(missing)}):", highlight=False)
        for line in missing:
            err.print(f"  {shown(line)}", highlight=False, soft_wrap=True)
        if require_complete:
            err.print("Nothing was written (--require-complete).", highlight=False)
            sys.exit(1)
    overridden = list_overrides(out, results)
    if overridden:
        err.print(f"Automatic points set by hand ({len(overridden)}):", highlight=False)
        for line in overridden:
            err.print(f"  {shown(line)}", highlight=False, soft_wrap=True)


def _report_platform(outcome: FillOutcome, fmt: str, feedback_zip: str | None) -> None:
    """What an export into a platform's file did (the file itself on the standard output where
    no file was written); exit 1 where students were left out."""
    from grader.tutors.export import platform_summary
    to_stdout = outcome.path is None
    if to_stdout:
        sys.stdout.buffer.write(outcome.text)
        sys.stdout.flush()
    for line in platform_summary(outcome, fmt, feedback_zip):
        click.echo(plain(line), err=to_stdout)
    if outcome.cannot:
        sys.exit(1)


@click.command("serve")
@output_option()
@click.option("--port", default=8011, show_default=True, type=click.IntRange(0, 65535),
              help="Port on 127.0.0.1 (0: any free one).")
@click.option("--tutor", default=None,
              help="Who scores (default: the login name): recorded with every save, and nothing a browser "
                   "sends changes it. Tutors scoring at the same time each run their own server (--port).")
@click.option("--submissions", default=None, type=click.Path(file_okay=False, exists=True),
              help="The folder of the submitted files as graded: the regrade requests' replays find them there.")
@rubric_option()
def serve_command(out_dir: str, port: int, tutor: str | None, rubric_path: str | None,
                  submissions: str | None = None) -> None:
    """Score the written answers in the browser (a local web app on 127.0.0.1)."""
    from grader.errors import UsageError
    from grader.tutors.scores import default_tutor
    from grader.tutors.serve import clean_tutor, serve
    with boundary():
        name = clean_tutor(tutor if tutor is not None else default_tutor())
        if name is None:
            raise UsageError("--tutor: a name of 1 to 60 printable characters, please")
        serve(Path(out_dir), port, name, click.echo, rubric_path, Path(submissions) if submissions else None)


@click.command("similarity")
@output_option()
@rubric_option()
def similarity_command(out_dir: str, rubric_path: str | None) -> None:
    """Compare every pair of groups again (code and answers) and rewrite summary.html."""
    from grader.batch.run import bounded_similarity
    from grader.folder.outdir import OutDir
    from grader.rubric import load_rubric
    from grader.tutors.scores import sync_outputs
    with boundary():
        out = OutDir(Path(out_dir))
        # each group's part under its submission's budget, as in the batch
        data = bounded_similarity(list(out.results()), load_rubric(rubric_path).budget)
        out.write_similarity(data)
        sync_outputs(out, rubric_path)
    above = [p for p in data["pairs"] if p["score"] >= data["threshold"]]
    click.echo(f"{data['pairs_compared']} pair(s) compared; {len(above)} at or above {data['threshold']:.0%}.")
    for p in data["pairs"][:5]:
        click.echo(f"  {p['score']:.0%}  {plain(p['a_label'])}  ~  {plain(p['b_label'])}")


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
    from grader.folder.outdir import OutDir
    from grader.tutors.scores import confirm_members
    with boundary():
        done = confirm_members(OutDir(Path(out_dir)), folder, student_ids, tutor, rubric_path, time.time())
    for sid in student_ids:
        click.echo(f"{'confirmed' if sid in done else 'already confirmed'}: {plain(sid)} in {plain(folder)}")


@click.command("privacy")
@output_option()
def privacy_command(out_dir: str) -> None:
    """What personal data the output folder holds, where, since when, and the purges done."""
    import datetime as dt

    from grader.folder.outdir import OutDir
    from grader.tutors.retention import TABLE_PERSONAL, inventory

    def day(t: float | None) -> str:
        return dt.datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M") if t else "-"
    with boundary():
        inv = inventory(OutDir(Path(out_dir)))
    click.echo(f"Personal data in {inv.folder} (kept until `grade purge`; nothing expires by itself)")
    click.echo("\nFiles:")
    for item in inv.items:
        click.echo(f"  {plain(item.where)}  [{item.count} item(s), {day(item.oldest)} .. {day(item.newest)}]")
        click.echo(f"      holds: {item.holds}")
        click.echo(f"      personal: {item.personal}")
    if inv.tables:
        click.echo("\nGradebook tables (gradebook.sqlite):")
        for table, columns in inv.tables.items():
            click.echo(f"  {table} ({inv.rows.get(table, '?')} rows): {', '.join(columns)}")
            click.echo(f"      personal: {TABLE_PERSONAL.get(table, 'none')}")
    click.echo(f"\nReveals of blind groups recorded: {inv.reveals}")
    click.echo(f"Regrade requests recorded: {inv.regrade_requests} ({inv.open_requests} open)")
    click.echo(f"Purges recorded: {len(inv.deletions)}")
    for d in inv.deletions:
        click.echo(f"  {day(d['deleted_at'])} by {plain(d['deleted_by'])}: {plain(d['scope'])}: "
                   f"{plain(d['removed_json'])}")
    click.echo("\nOutside this folder:")
    for line in inv.outside:
        click.echo(f"  {plain(line)}")


@click.command("purge")
@output_option()
@click.option("--before", default=None, metavar="DATE",
              help="Remove the submissions last written before DATE (YYYY-MM-DD).")
@click.option("--student", default=None, metavar="ID", help="Remove the submission(s) of this student's group.")
@click.option("--by", "by", default=None, help="Who purges (default: the login name); recorded.")
@click.option("--yes", is_flag=True, help="Do not ask; purge.")
@rubric_option()
def purge_command(out_dir: str, before: str | None, student: str | None, by: str | None, yes: bool,
                  rubric_path: str | None) -> None:
    """Remove personal data older than a date, or of one student's group; writes a deletion log."""
    from grader.checks.secret import load_secret
    from grader.folder.outdir import OutDir
    from grader.tutors.retention import purge
    from grader.tutors.scores import default_tutor
    if not yes:
        click.confirm("This deletes submissions' folders and gradebook rows for good. Go on?", abort=True)
    with boundary():
        outcome = purge(OutDir(Path(out_dir)), load_secret(create=False), by or default_tutor(), before, student,
                        rubric_path)
    click.echo(f"{outcome.folders} submission(s) purged: {outcome.removed}")
    click.echo(f"Logged in {out_dir}/deletion-log.jsonl and the gradebook (no personal data in either).")


@click.command("verify")
@output_option()
def verify_command(out_dir: str) -> None:
    """Check the gradebook's hash chain and every result.json against it; exit 1 on any problem."""
    from grader.checks.secret import load_secret
    from grader.folder.outdir import OutDir
    from grader.tutors.verify import verify
    with boundary():
        verdict = verify(OutDir(Path(out_dir)), load_secret(create=False))
    if verdict.ok:
        click.echo(f"verified: {verdict.entries} ledger entries, {verdict.rows} rows, {verdict.results} result.json "
                   "files: nothing was edited outside grade")
        return
    click.echo(f"NOT verified: {len(verdict.problems)} problem(s); the first row edited outside grade:")
    for i, line in enumerate(verdict.problems):
        click.echo(f"  {'first: ' if i == 0 else ''}{plain(line)}")
    sys.exit(1)


@click.command("replay")
@click.argument("submission", type=click.Path(dir_okay=False, exists=True))
@output_option()
@rubric_option()
def replay_command(submission: str, out_dir: str, rubric_path: str | None) -> None:
    """Grade SUBMISSION again from its result's manifest; prints `same` or each difference (exit 1)."""
    import os

    from grader.batch.replay import replay
    from grader.folder.outdir import OutDir
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with boundary():
        outcome = replay(Path(submission), OutDir(Path(out_dir)), rubric_path)
    for note in outcome.notes:
        click.echo(f"note: {plain(note)}")
    if outcome.same:
        click.echo(f"same: {plain(outcome.folder)}")
        return
    click.echo(f"differs: {plain(outcome.folder)}")
    for line in outcome.differences:
        click.echo(f"  {plain(line)}")
    sys.exit(1)



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
    from grader.tutors.audit import run_audit
    with boundary():
        code = run_audit(functions, per_function, pipeline, verbose, rubric_path, click.echo)
    sys.exit(code)


@click.group("mistakes")
def mistakes_group() -> None:
    """Mistakes learned from the batch: groups of failing submissions that returned the same."""


@mistakes_group.command("export")
@click.argument("to", metavar="FILE.toml", type=click.Path(dir_okay=False))
@output_option()
@rubric_option()
def mistakes_export_command(to: str, out_dir: str, rubric_path: str | None) -> None:
    """Write the groups tutors named (grade serve, /mistakes) as [[learned_mistakes]] entries that
    the next term's rubric loads with [learned] files = ["FILE.toml"]."""
    from grader.folder.outdir import OutDir, export_learned
    with boundary():
        count = export_learned(OutDir(Path(out_dir)), Path(to), rubric_path)
    click.echo(f"{count} named group(s) written to {plain(to)}; load them with [learned] files = "
               f"[\"{plain(Path(to).name)}\"] in the next term's rubric")


@click.group("requests")
def requests_group() -> None:
    """Students' regrade requests: import, list (blind), replay, resolve.

    Each request is matched to a group by the student's id or e-mail; the list shows the group's
    pseudonym, never who asked. The group's report shows the outcome and the reason."""


@requests_group.command("import")
@click.argument("file", type=click.Path(dir_okay=False, exists=True))
@output_option()
@click.option("--tutor", default=None, help="Who records them (default: the login name).")
def requests_import_command(file: str, out_dir: str, tutor: str | None) -> None:
    """Record the requests of a CSV (the platform's export or your own): columns for the student id
    and/or e-mail, question, text, date. All rows or none."""
    from grader.checks.secret import load_secret
    from grader.folder.outdir import OutDir
    from grader.tutors.regrades import import_requests
    from grader.tutors.scores import default_tutor
    with boundary():
        outcome = import_requests(Path(file), OutDir(Path(out_dir)), load_secret(create=False),
                                  tutor or default_tutor())
    click.echo(f"{len(outcome.recorded)} request(s) recorded; {outcome.already} recorded before.")
    for request_id, label, question in outcome.recorded:
        click.echo(f"  #{request_id} {plain(label)} {plain(question)}")
    click.echo(f"The queue: grade requests list -o {plain(out_dir)}")


@requests_group.command("list")
@output_option()
@click.option("--open", "open_only", is_flag=True, help="Only the requests not resolved yet.")
def requests_list_command(out_dir: str, open_only: bool) -> None:
    """The queue, blind: each request under its group's pseudonym, with its replay and outcome."""
    from grader.checks.secret import load_secret
    from grader.folder.outdir import OutDir
    from grader.tutors.regrades import queue
    with boundary():
        items = queue(OutDir(Path(out_dir)), load_secret(create=False), open_only)
    if not items:
        click.echo("No regrade requests" + (" open." if open_only else "."))
        return
    for i in items:
        now = f"{i.points:g} / {i.max_points:g}" if i.points is not None and i.max_points is not None else "-"
        click.echo(f"#{i.id} {plain(i.label)} {plain(i.question)} (now {now}), asked {i.requested}: {i.outcome}")
        click.echo(f"    request: {plain(i.text)}")
        if i.replay is None:
            click.echo(f"    replay: not run (grade requests replay {i.id} -o {plain(out_dir)} --submissions DIR)")
        else:
            click.echo(f"    replay ({i.replay['at']}): {i.replay['state']}")
            for line in [*i.replay["lines"], *i.replay["notes"]]:
                click.echo(f"      {plain(line)}")
        if i.outcome != "open":
            change = (f" {i.old_points:g} -> {i.new_points:g} points;" if i.outcome == "upheld"
                      and i.old_points is not None and i.new_points is not None else "")
            click.echo(f"    {i.outcome} by {plain(i.resolved_by)} at {i.decided}:{change} {plain(i.reason)}")


@requests_group.command("replay")
@click.argument("request_id", type=click.IntRange(1))
@output_option()
@click.option("--submissions", "where", required=True, type=click.Path(exists=True),
              help="The submitted file, or the folder that holds the submissions as they were graded.")
@rubric_option()
def requests_replay_command(request_id: int, out_dir: str, where: str, rubric_path: str | None) -> None:
    """Grade the request's submission again from its manifest; keeps `same` or the differences beside
    the request (exit 1 when they differ, 2 when it cannot be replayed here)."""
    import os

    from grader.batch.replay import replay_request
    from grader.checks.secret import load_secret
    from grader.folder.outdir import OutDir
    from grader.tutors.regrades import queue
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from grader.batch.replay import ReplayRefused
    with boundary():
        out = OutDir(Path(out_dir))
        try:
            outcome = replay_request(out, request_id, Path(where), rubric_path)
        except ReplayRefused:  # kept beside the request; printed below as the queue shows it (blind)
            outcome = None
        item = next(i for i in queue(out, load_secret(create=False)) if i.id == request_id)
    assert item.replay is not None
    click.echo(f"#{request_id} {plain(item.label)}: {item.replay['state']}")
    for line in [*item.replay["lines"], *item.replay["notes"]]:  # blind: the group's names replaced
        click.echo(f"  {plain(line)}")
    if outcome is None:
        sys.exit(2)
    if not outcome.same:
        sys.exit(1)


@requests_group.command("resolve")
@click.argument("request_id", type=click.IntRange(1))
@output_option()
@click.option("--upheld", "points", default=None, metavar="POINTS",
              help="Uphold it with these new points for the question.")
@click.option("--declined", is_flag=True, help="Decline it.")
@click.option("--reason", required=True, help="Why (the students read it in their report).")
@click.option("--tutor", default=None, help="Who resolves (default: the login name).")
def requests_resolve_command(request_id: int, out_dir: str, points: str | None, declined: bool, reason: str,
                             tutor: str | None) -> None:
    """Resolve a request: --upheld POINTS or --declined, with --reason; the group's report shows it."""
    from grader.checks.secret import load_secret
    from grader.errors import UsageError
    from grader.folder.outdir import OutDir
    from grader.tutors.regrades import resolve
    from grader.tutors.scores import default_tutor
    with boundary():
        if (points is None) == (not declined):
            raise UsageError("give one outcome: --upheld POINTS or --declined")
        done = resolve(OutDir(Path(out_dir)), load_secret(create=False), request_id,
                       "declined" if declined else "upheld", reason, tutor or default_tutor(), points or "")
    change = f": {done.old_points:g} -> {done.new_points:g} points" if done.new_points is not None else ""
    click.echo(f"#{done.id} {plain(done.label)} {plain(done.question)} {done.outcome}{change}; the report shows it.")
