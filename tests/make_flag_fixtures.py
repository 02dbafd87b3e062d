"""Write tests/files/flags/: one scenario-named submission per flag code of the grading issue.

    python tests/make_flag_fixtures.py

Each file is the fast reference solution (or the template) with one thing changed; the test
copies it under the submission name given in tests/test_grade.py and checks the flag.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import nbformat  # noqa: E402
from builders import (  # noqa: E402
    FILES,
    cell_with_tag,
    notebook_bytes,
    set_answer,
    set_group,
    solution,
    template,
    write_notebook,
    write_zip,
)

OUT = FILES / "flags"
ADA, ALAN = ("Ada Lovelace", "2571234", "ada@uni.example"), ("Alan Turing", "2579876", "alan@uni.example")


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    write_zip(OUT / "passes_all.zip", {"sheet11.ipynb": notebook_bytes(solution())})
    write_notebook(solution(), OUT / "bad_name.ipynb")
    write_notebook(set_group(solution(), [ADA]), OUT / "group_of_one.ipynb")
    write_notebook(solution(), OUT / "name_mismatch.ipynb")

    nb = solution()
    nb.cells.remove(cell_with_tag(nb, "group"))
    write_notebook(nb, OUT / "no_group_cell.ipynb")

    write_notebook(set_group(solution(), [ADA, ("Alan Turing", "2579876", "alan at uni")]), OUT / "bad_email.ipynb")

    long_answer = " ".join(["Recurrent networks share weights over time steps."] * 16) + \
        "\n\nSources: Goodfellow, Bengio and Courville (2016), Deep Learning, chapter 10."
    write_notebook(set_answer(solution(), "11.2.1", long_answer), OUT / "over_word_limit.ipynb")

    seven = " ".join(f"Sentence number {i} describes the tree." for i in range(1, 8))
    write_notebook(set_answer(solution(), "11.3.2", seven), OUT / "sentences_out_of_range.ipynb")

    write_notebook(set_answer(solution(), "11.2.2", "LSTMs add a cell state with gates, so gradients "
                                                    "neither vanish nor explode as quickly."),
                   OUT / "no_citation.ipynb")

    nb = solution()
    for cell in nb.cells:
        if cell.cell_type == "code" and "def lstm_cell" in cell.source:
            cell.source = cell.source.replace("def lstm_cell", "def lstm_cell_unused")
    write_notebook(nb, OUT / "missing_function.ipynb")

    write_notebook(set_group(template(), [ADA, ALAN]), OUT / "blank_template.ipynb")

    nb = solution()
    for _ in range(4):
        nb.cells.insert(3, nbformat.v4.new_code_cell("import time\ntime.sleep(2)"))
    write_notebook(nb, OUT / "notebook_timeout.ipynb")


if __name__ == "__main__":
    main()
