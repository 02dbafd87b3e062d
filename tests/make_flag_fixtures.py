"""Write tests/files/flags/: one scenario-named submission per flag code of the grading issue.

    python tests/make_flag_fixtures.py
    python tests/make_flag_fixtures.py --check  # exit 1 if a committed fixture is stale

Each file is the fast reference solution (or the template) with one thing changed; the test
copies it under the submission name given in tests/test_grade.py and checks the flag.
"""
from __future__ import annotations

import io
import sys
import zipfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import nbformat
from builders import (
    FILES,
    cell_with_tag,
    set_answer,
    set_group,
    solution,
    template,
)

OUT = FILES / "flags"
ADA, ALAN = ("Ada Lovelace", "2571234", "ada@uni.example"), ("Alan Turing", "2579876", "alan@uni.example")


def _zip(entries: dict[str, bytes]) -> bytes:
    """A zip of ``entries`` with a fixed date: the same bytes every time."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0)), data, zipfile.ZIP_DEFLATED)
    return buf.getvalue()


def _bytes(nb: Any) -> bytes:
    """The notebook as ``nbformat.write`` stores it, every cell the builders added (with a
    random id) given a stable one: the same bytes every time."""
    known = {c.get("id") for c in solution(fast=False).cells} | {c.get("id") for c in template().cells}
    for i, cell in enumerate(nb.cells):
        if cell.get("id") not in known:
            cell["id"] = f"added-{i:03d}"
    text = nbformat.writes(nb)
    return (text if text.endswith("\n") else text + "\n").encode("utf-8")


def build() -> dict[Path, bytes]:
    """Every fixture's path and bytes (deterministic: fixed cell ids and zip dates)."""
    out: dict[Path, bytes] = {}
    out[OUT / "passes_all.zip"] = _zip({"sheet11.ipynb": _bytes(solution())})
    out[OUT / "bad_name.ipynb"] = _bytes(solution())
    out[OUT / "group_of_one.ipynb"] = _bytes(set_group(solution(), [ADA]))
    out[OUT / "name_mismatch.ipynb"] = _bytes(solution())

    nb = solution()
    nb.cells.remove(cell_with_tag(nb, "group"))
    out[OUT / "no_group_cell.ipynb"] = _bytes(nb)

    out[OUT / "bad_email.ipynb"] = _bytes(
        set_group(solution(), [ADA, ("Alan Turing", "2579876", "alan at uni")]))

    long_answer = " ".join(["Recurrent networks share weights over time steps."] * 16) + \
        "\n\nSources: Goodfellow, Bengio and Courville (2016), Deep Learning, chapter 10."
    out[OUT / "over_word_limit.ipynb"] = _bytes(set_answer(solution(), "11.2.1", long_answer))

    seven = " ".join(f"Sentence number {i} describes the tree." for i in range(1, 8))
    out[OUT / "sentences_out_of_range.ipynb"] = _bytes(set_answer(solution(), "11.3.2", seven))

    out[OUT / "no_citation.ipynb"] = _bytes(
        set_answer(solution(), "11.2.2", "LSTMs add a cell state with gates, so gradients "
                                         "neither vanish nor explode as quickly."))

    nb = solution()
    for cell in nb.cells:
        if cell.cell_type == "code" and "def lstm_cell" in cell.source:
            cell.source = cell.source.replace("def lstm_cell", "def lstm_cell_unused")
    out[OUT / "missing_function.ipynb"] = _bytes(nb)

    out[OUT / "blank_template.ipynb"] = _bytes(set_group(template(), [ADA, ALAN]))

    nb = solution()
    for _ in range(4):
        nb.cells.insert(3, nbformat.v4.new_code_cell("import time\ntime.sleep(2)"))
    out[OUT / "notebook_timeout.ipynb"] = _bytes(nb)
    return out


def stale(built: dict[Path, bytes]) -> list[str]:
    """The fixtures whose committed bytes differ from ``built`` (or are missing), and files in
    the folder that ``built`` does not make."""
    names = [p.name for p, data in built.items() if not p.is_file() or p.read_bytes() != data]
    return names + sorted(p.name for p in OUT.iterdir() if p not in built) if OUT.is_dir() else names


def main(argv: list[str]) -> int:
    built = build()
    if "--check" in argv:
        for name in stale(built):
            print(f"stale: {name}; run: python tests/make_flag_fixtures.py")
        return 1 if stale(built) else 0
    OUT.mkdir(parents=True, exist_ok=True)
    for path, data in built.items():
        path.write_bytes(data)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
