"""The model solution reference/solution.ipynb and the model answers reference/answers.toml."""
from __future__ import annotations

import ast
import json
import time
import tomllib
from pathlib import Path

import nbformat
import pytest
from builders import slowness

from grader.rubric import load_rubric

ROOT = Path(__file__).resolve().parents[1]
SOLUTION = ROOT / "reference" / "solution.ipynb"
ANSWERS = ROOT / "reference" / "answers.toml"
RUBRIC = ROOT / "rubrics" / "sheet11.toml"

WRITTEN = ["11.1.1", "11.1.2", "11.2.1", "11.2.2", "11.3.1", "11.3.2", "11.3.3", "11.3.4a", "11.3.4b"]
FUNCTIONS = ["rnn_forward", "activation_jacobian", "hidden_grad_norms", "gradient_bound",
             "lstm_cell", "tree_encode", "tbptt_grads", "train_recall"]

# Appended to a copy of the solution before it runs: the functions the grader looks up by name
# exist in the kernel, and rnn_forward / lstm_cell agree with PyTorch on a fresh example.
CHECK_CELL = '''
import torch
for _name in %r:
    assert callable(globals().get(_name)), _name
torch.manual_seed(20240201)
_T, _B, _D, _H = 7, 3, 4, 5
_x, _h0 = torch.randn(_T, _B, _D), torch.randn(_B, _H)
_rnn = torch.nn.RNN(_D, _H, nonlinearity="tanh")
_W, _U = _rnn.weight_hh_l0.detach(), _rnn.weight_ih_l0.detach()
_b = (_rnn.bias_ih_l0 + _rnn.bias_hh_l0).detach()
with torch.no_grad():
    _expected, _ = _rnn(_x, _h0.unsqueeze(0))
_H_out = torch.as_tensor(rnn_forward(_x, _h0, _W, _U, _b))
assert _H_out.shape == (_T, _B, _H), _H_out.shape
assert torch.allclose(_H_out.float(), _expected, rtol=1e-4, atol=1e-5)
_H_sig = torch.as_tensor(rnn_forward(_x, _h0, _W, _U, _b, activation="sigmoid"))
assert _H_sig.shape == (_T, _B, _H) and bool((_H_sig > 0).all() and (_H_sig < 1).all())
_cell = torch.nn.LSTMCell(_D, _H)
_c0 = torch.randn(_B, _H)
with torch.no_grad():
    _h_ref, _c_ref = _cell(_x[0], (_h0, _c0))
_h_new, _c_new = lstm_cell(_x[0], _h0, _c0, _cell.weight_ih.detach(), _cell.weight_hh.detach(),
                           _cell.bias_ih.detach(), _cell.bias_hh.detach())
assert torch.allclose(torch.as_tensor(_h_new).float(), _h_ref, rtol=1e-4, atol=1e-5)
assert torch.allclose(torch.as_tensor(_c_new).float(), _c_ref, rtol=1e-4, atol=1e-5)
print("solution checks passed")
''' % (FUNCTIONS,)


@pytest.fixture(scope="module")
def solution() -> nbformat.NotebookNode:
    return nbformat.read(str(SOLUTION), as_version=4)


@pytest.fixture(scope="module")
def answers() -> dict:
    return tomllib.loads(ANSWERS.read_text(encoding="utf-8"))["answers"]


def tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def the_cell(nb, tag):
    found = [c for c in nb.cells if tag in tags(c)]
    assert len(found) == 1, f"{tag}: {len(found)} cells"
    return found[0]


# ---------------------------------------------------------------------------------------------

def test_committed_solution_equals_generator(solution):
    from reference.make_solution import build_solution

    built = json.loads(nbformat.writes(build_solution()))
    committed = json.loads(SOLUTION.read_text(encoding="utf-8"))
    assert built == committed, "reference/solution.ipynb is stale: run python -m reference.make_solution"


def test_generator_is_deterministic():
    from reference.make_solution import build_solution

    assert nbformat.writes(build_solution()) == nbformat.writes(build_solution())


def test_solution_is_valid_and_normalised(solution):
    nbformat.validate(solution)
    for cell in solution.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None


def test_solution_has_the_template_structure(solution):
    template = nbformat.read(str(ROOT / "student_template" / "sheet11.ipynb"), as_version=4)
    assert [c.id for c in solution.cells] == [c.id for c in template.cells]
    assert [tags(c) for c in solution.cells] == [tags(c) for c in template.cells]
    for s_cell, t_cell in zip(solution.cells, template.cells):
        if any(t.startswith("try-") or t == "given-make_recall_data" for t in tags(t_cell)):
            assert s_cell.source == t_cell.source


def test_group_cell(solution):
    stmt = ast.parse(the_cell(solution, "group").source).body
    assert len(stmt) == 1 and isinstance(stmt[0], ast.Assign)
    group = ast.literal_eval(stmt[0].value)
    assert [m["name"] for m in group] == ["Ada Lovelace", "Alan Turing"]
    assert [m["student_id"] for m in group] == ["2571234", "2579876"]


