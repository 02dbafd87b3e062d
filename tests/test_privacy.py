"""Blind scoring, recorded reveals, the inventory and the purge (grader/tutors/privacy.py)."""
from __future__ import annotations

import csv
import io
import json
import sqlite3
from pathlib import Path

import pytest
from test_scores import MEMBERS, _write_sheet, fake_output, fake_result

from grader.checks.secret import load_secret
from grader.errors import UsageError
from grader.folder.outdir import OutDir
from grader.result import SubmissionResult
from grader.tutors.privacy import blind_view, pseudonym, pseudonyms
from grader.tutors.retention import inventory, purge
from grader.tutors.review import write_review
from grader.tutors.scores import import_sheet

FOLDERS = ["Lovelace_2571234_Turing_2579876", "Hopper_2570001_Dijkstra_2570002", "Noether_2570003_Goedel_2570004"]


def _identities(members: list[tuple[str, str, str]]) -> list[str]:
    """Every name, name part, id and e-mail of a group: what must not be found."""
    out = []
    for name, sid, email in members:
        out += [name, *name.split(), sid, email]
    return out


def graded_course(out: Path) -> Path:
    """An output folder as a batch leaves it: result files, grades.csv, and the gradebook's rows.
    The first group wrote its names, ids and an e-mail into an answer too."""
    one = fake_result(FOLDERS[0], MEMBERS[0], answer="By Ada Lovelace (2571234, ada@uni.example): an RNN keeps "
                                                     "a hidden state; Turing agrees.")
    results = [one, fake_result(FOLDERS[1], MEMBERS[1]), fake_result(FOLDERS[2], MEMBERS[2], status="error")]
    fake_output(out, results)
    with OutDir(out).gradebook() as book:
        run = book.start_run(results[0]["rubric_sha256"], len(results))
        typed = [SubmissionResult.from_json(r) for r in results]
        for r in typed:
            book.record(run, r)
        book.record_run(run, typed)
    return out


