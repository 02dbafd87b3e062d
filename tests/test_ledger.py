"""A history that shows tampering: the gradebook's hash chain and `grade verify` (grader/folder/ledger.py)."""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from click.testing import CliRunner
from test_privacy import FOLDERS, graded_course

from grader.checks.secret import load_secret
from grader.cli.main import main
from grader.folder.outdir import OutDir
from grader.tutors.scores import save_score
from grader.tutors.verify import verify


def scored_course(tmp_path: Path) -> Path:
    out = graded_course(tmp_path / "out")
    for points in ("0.25", "0.5"):
        save_score(OutDir(out), FOLDERS[0], "11.2.1", points, "ok", "ada", None)
    save_score(OutDir(out), FOLDERS[1], "11.2.2", "0.75", "good", "bob", None)
    return out


def _sql(out: Path, statement: str, *args: object) -> None:
    db = sqlite3.connect(out / "gradebook.sqlite")
    db.execute(statement, args)
    db.commit()
    db.close()


def test_an_untouched_folder_verifies(tmp_path: Path) -> None:
    out = scored_course(tmp_path)
    verdict = verify(OutDir(out), load_secret())
    assert verdict.ok, verdict.problems
    assert verdict.entries >= 3 + 3 + 3 + 1 and verdict.results == 3
    run = CliRunner().invoke(main, ["verify", "-o", str(out)])
    assert run.exit_code == 0 and "verified" in run.output


def test_a_score_history_row_edited_with_sqlite_is_named(tmp_path: Path) -> None:
    out = scored_course(tmp_path)
    _sql(out, "UPDATE score_history SET new_points=0.75 WHERE id=2")
    verdict = verify(OutDir(out), load_secret())
    assert verdict.problems[0].startswith("score_history row 2 (11.2.1 of 'Lovelace_2571234_Turing_2579876', "
                                          "0.75 points by ada) was edited outside grade")
    run = CliRunner().invoke(main, ["verify", "-o", str(out)])
    assert run.exit_code == 1 and "first: score_history row 2" in run.output


def test_a_manual_score_and_a_result_edited_together_are_named(tmp_path: Path) -> None:
    # a manual score edited: the chained history and result.json both disagree with it
    out = scored_course(tmp_path)
    _sql(out, "UPDATE manual_scores SET points=0.25 WHERE folder=? AND question='11.2.2'", FOLDERS[1])
    problems = verify(OutDir(out), load_secret()).problems
    assert any("manual_scores row of 11.2.2 of 'Hopper_2570001_Dijkstra_2570002'" in p for p in problems)
    assert any("Hopper_2570001_Dijkstra_2570002/result.json differs from the gradebook: 11.2.2" in p
               for p in problems)


def test_a_result_json_edited_by_hand_is_named(tmp_path: Path) -> None:
    out = scored_course(tmp_path)
    path = out / FOLDERS[1] / "result.json"
    data = json.loads(path.read_text())
    data["questions"]["11.4.a"]["points"] = 0.0
    path.write_text(json.dumps(data))
    problems = verify(OutDir(out), load_secret()).problems
    assert problems == ["Hopper_2570001_Dijkstra_2570002/result.json differs from the gradebook: "
                        "11.4.a 1 (auto) -> 0 (auto)"]


def test_rows_added_deleted_or_cut_off_the_chain_are_named(tmp_path: Path) -> None:
    out = scored_course(tmp_path)
    _sql(out, "INSERT INTO score_history (folder, question, submission, old_points, new_points, old_comment, "
              "new_comment, tutor, changed_at, sheet) VALUES ('X', '11.1.1', 'X.zip', NULL, 0.5, NULL, '', 'eve', 1, 's')")
    assert any("score_history row 4" in p and "added outside grade" in p
               for p in verify(OutDir(out), load_secret()).problems)
    out2 = scored_course(tmp_path / "two")
    _sql(out2, "DELETE FROM run_results WHERE folder=?", FOLDERS[2])
    assert any("run_results row" in p and "deleted outside grade" in p
               for p in verify(OutDir(out2), load_secret()).problems)
    out3 = scored_course(tmp_path / "three")
    _sql(out3, "DELETE FROM ledger WHERE seq=(SELECT MAX(seq) FROM ledger)")
    _sql(out3, "DELETE FROM score_history WHERE id=3")
    _sql(out3, "DELETE FROM manual_scores WHERE folder=?", FOLDERS[1])
    assert any("entries at the end were removed" in p for p in verify(OutDir(out3), load_secret()).problems)


def test_the_ledger_itself_edited_breaks_the_chain(tmp_path: Path) -> None:
    out = scored_course(tmp_path)
    _sql(out, "UPDATE score_history SET new_points=0.75 WHERE id=2")
    db = sqlite3.connect(out / "gradebook.sqlite")
    row = db.execute("SELECT * FROM score_history WHERE id=2").fetchone()
    names = [d[0] for d in db.execute("SELECT * FROM score_history").description]
    db.close()
    from grader.folder.ledger import row_digest
    _sql(out, "UPDATE ledger SET digest=? WHERE tbl='score_history' AND ref='[2]'",
         row_digest("score_history", dict(zip(names, row))))
    problems = verify(OutDir(out), load_secret()).problems
    assert "does not follow from the one before" in problems[0]


def test_a_gradebook_from_before_the_ledger_is_sealed_as_it_is(tmp_path: Path) -> None:
    out = scored_course(tmp_path)
    _sql(out, "DELETE FROM ledger")
    (out / "gradebook.sqlite.ledger-head").unlink()
    save_score(OutDir(out), FOLDERS[1], "11.2.1", "0.5", "", "bob", None)  # the first write seals what is there
    assert verify(OutDir(out), load_secret()).ok