def test_answers_fill_the_answer_cells(solution, answers):
    assert set(answers) == set(WRITTEN)
    for qid in WRITTEN:
        assert the_cell(solution, f"answer-{qid}").source == answers[qid]["answer"].strip("\n")


def test_answer_concepts(answers):
    for qid in WRITTEN:
        concepts = answers[qid]["concepts"]
        assert 3 <= len(concepts) <= 6, qid
        for concept in concepts:
            assert set(concept) == {"name", "keywords"}, qid
            assert concept["name"].strip()
            assert len(concept["keywords"]) >= 1
            for keyword in concept["keywords"]:
                assert keyword and keyword == keyword.lower(), (qid, keyword)
        # the model answer itself shows most of its concepts
        text = answers[qid]["answer"].lower()
        hits = sum(any(k in text for k in c["keywords"]) for c in concepts)
        assert hits >= len(concepts) - 1, (qid, hits)


def test_answers_keep_the_sheet_limits(answers):
    from grader.written import rules
    questions = load_rubric(RUBRIC).questions
    for qid in WRITTEN:
        text = answers[qid]["answer"]
        check = rules.check_answer(questions[qid], text)
        assert check.flags == (), (qid, check.flags)
        assert check.notes == (), (qid, check.notes)
    for qid in ("11.2.1", "11.2.2"):
        assert rules.count_words(answers[qid]["answer"]) <= 100
        assert rules.has_citation(answers[qid]["answer"])
        assert "\nSources:" in answers[qid]["answer"]
    items = rules.list_items(answers["11.3.1"]["answer"])
    assert items is not None and len(items) == 5
    assert 3 <= len(rules.sentences(answers["11.3.2"]["answer"])) <= 5
    assert "```" in answers["11.3.2"]["answer"]


def test_solution_code_is_self_contained(solution):
    for cell in solution.cells:
        if cell.cell_type != "code":
            continue
        for node in ast.walk(ast.parse(cell.source)):
            if isinstance(node, ast.Import):
                assert not any(a.name.split(".")[0] == "reference" for a in node.names), cell.id
            elif isinstance(node, ast.ImportFrom):
                assert node.level == 0, cell.id
                assert (node.module or "").split(".")[0] != "reference", cell.id
                assert node.module != "__future__", cell.id


def test_solution_defines_every_function(solution):
    defined: set[str] = set()
    for cell in solution.cells:
        if cell.cell_type == "code":
            defined |= {n.name for n in ast.parse(cell.source).body
                        if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    assert set(FUNCTIONS) <= defined
    # nothing of the reference's tooling comes along
    for tool in ("calibrate.py", "make_solution.py"):
        path = ROOT / "reference" / tool
        if path.exists():
            tool_defs = {n.name for n in ast.parse(path.read_text(encoding="utf-8")).body
                         if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
            assert not tool_defs & defined, (tool, tool_defs & defined)
    for name in FUNCTIONS:
        assert "not implemented yet\")" not in the_cell(solution, f"function-{name}").source


def _assigned_names(source: str) -> set[str]:
    names: set[str] = set()
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        for sub in ast.walk(node) if not isinstance(node, (ast.FunctionDef, ast.ClassDef)) else []:
            if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store):
                names.add(sub.id)
            elif isinstance(sub, ast.alias):
                names.add((sub.asname or sub.name).split(".")[0])
    return names


def test_try_cells_do_not_clobber_reference_globals(solution):
    """A later try-cell must not rebind a module-level name that the reference code uses."""
    reference_names: set[str] = set()
    for cell in solution.cells:
        if any(t.startswith("function-") for t in tags(cell)):
            reference_names |= _assigned_names(cell.source)
    same = {"torch", "np", "F", "make_recall_data", "time"}  # bound to the same object
    for cell in solution.cells:
        if any(t.startswith("try-") for t in tags(cell)):
            clash = (_assigned_names(cell.source) & reference_names) - same
            assert not clash, (cell.id, clash)


@pytest.mark.slow
def test_solution_runs_and_matches_torch(monkeypatch, tmp_path):
    from nbclient import NotebookClient

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    nb = nbformat.read(str(SOLUTION), as_version=4)
    check = nbformat.v4.new_code_cell(CHECK_CELL)
    check.id = "solution-check"
    nb.cells.append(check)
    client = NotebookClient(nb, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})
    start = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - start
    # 60 s on a quiet machine, stretched with the load like every wall-clock bound (builders.slowness)
    assert seconds < 60 * slowness(), f"the solution took {seconds:.1f} s"
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not [o for o in cell.outputs if o.output_type == "error"], cell.id
    assert "solution checks passed" in "".join(o.get("text", "") for o in nb.cells[-1].outputs)
    for name in FUNCTIONS:
        text = "".join(o.get("text", "") for o in the_cell(nb, f"try-{name}").outputs)
        assert text.strip(), name
        assert "not implemented" not in text, (name, text)
        assert "False" not in text, (name, text)
    recall = "".join(o.get("text", "") for o in the_cell(nb, "try-train_recall").outputs)
    assert "lstm: held-out accuracy" in recall and "rnn: held-out accuracy" in recall
