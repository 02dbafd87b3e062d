"""The project as a tutor installs it: a wheel in a fresh virtual environment, used from a folder
that has nothing to do with the checkout. Catches data read from the source tree instead of the
package (the rubric, the template, the model answers), which an editable install hides."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.builders import GOOD_NAME, ROOT, solution, write_notebook

# One process builds the wheel (module fixture) for both tests: one xdist group under --dist loadgroup.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("wheel")]


def _run(argv: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: int = 900) -> str:
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(argv)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # Build from a copy: an in-tree build leaves build/ and *.egg-info in the checkout.
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md", "grader", "reference", "rubrics", "student_template"):
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy2
        copy(ROOT / name, source / name, **({"ignore": shutil.ignore_patterns("__pycache__")}
                                            if (ROOT / name).is_dir() else {}))
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
          str(source)], cwd=out)
    (found,) = out.glob("*.whl")
    return found


def test_the_wheel_carries_what_the_grader_reads(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in ("grader/rubrics/sheet11.toml", "grader/template/sheet11.ipynb", "grader/template/sheet11_check.py",
                   "grader/template/prose/instructions.md", "grader/template/prose/function-train_recall.py",
                   "reference/answers.toml", "grader/py.typed", "grader/templates/report.html.j2",
                   "grader/static/app.js"):
        assert needed in names, f"{needed} is missing from the wheel"
    # grade release builds the notebook from the prose files next to build_template.py: all of them
    prose = {f"grader/template/prose/{p.name}" for p in (ROOT / "student_template" / "prose").iterdir()}
    assert prose <= names, sorted(prose - names)
    assert not any(n.startswith(("tests/", "examples/")) for n in names)


def test_a_wheel_install_grades_from_an_unrelated_folder(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path)
    # --no-compile: byte-compiling torch's thousands of modules is most of the install's time and
    # none of what this test is about (Python compiles what the grader imports when it runs).
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-compile"]
    _run([*pip, "torch==2.13.0"], cwd=tmp_path)  # first: the CPU build on this disk, never a CUDA one
    _run([*pip, str(wheel)], cwd=tmp_path)
    elsewhere = tmp_path / "course"
    elsewhere.mkdir()
    notebook = write_notebook(solution(), elsewhere / f"{GOOD_NAME}.ipynb")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["OMP_NUM_THREADS"] = "1"
    _run([str(venv / "bin" / "grade"), notebook.name, "-o", "graded"], cwd=elsewhere, env=env)
    result = json.loads((elsewhere / "graded" / GOOD_NAME / "result.json").read_text(encoding="utf-8"))
    assert result["status"] == "graded"
    # builders.solution() makes train_recall fail at once (no training here); everything else is
    # the reference solution and must earn every point, as from the checkout.
    checks = [c for q in result["questions"].values() for c in q.get("checks", [])]
    assert checks and all(c["passed"] for c in checks if c["function"] != "train_recall"), \
        [c["name"] for c in checks if not c["passed"]]
    assert (elsewhere / "graded" / GOOD_NAME / "report.html").is_file()
    shutil.rmtree(venv)
