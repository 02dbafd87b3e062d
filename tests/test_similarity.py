"""Copied work: a planted copy (renamed variables, reordered cells) tops the ranking; independent
solutions stay below the threshold; the template never counts; shared ids are flagged."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
from builders import SOLUTION, TEMPLATE, cell_with_tag, copy_nb, template
from make_function_fixtures import STYLES

from grader.checks.similarity import THRESHOLD, analyse, duplicate_ids, notebook_document
from grader.pages.report import render_summary
from grader.result import SubmissionResult

ANSWERS = {
    "numpy": "A CNN slides small shared filters over a grid such as an image, so it captures local spatial "
             "patterns; its context is fixed by the depth. An RNN reads a sequence one step at a time and "
             "keeps a hidden state, so the order of the inputs matters and the sequence may be any length.",
    "float64_loops": "Convolutions look at neighbourhoods of pixels and are translation equivariant. Recurrent "
               "networks instead feed the previous hidden vector back in at every time step, which lets them "
               "model temporal dependencies in text or audio of variable length.",
    "einsum": "The difference lies in the inductive bias: locality and weight tying across positions for "
              "convolutional nets versus a recurrence over time for recurrent nets, whose memory h_t "
              "summarises everything seen so far.",
}


def _style_notebook(style: str, answer: str) -> nbformat.NotebookNode:
    """The template with one style's functions written into the function cells: an independent
    implementation (tests/make_function_fixtures.py), and its own written answer."""
    nb = template()
    for name, source in STYLES[f"styles_{style}"].items():
        cell_with_tag(nb, f"function-{name}").source = source
    cell_with_tag(nb, "answer-11.2.1").source = answer + "\n\nSources: Goodfellow et al. (2016)."
    return nb


def _independent() -> list:
    docs = [notebook_document(style, _style_notebook(style, ANSWERS[style])) for style in ANSWERS]
    docs.append(notebook_document("reference", nbformat.read(str(SOLUTION), as_version=4)))
    return docs


def _disguised(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy as a student hides it: variables renamed, comments changed, code cells reordered."""
    out = copy_nb(nb)
    renames = {"act": "activation_fn", "to_np": "as_array", "H": "states", "gates": "all_gates", "h": "hidden",
               "T": "steps", "W": "Wmat", "d": "deriv"}
    code = [c for c in out.cells if c.cell_type == "code" and "group" not in c.metadata.get("tags", [])]
    for c in code:
        for old, new in renames.items():
            c.source = re.sub(rf"\b{old}\b", new, c.source)
        c.source = c.source.replace("# ", "# note: ")
    sources = [c.source for c in code]
    sources.reverse()
    for c, s in zip(code, sources):
        c.source = s
    answer = cell_with_tag(out, "answer-11.2.1")
    answer.source = answer.source.replace("A CNN", "Basically, a CNN").replace("any length", "arbitrary length")
    return out


def test_independent_solutions_stay_below_the_threshold() -> None:
    result = analyse(_independent())
    assert result["pairs_compared"] == 6
    assert all(p["score"] < THRESHOLD for p in result["pairs"]), [(p["a"], p["b"], p["score"]) for p in result["pairs"]]


def test_a_planted_copy_tops_the_ranking() -> None:
    docs = _independent()
    copied = notebook_document("copy", _disguised(_style_notebook("numpy", ANSWERS["numpy"])))
    result = analyse([*docs[:2], copied, *docs[2:]])
    top = result["pairs"][0]
    assert {top["a"], top["b"]} == {"numpy", "copy"}
    assert top["code"]["score"] >= THRESHOLD and top["text"]["score"] >= THRESHOLD
    assert all(p["score"] < THRESHOLD for p in result["pairs"][1:])
    shared = "".join(t for t, marked in top["code"]["passages_a"] if marked)
    assert "def rnn_forward" in shared or "rnn_forward" in "".join(t for t, m in top["code"]["passages_b"] if m)


def test_the_template_itself_is_never_similar() -> None:
    blank = [notebook_document(f"blank{i}", template()) for i in range(3)]
    result = analyse(blank)
    assert all(p["score"] == 0 for p in result["pairs"])


def test_shared_passages_are_escaped_and_marked_in_the_summary() -> None:
    one = _style_notebook("numpy", ANSWERS["numpy"] + " <script>alert(1)</script> is not code here.")
    result = analyse([notebook_document("A_1_B_2", one), notebook_document("C_3_D_4", copy_nb(one))])
    results = [{"folder": f, "submission": f + ".ipynb", "status": "graded", "group": g, "points": 1.0,
                "max_points": 10.0, "questions": {}, "flags": []}
               for f, g in (("A_1_B_2", [{"name": "Ada", "student_id": "1"}]),
                            ("C_3_D_4", [{"name": "Ada L", "student_id": "1"}, {"name": "Cy", "student_id": "3"}]))]
    typed = [SubmissionResult.from_json(r) for r in results]
    html = render_summary(typed, "Sheet 11", 10.0, "", similarity={**result, "duplicates": duplicate_ids(typed)})
    assert "<mark>" in html and "<script>alert" not in html and "&lt;script&gt;" in html
    assert "Students in more than one group" in html and "A_1_B_2.ipynb" in html


def test_a_student_id_in_two_groups_is_found() -> None:
    base = {"status": "graded", "points": 1.0, "max_points": 10.0, "questions": {}, "flags": []}
    results = [SubmissionResult.from_json({**base, **r}) for r in (
        {"folder": "a", "submission": "a.zip", "group": [{"name": "X", "student_id": "7"}]},
        {"folder": "b", "submission": "b.zip", "group": [{"name": "X", "student_id": "7"}, {"name": "Y", "student_id": "8"}]},
        {"folder": "c", "submission": "c.zip", "group": [{"name": "Z", "student_id": "9"}]})]
    assert duplicate_ids(results) == [{"student_id": "7", "names": ["X"],
                                       "submissions": [{"folder": "a", "submission": "a.zip"},
                                                       {"folder": "b", "submission": "b.zip"}]}]


def _ranking_in_a_fresh_process(hash_seed: str) -> str:
    """The analysis of two independent notebooks, computed by another interpreter whose string
    hashes are salted with ``hash_seed`` (str hashes differ between processes by default)."""
    tests = str(Path(__file__).resolve().parent)
    script = (f"import sys; sys.path[:0] = [{tests!r}, {str(Path(tests).parent)!r}]\n"
              "from test_similarity import _independent\n"
              "from grader.checks.similarity import analyse\n"
              "print(repr(analyse(_independent()[:2])))\n")
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                          timeout=600, check=True)
    return done.stdout


def test_the_ranking_is_the_same_on_every_run() -> None:
    # Two processes with different hash salts: a ranking that depended on hash() or on set order
    # would differ between grading runs (and between the workers of one run).
    one, two = _ranking_in_a_fresh_process("1"), _ranking_in_a_fresh_process("2")
    assert one.strip() and one == two
    assert Path(TEMPLATE).exists()


def test_one_groups_work_is_capped():
    """A notebook of megabytes of code costs no more than MAX_DOC_CHARS of hashing, and only
    that much is kept for the batch comparison."""
    import numpy as np

    from grader.checks.similarity import MAX_DOC_CHARS, _capped, fingerprint
    huge = "def f(x):\n    return x + 1\n" * 100_000
    fp = fingerprint(huge, "code", np.array([], dtype=np.int64))
    assert len(fp.raw_code) == MAX_DOC_CHARS
    cells = _capped(["a" * 150_000, "b" * 150_000, "c" * 10])
    assert [len(c) for c in cells] == [150_000, MAX_DOC_CHARS - 150_000]
