"""The student notebook student_template/sheet11.ipynb against CONTRACT.md §2-§3."""
from __future__ import annotations

import ast
import importlib.util
import re
import tomllib
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "student_template" / "sheet11.ipynb"
BUILD_SCRIPT = ROOT / "student_template" / "build_template.py"
RUBRIC = ROOT / "rubrics" / "sheet11.toml"

WRITTEN = ["11.1.1", "11.1.2", "11.2.1", "11.2.2", "11.3.1", "11.3.2", "11.3.3", "11.3.4a", "11.3.4b"]
CONTRACT_TAGS = ["group"] + [f"answer-{q}" for q in WRITTEN]
PLACEHOLDER = "*Your answer here.*"

#: name -> (parameter names, defaults by name) as in CONTRACT.md §3.
SIGNATURES: dict[str, tuple[list[str], dict[str, object]]] = {
    "rnn_forward": (["x", "h0", "W", "U", "b", "activation"], {"activation": "tanh"}),
    "activation_jacobian": (["z", "activation"], {"activation": "tanh"}),
    "hidden_grad_norms": (["x", "h0", "W", "U", "b", "loss_fn", "activation"], {"activation": "tanh"}),
    "gradient_bound": (["x", "h0", "W", "U", "b", "loss_fn", "activation"], {"activation": "tanh"}),
    "lstm_cell": (["x", "h", "c", "W_ih", "W_hh", "b_ih", "b_hh"], {}),
    "tree_encode": (["tree", "embed", "W", "b"], {}),
    "tbptt_grads": (["x", "y", "params", "k"], {}),
    "train_recall": (["cell", "seq_len", "n_classes", "seed"], {}),
}
OWN_TAGS = (
    [f"question-{q}" for q in WRITTEN]
    + [f"function-{f}" for f in SIGNATURES]
    + [f"try-{f}" for f in SIGNATURES]
    + ["given-make_recall_data", "imports", "intro-11.4"]
)


@pytest.fixture(scope="module")
def nb() -> nbformat.NotebookNode:
    return nbformat.read(str(TEMPLATE), as_version=4)


def tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def cells_by_tag(nb, tag):
    return [c for c in nb.cells if tag in tags(c)]


def the_cell(nb, tag):
    found = cells_by_tag(nb, tag)
    assert len(found) == 1, f"{tag}: {len(found)} cells"
    return found[0]