def _files_text(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _found(root: Path, needles: list[str]) -> list[str]:
    """Where the needles are, as the grader stores them (case-sensitive: a lowercase "ada" is
    also a run of hexadecimal digits in any digest)."""
    hits = []
    for name, data in _files_text(root).items():
        for needle in needles:
            if needle.encode() in data or needle.lower() in name.lower():
                hits.append(f"{needle} in {name}")
    return hits


def test_a_pseudonym_is_stable_short_and_keyed() -> None:
    a = pseudonym(b"k" * 32, FOLDERS[0])
    assert a == pseudonym(b"k" * 32, FOLDERS[0]) and a.startswith("Group ") and len(a) == len("Group K7F-2QM")
    assert a != pseudonym(b"j" * 32, FOLDERS[0])  # another secret, another name: meaningless without it
    assert len(set(pseudonyms(b"k" * 32, [f"f{i}" for i in range(500)]).values())) == 500


def test_blind_pages_and_sheet_hold_no_name_id_or_email(tmp_path: Path) -> None:
    out = graded_course(tmp_path / "out")
    outcome = write_review(out)
    secret = load_secret()
    everyone = [x for members in MEMBERS[:3] for x in _identities(members)]
    assert _found(out / "review", everyone + FOLDERS) == []
    page = (out / "review" / "11.2.1.html").read_text()
    assert pseudonym(secret, FOLDERS[0]) in page and "[hidden]" in page  # the answer's names were replaced
    assert "a hidden state" in page  # the rest of the answer is there
    rows = list(csv.DictReader(io.StringIO(outcome.sheet.read_text())))
    assert {r["folder"] for r in rows} == {pseudonym(secret, FOLDERS[0]), pseudonym(secret, FOLDERS[1])}
    # the blind sheet imports: the pseudonyms are mapped back to the folders
    row = next(r for r in rows if r["question"] == "11.2.1" and r["folder"] == pseudonym(secret, FOLDERS[1]))
    done = import_sheet(_write_sheet(tmp_path / "s.csv", [dict(row, points="0.5")]), OutDir(out), tutor="ada")
    assert [(s.folder, s.points) for s in done.changed] == [(FOLDERS[1], 0.5)]
    assert _found(out / "review", everyone + FOLDERS) == []  # the refreshed index too


def test_the_blind_view_fails_without_redaction(tmp_path: Path) -> None:
    # the check above can fail: the unblinded result does hold the names
    data = fake_result(FOLDERS[0], MEMBERS[0], answer="Ada Lovelace wrote this")
    assert "Lovelace" in json.dumps(data)
    blind = json.dumps(blind_view(data, "Group AAA-BBB"))
    assert "Lovelace" not in blind and "2571234" not in blind and "ada@uni.example" not in blind


def test_a_reveal_needs_a_reason_and_is_recorded(tmp_path: Path) -> None:
    out = graded_course(tmp_path / "out")
    label = pseudonym(load_secret(), FOLDERS[1])
    with pytest.raises(UsageError, match="--reason"):
        write_review(out, reveal=[label], tutor="bob")
    write_review(out, reveal=[label], reason="student asked about a plagiarism flag", tutor="bob")
    page = (out / "review" / "11.2.1.html").read_text()
    assert "Grace Hopper" in page or "Hopper" in page  # the revealed group only
    assert "Lovelace" not in page
    with OutDir(out).gradebook() as book:
        reveals = book.table_rows("reveals")
    assert [(r["folder"], r["tutor"], r["reason"]) for r in reveals] == [
        (FOLDERS[1], "bob", "student asked about a plagiarism flag")]
    assert reveals[0]["revealed_at"] > 0


def test_the_inventory_names_files_tables_and_dates(tmp_path: Path) -> None:
    out = graded_course(tmp_path / "out")
    inv = inventory(OutDir(out))
    wheres = [i.where for i in inv.items]
    assert any(w.startswith("<submission folder>") for w in wheres) and "grades.csv" in wheres
    assert inv.items[0].count == 3 and inv.items[0].oldest is not None
    assert "result_json" in inv.tables["results"] and inv.rows["results"] == 3
    assert any("submitted files" in line for line in inv.outside)


def _gradebook_dump(out: Path) -> str:
    db = sqlite3.connect(out / "gradebook.sqlite")
    try:
        return "\n".join(db.iterdump())
    finally:
        db.close()


def test_a_purge_by_student_leaves_none_of_the_groups_data(tmp_path: Path) -> None:
    out = graded_course(tmp_path / "out")
    write_review(out)
    (out / "export.csv").write_text("student_id,name\n2571234,Ada Lovelace\n")
    gone = _identities(MEMBERS[0])
    assert _found(out, gone)  # there before
    outcome = purge(OutDir(out), load_secret(), "dpo", student="2579876")
    assert outcome.folders == 1
    assert _found(out, gone + [FOLDERS[0]]) == []  # every file, the gradebook's bytes and its WAL
    dump = _gradebook_dump(out)
    assert not [x for x in gone + [FOLDERS[0]] if x in dump]
    assert "Hopper" in dump and (out / FOLDERS[1] / "result.json").exists()  # the others are kept
    log = [json.loads(line) for line in (out / "deletion-log.jsonl").read_text().splitlines()]
    assert log[0]["by"] == "dpo" and log[0]["removed"]["submission_folders"] == 1
    assert "2579876" not in (out / "deletion-log.jsonl").read_text()
    from grader.tutors.verify import verify
    assert verify(OutDir(out), load_secret()).ok  # the chain was re-sealed, and says so in deletions


def test_a_purge_before_a_date(tmp_path: Path) -> None:
    out = graded_course(tmp_path / "out")
    assert purge(OutDir(out), load_secret(), "dpo", before="2000-01-01").folders == 0
    outcome = purge(OutDir(out), load_secret(), "dpo", before="2999-01-01")
    assert outcome.folders == 3
    everyone = [x for members in MEMBERS[:3] for x in _identities(members)]
    assert _found(out, everyone + FOLDERS) == []
    assert not [x for x in everyone + FOLDERS if x in _gradebook_dump(out)]
    assert not (out / "grades.csv").exists()


def test_a_purge_refuses_a_gradebook_that_does_not_verify(tmp_path: Path) -> None:
    from grader.errors import OutputFolderError
    out = graded_course(tmp_path / "out")
    db = sqlite3.connect(out / "gradebook.sqlite")
    db.execute("UPDATE results SET points=10 WHERE folder=?", (FOLDERS[1],))
    db.commit()
    db.close()
    with pytest.raises(OutputFolderError, match="does not verify"):
        purge(OutDir(out), load_secret(), "dpo", before="2999-01-01")
    assert (out / FOLDERS[1]).exists()


def test_the_commands_print_the_inventory_and_purge(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from grader.cli.main import main
    out = graded_course(tmp_path / "out")
    shown = CliRunner().invoke(main, ["privacy", "-o", str(out)])
    assert shown.exit_code == 0 and "result_json" in shown.output and "Purges recorded: 0" in shown.output
    bad = CliRunner().invoke(main, ["purge", "-o", str(out), "--before", "soon", "--yes"])
    assert bad.exit_code == 2 and "YYYY-MM-DD" in bad.output
    done = CliRunner().invoke(main, ["purge", "-o", str(out), "--student", "2570001", "--yes", "--by", "dpo"])
    assert done.exit_code == 0 and "1 submission(s) purged" in done.output
    again = CliRunner().invoke(main, ["privacy", "-o", str(out)])
    assert "Purges recorded: 1" in again.output and "by dpo" in again.output and "2570001" not in again.output


def test_a_blind_view_of_a_group_whose_folder_is_called_error_keeps_the_statuses_and_reads_as_a_result(
        tmp_path: Path) -> None:
    # The folder's name is one of the group's identities, and also the grader's word for a status.
    data = fake_result("error", [("Graded Manual", "2571234", "pending@uni.example")])
    view = blind_view(data, "Group K7F-2QM")
    assert view["status"] == "graded"
    assert {q["status"] for q in view["questions"].values()} == {q["status"] for q in data["questions"].values()}
    shown = SubmissionResult.from_json(view)
    assert shown.submission == "Group K7F-2QM" and shown.group == ()
    out = fake_output(tmp_path / "out", [data])
    outcome = write_review(out)  # reads every blind view back as a result
    assert outcome.rows > 0 and "2571234" not in outcome.sheet.read_text(encoding="utf-8")
