"""Every generator of committed files can say whether what is committed is stale (issue 21 item 5).

The generators with a staleness test elsewhere: make_function_fixtures and make_contract_fixtures
(test_grade_functions.py), make_unseen_fixtures (test_unseen.py), make_unseen3_fixtures
(test_diagnoses.py), make_function_fixtures' single-bug notebooks (test_probes.py),
student_template/build_template.py (test_template.py), examples/make_examples.py
(test_examples.py) and reference/make_solution.py (test_solution.py). The rest are checked here:
each one's ``--check`` passes on the committed files, and fails when one is planted stale.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import make_flag_fixtures
import make_hostile_fixtures
import make_recall_fixtures
import make_report_fixtures
import pytest

ROOT = Path(__file__).resolve().parent.parent

#: generator -> the command that checks it (run from the repository's root).
CHECKS = {
    "make_flag_fixtures": [sys.executable, "tests/make_flag_fixtures.py", "--check"],
    "make_hostile_fixtures": [sys.executable, "tests/make_hostile_fixtures.py", "--check"],
    "make_recall_fixtures": [sys.executable, "tests/make_recall_fixtures.py", "--check"],
    "make_report_fixtures": [sys.executable, "tests/make_report_fixtures.py", "--check"],
    "make_solution": [sys.executable, "-m", "reference.make_solution", "--check"],
}


@pytest.mark.parametrize("generator", sorted(CHECKS))
def test_the_committed_files_are_what_the_generator_makes(generator: str) -> None:
    done = subprocess.run(CHECKS[generator], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{generator} --check: {done.stdout}{done.stderr}"


def _plant(path: Path) -> None:
    """A committed file changed by hand: a notebook's first cell id, else one byte appended."""
    if path.suffix == ".ipynb":
        nb = json.loads(path.read_text(encoding="utf-8"))
        nb["cells"][0]["id"] = "planted"
        path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    else:
        path.write_bytes(path.read_bytes() + b"\0")


def test_the_flag_check_finds_a_planted_change(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    copy = tmp_path / "flags"
    shutil.copytree(make_flag_fixtures.OUT, copy)
    monkeypatch.setattr(make_flag_fixtures, "OUT", copy)
    assert make_flag_fixtures.main(["--check"]) == 0
    _plant(copy / "over_word_limit.ipynb")
    assert make_flag_fixtures.main(["--check"]) == 1
    assert "stale: over_word_limit.ipynb" in capsys.readouterr().out


def test_the_hostile_check_finds_a_planted_change(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    copy = tmp_path / "hostile"
    shutil.copytree(make_hostile_fixtures.HOSTILE, copy)
    monkeypatch.setattr(make_hostile_fixtures, "HOSTILE", copy)
    monkeypatch.setattr(sys, "argv", ["make_hostile_fixtures.py", "--check"])
    assert make_hostile_fixtures.main() == 0
    planted = make_hostile_fixtures.FIXTURES["zip_bomb"].path
    _plant(planted)
    assert make_hostile_fixtures.main() == 1
    assert f"differs: {planted.name}" in capsys.readouterr().out


def test_the_recall_check_finds_a_planted_change(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fixtures = {}
    for key, (path, source) in make_recall_fixtures.FIXTURES.items():
        shutil.copy(path, tmp_path / path.name)
        fixtures[key] = (tmp_path / path.name, source)
    monkeypatch.setattr(make_recall_fixtures, "FIXTURES", fixtures)
    assert make_recall_fixtures.main(["--check"]) == 0
    _plant(next(iter(fixtures.values()))[0])
    assert make_recall_fixtures.main(["--check"]) == 1


def test_the_report_check_finds_a_fixture_in_an_older_result_format(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    copy = tmp_path / "reports"
    shutil.copytree(make_report_fixtures.HERE, copy)
    monkeypatch.setattr(make_report_fixtures, "HERE", copy)
    assert make_report_fixtures.stale() == []
    good = json.loads((copy / "good.json").read_text(encoding="utf-8"))
    del good["recall"]["tries"]  # what an older grader wrote: no count of the LSTM's tries
    (copy / "good.json").write_text(json.dumps(good, indent=1), encoding="utf-8")
    assert make_report_fixtures.stale() == ["good.json: recall.tries"]
