"""Builders for test notebooks and submissions: start from the template or the solution and
change one thing, so every fixture says what it is about."""
from __future__ import annotations

import copy
import dataclasses
import importlib.util
import io
import os
import shutil
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import nbformat

from grader.batch.run import BatchOutcome
from grader.grade import Context
from grader.kernel.sandbox import choose_sandbox
from grader.rubric import load_rubric

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "student_template" / "sheet11.ipynb"
SOLUTION = ROOT / "reference" / "solution.ipynb"
FILES = Path(__file__).resolve().parent / "files"
GOOD_NAME = "Lovelace_2571234_Turing_2579876"


def template() -> Any:
    return nbformat.read(str(TEMPLATE), as_version=4)


def solution(fast: bool = True) -> Any:
    """The reference solution; ``fast`` drops the try-it cells and makes train_recall a stub
    that fails at once, so a test that is about something else does not train models."""
    nb = nbformat.read(str(SOLUTION), as_version=4)
    if fast:
        nb.cells = [c for c in nb.cells if not any(t.startswith("try-") for t in c.metadata.get("tags", []))]
        set_function(nb, "train_recall",
                     "def train_recall(cell, seq_len, n_classes, seed):\n"
                     "    raise NotImplementedError('skipped in this test')\n")
    return nb


def cell_with_tag(nb: Any, tag: str) -> Any:
    for cell in nb.cells:
        if tag in cell.metadata.get("tags", []):
            return cell
    raise KeyError(tag)


def set_function(nb: Any, name: str, source: str) -> Any:
    """Replace the code cell of ``name`` (tag ``function-<name>``); add the definition after it,
    so a solution whose module cell defines several functions keeps the others."""
    cell = cell_with_tag(nb, f"function-{name}")
    index = nb.cells.index(cell)
    nb.cells.insert(index + 1, nbformat.v4.new_code_cell(source))
    return nb


def set_answer(nb: Any, qid: str, markdown: str) -> Any:
    cell_with_tag(nb, f"answer-{qid}").source = markdown
    return nb


def set_group(nb: Any, members: Iterable[tuple[str, str, str]]) -> Any:
    entries = ", ".join(f'{{"name": {n!r}, "student_id": {i!r}, "email": {e!r}}}' for n, i, e in members)
    cell_with_tag(nb, "group").source = f"GROUP = [{entries}]"
    return nb


def add_code(nb: Any, source: str, index: int | None = None) -> Any:
    cell = nbformat.v4.new_code_cell(source)
    nb.cells.insert(len(nb.cells) if index is None else index, cell)
    return nb


def write_notebook(nb: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
    return path


def notebook_bytes(nb: Any) -> bytes:
    return nbformat.writes(nb).encode("utf-8")


def write_zip(path: Path, entries: dict[str, bytes | str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    path.write_bytes(buf.getvalue())
    return path


def quick_context(sandbox: str = "auto", **limits: Any) -> Context:
    """A grading context whose limits are shortened for tests (e.g. cell_timeout=5)."""
    rubric = load_rubric()
    if limits:
        rubric = dataclasses.replace(rubric, limits=dataclasses.replace(rubric.limits, **limits))
    return Context.create(rubric, choose_sandbox(sandbox))


def copy_nb(nb: Any) -> Any:
    return copy.deepcopy(nb)


def slowness() -> float:
    """How much slower than a quiet machine this one runs now (load per core, at least 1).

    Wall-clock bounds in tests are written for a quiet machine and multiplied by this, so they
    hold while other work runs (CI neighbours, `-j 2`, a second test run)."""
    return max(1.0, os.getloadavg()[0] / (os.cpu_count() or 1))


CHROMIUM = os.environ.get("SHEET11_CHROMIUM", "/usr/bin/chromium")
# As root in a container: no user-namespace sandbox; nothing that phones home or updates itself.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]


def chromium_browser(timeout_ms: int = 120_000) -> Iterator[Any]:
    """Debian's Chromium driven by Playwright (no browser download), for a pytest fixture to yield
    from: fails where playwright is missing (a broken set-up), skips only where no browser can start."""
    import pytest
    try:
        from playwright import sync_api
    except ImportError:
        pytest.fail("playwright is not installed: pip install -e '.[test]' (no `playwright install` needed)")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium, or set SHEET11_CHROMIUM)")
    with sync_api.sync_playwright() as p:
        try:
            chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True,
                                         timeout=timeout_ms)
        except Exception as exc:  # noqa: BLE001 - the one reason to skip: no browser can start here
            pytest.skip(f"Chromium at {CHROMIUM} could not start: {str(exc).splitlines()[0]}")
        try:
            yield chromium
        finally:
            chromium.close()


@dataclasses.dataclass(frozen=True)
class BatchOfThree:
    """One batch of three submissions (a clean zip, a notebook with a flag, a broken zip) graded
    once with -j 1 and once with -j 2, for the tests that compare runs or resume one."""

    inputs: list[str]
    one: BatchOutcome
    one_dir: Path
    two: BatchOutcome
    two_dir: Path


def batch_inputs(folder: Path) -> list[str]:
    src = folder / "in"
    src.mkdir()
    shutil.copyfile(FILES / "flags" / "passes_all.zip", src / f"{GOOD_NAME}.zip")
    shutil.copyfile(FILES / "flags" / "over_word_limit.ipynb", src / "Hopper_2571234_Turing_2579876.ipynb")
    (src / "Broken_1111111_Zip_2222222.zip").write_bytes(b"PK\x03\x04 this is not really a zip")
    return [str(src / "*")]


def load_script(name: str, path: Path) -> ModuleType:
    """Import a script (benchmarks/, examples/, a shipped self-check) from its file under a private
    name, leaving sys.modules as it was: scripts are not packages."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