def load_build_module():
    spec = importlib.util.spec_from_file_location("sheet11_build_template", BUILD_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------------------------------------

def test_valid_nbformat4(nb):
    nbformat.validate(nb)
    assert nb.nbformat == 4
    assert nb.metadata["kernelspec"]["name"] == "python3"
    assert nb.metadata["kernelspec"]["language"] == "python"


def test_every_tag_exactly_once(nb):
    for tag in CONTRACT_TAGS + OWN_TAGS:
        assert len(cells_by_tag(nb, tag)) == 1, tag


def test_cell_ids_unique_and_stable(nb):
    ids = [c.id for c in nb.cells]
    assert len(ids) == len(set(ids))
    for cell in nb.cells:
        for tag in tags(cell):
            if tag in CONTRACT_TAGS + OWN_TAGS:
                assert cell.id == re.sub(r"[^A-Za-z0-9_-]", "-", tag)


def test_no_outputs(nb):
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None


def test_group_cell_parses_with_literal_eval(nb):
    cell = the_cell(nb, "group")
    assert cell.cell_type == "code"
    module = ast.parse(cell.source)
    assert len(module.body) == 1
    stmt = module.body[0]
    assert isinstance(stmt, ast.Assign) and [t.id for t in stmt.targets] == ["GROUP"]
    group = ast.literal_eval(ast.get_source_segment(cell.source, stmt.value))
    assert isinstance(group, list) and len(group) == 2
    for member in group:
        assert member == {"name": "", "student_id": "", "email": ""}
    assert "third member" in cell.source


def test_question_then_answer_cells(nb):
    positions = {id(c): i for i, c in enumerate(nb.cells)}
    for qid in WRITTEN:
        question, answer = the_cell(nb, f"question-{qid}"), the_cell(nb, f"answer-{qid}")
        assert question.cell_type == "markdown" and answer.cell_type == "markdown"
        assert positions[id(answer)] == positions[id(question)] + 1, qid
        assert qid in question.source and "point" in question.source


def test_answer_placeholders(nb):
    for qid in WRITTEN:
        source = the_cell(nb, f"answer-{qid}").source
        if qid == "11.3.1":
            items = source.splitlines()
            assert len(items) == 5
            for item, name in zip(items, ["One-to-one", "One-to-many", "Many-to-one",
                                          "Many-to-many (encoder-decoder)",
                                          "Many-to-many (synchronised)"]):
                assert item == f"- **{name}:** {PLACEHOLDER}"
        elif qid in ("11.2.1", "11.2.2"):
            assert source == PLACEHOLDER + "\n\nSources: "
        else:
            assert source == PLACEHOLDER


def test_answer_placeholders_are_blank_for_the_grader(nb):
    from grader.written import rules
    for qid in WRITTEN:
        source = the_cell(nb, f"answer-{qid}").source
        assert rules.is_blank_answer(source, source), qid
        if qid != "11.3.1":  # the list of five labelled placeholders needs the template
            assert rules.is_blank_answer(source), qid
    items = rules.list_items(the_cell(nb, "answer-11.3.1").source)
    assert items is not None and len(items) == 5


def test_question_texts(nb):
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    for phrase in ["terrible day", "At least my dog", "CNN and RNN", "residual neural networks",
                   "recursive NN", "weights of the children", r"\mathbf{J}_{k+1}", "(1)",
                   r"\sigma(\mathbf{z}_t)", "two factors", "One-to-many", "synchronised",
                   "encoder-decoder", "Name1_id1_Name2_id2", "100 words", "Sources:"]:
        assert phrase in text, phrase


def _function_def(source: str, name: str) -> ast.FunctionDef:
    module = ast.parse(source)
    defs = [n for n in module.body if isinstance(n, ast.FunctionDef)]
    assert [d.name for d in defs] == [name]
    return defs[0]


@pytest.mark.parametrize("name", list(SIGNATURES))
def test_function_stub_signature(nb, name):
    cell = the_cell(nb, f"function-{name}")
    assert cell.cell_type == "code"
    fn = _function_def(cell.source, name)
    params, defaults = SIGNATURES[name]
    args = fn.args
    assert [a.arg for a in args.args] == params
    assert not args.posonlyargs and not args.kwonlyargs and args.vararg is None and args.kwarg is None
    got_defaults = {a.arg: ast.literal_eval(d)
                    for a, d in zip(args.args[len(args.args) - len(args.defaults):], args.defaults)}
    assert got_defaults == defaults
    doc = ast.get_docstring(fn)
    assert doc and "Parameters" in doc and "Returns" in doc and "shape" in doc
    for param in params:
        assert param in doc, (name, param)
    body = fn.body[1:]
    assert len(body) == 1 and isinstance(body[0], ast.Raise)
    assert ast.unparse(body[0].exc) == f"NotImplementedError('{name}: not implemented yet')"


def test_function_docstrings_state_shapes(nb):
    for name in SIGNATURES:
        doc = ast.get_docstring(_function_def(the_cell(nb, f"function-{name}").source, name))
        assert re.search(r"shape \(", doc), name


def test_imports_cell(nb):
    source = the_cell(nb, "imports").source
    for line in ["import numpy as np", "import torch", "import torch.nn.functional as F",
                 "torch.set_num_threads(1)"]:
        assert line in source.splitlines()


def test_make_recall_data_matches_contract(nb):
    torch = pytest.importorskip("torch")
    cell = the_cell(nb, "given-make_recall_data")
    _function_def(cell.source, "make_recall_data")
    namespace: dict = {"torch": torch}
    exec(compile(cell.source, "given-make_recall_data", "exec"), namespace)
    fn = namespace["make_recall_data"]
    for n, seq_len, n_classes, seed in [(5, 3, 4, 0), (64, 30, 8, 7), (1, 1, 2, 123)]:
        g = torch.Generator().manual_seed(seed)
        tokens = torch.randint(0, n_classes, (seq_len, n), generator=g)
        x, y = fn(n, seq_len, n_classes, seed)
        assert x.dtype == torch.float32 and x.shape == (seq_len, n, n_classes)
        assert y.dtype == torch.int64 and y.shape == (n,)
        assert torch.equal(x, torch.nn.functional.one_hot(tokens, n_classes).float())
        assert torch.equal(y, tokens[0])
    reference = ROOT / "reference" / "recall.py"
    if reference.exists():
        from reference import recall
        for args in [(5, 3, 4, 0), (64, 30, 8, 7)]:
            xr, yr = recall.make_recall_data(*args)
            x, y = fn(*args)
            assert torch.equal(x, xr) and torch.equal(y, yr)


def test_try_cells_use_the_public_seeds(nb):
    rubric = tomllib.loads(RUBRIC.read_text())
    for question in rubric["questions"].values():
        for check in question.get("checks", []):
            name = check["function"]
            source = the_cell(nb, f"try-{name}").source
            assert f"torch.manual_seed({check['public'][0]['seed']})" in source, name
            assert f'print("{name} is not implemented yet")' in source
    hidden = {case["seed"] for q in rubric["questions"].values()
              for check in q.get("checks", []) for case in check["cases"]}
    hidden.add(rubric["recall"]["heldout_seed"])
    text = "\n".join(c.source for c in nb.cells)
    for seed in hidden:
        assert str(seed) not in text, f"hidden seed {seed} appears in the template"


def test_code_cells_compile(nb):
    for cell in nb.cells:
        if cell.cell_type == "code":
            compile(cell.source, cell.id, "exec")


def test_build_script_reproduces_committed_file(tmp_path, capsys):
    module = load_build_module()
    out = tmp_path / "sheet11.ipynb"
    assert module.main([str(out)]) == 0
    assert out.read_bytes() == TEMPLATE.read_bytes()


@pytest.mark.slow
def test_template_runs_top_to_bottom(monkeypatch, tmp_path):
    from nbclient import NotebookClient

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    nb = nbformat.read(str(TEMPLATE), as_version=4)
    client = NotebookClient(nb, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    for name in SIGNATURES:
        cell = the_cell(nb, f"try-{name}")
        text = "".join(o.get("text", "") for o in cell.outputs)
        assert f"{name} is not implemented yet" in text, name
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not [o for o in cell.outputs if o.output_type == "error"], cell.id


def test_the_prose_takes_its_numbers_from_the_rubric(tmp_path):
    """The prose files (student_template/prose/) hold placeholders for the rubric's numbers: a
    course rubric with other limits and points gets a notebook that states them."""
    text = RUBRIC.read_text()
    assert "max_words = 100" in text and "points = 0.5" in text
    course = tmp_path / "course.toml"
    course.write_text(text.replace("max_words = 100", "max_words = 150"), encoding="utf-8")
    module = load_build_module()
    nb = module.build_notebook(course)
    instructions = next(c for c in nb.cells if c.id == "instructions").source
    assert "**at most 150 words each**" in instructions and "100 words" not in instructions
    assert "**150 words**" in the_cell(nb, "exercise-11.2").source
    seq_len = tomllib.loads(text)["recall"]["seq_len"]
    assert f'seq_len={seq_len}, n_classes=' in the_cell(nb, "function-train_recall").source
    assert not any("{{" in c.source for c in nb.cells)


def test_a_prose_placeholder_the_build_does_not_know_names_the_file(tmp_path, monkeypatch):
    module = load_build_module()
    prose = tmp_path / "prose"
    prose.mkdir()
    (prose / "title.md").write_text("Worth {{total}} points, due {{deadline}}.\n", encoding="utf-8")
    (prose / "broken.md").write_text("Worth {{q 11.1.1 no_such_key}}.\n", encoding="utf-8")
    (prose / "stray.md").write_text("A {{ stray brace.\n", encoding="utf-8")
    monkeypatch.setattr(module, "PROSE_DIR", prose)
    rubric = module.load_rubric()
    with pytest.raises(ValueError, match=r"title\.md: unknown placeholder '\{\{deadline\}\}'"):
        module.prose("title.md", rubric)
    with pytest.raises(ValueError, match=r"broken\.md: cannot fill .*no_such_key"):
        module.prose("broken.md", rubric)
    with pytest.raises(ValueError, match=r"stray\.md: a .\{\{. that is not a placeholder"):
        module.prose("stray.md", rubric)
