"""The students' tools (issue 5): the release bundle, the in-notebook check module, `grade check`
and `grade pack`."""
from __future__ import annotations

import importlib.util
import re
import shutil
import tomllib
import zipfile
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch
from builders import (
    ROOT,
    SOLUTION,
    TEMPLATE,
    cell_with_tag,
    quick_context,
    set_function,
    set_group,
    solution,
    write_notebook,
)
from click.testing import CliRunner

import reference
from grader.checks import cases as case_inputs
from grader.checks.compare import to_numpy
from grader.checks.secret import load_secret
from grader.cli.main import main
from grader.errors import UsageError
from grader.grade import grade_submission
from grader.rubric import WRITTEN_IDS, load_rubric
from grader.students.student import PackRefused, pack, public_data, release
from grader.submission.naming import check_naming

FUNCTIONS = ("rnn_forward", "activation_jacobian", "hidden_grad_norms", "gradient_bound",
             "lstm_cell", "tree_encode", "tbptt_grads", "train_recall")
BUNDLE_FILES = {"sheet11.ipynb", "sheet11_check.py", "sheet11_public.json", "sheet11_public.npz", "README.md"}
WIDE = {"COLUMNS": "220"}  # rich wraps at 80 columns when not on a terminal

W_TRANSPOSED = '''
def rnn_forward(x, h0, W, U, b, activation="tanh"):
    act = torch.tanh if activation == "tanh" else torch.sigmoid
    h, out = h0, []
    for t in range(x.shape[0]):
        h = act(h @ W + x[t] @ U.T + b)   # W should be transposed here
        out.append(h)
    return torch.stack(out)
'''


@pytest.fixture(scope="module")
def rubric():
    return load_rubric()


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bundle")
    release(out)
    return out


def _public_seeds(rubric) -> set[int]:
    seeds = {s for check in rubric.checks() for s in check.public_seeds}
    return seeds | {rubric.recall.public_heldout_seed}


def _hidden_seeds(rubric) -> set[int]:
    return rubric.hidden_seeds()


def _record_seeds(monkeypatch) -> list[int]:
    """Record every seed the grader draws inputs or recall data from (in this process)."""
    seen: list[int] = []
    make_inputs, make_recall = case_inputs.make_inputs, reference.make_recall_data

    def inputs(function, seed, params, secret=None):
        seen.append(seed)
        return make_inputs(function, seed, params, secret)

    def recall(n, seq_len, n_classes, seed):
        seen.append(seed)
        return make_recall(n, seq_len, n_classes, seed)

    monkeypatch.setattr(case_inputs, "make_inputs", inputs)
    monkeypatch.setattr(reference, "make_recall_data", recall)
    return seen


def _load_check_module(folder: Path):
    spec = importlib.util.spec_from_file_location("sheet11_check_under_test", folder / "sheet11_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _solution_namespace(overrides: str = "") -> dict:
    """The functions of the model solution, defined as a notebook would (without try-cells)."""
    ns: dict = {"__name__": "__main__"}
    nb = nbformat.read(str(SOLUTION), as_version=4)
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        if cell.cell_type == "code" and any(t.startswith(("function-", "given-")) or t == "imports" for t in tags):
            exec(compile(cell.source, cell.id, "exec"), ns)
    if overrides:
        exec(overrides, ns)
    return ns


# ============================================================================ release bundle

def test_release_writes_the_bundle(bundle):
    assert {p.name for p in bundle.iterdir()} == BUNDLE_FILES
    assert (bundle / "sheet11.ipynb").read_bytes() == TEMPLATE.read_bytes()
    assert (bundle / "sheet11_check.py").read_bytes() == (ROOT / "student_template" / "sheet11_check.py").read_bytes()
    with np.load(bundle / "sheet11_public.npz", allow_pickle=False) as npz:
        assert npz.files and all(npz[k].dtype != object for k in npz.files)
    readme = (bundle / "README.md").read_text(encoding="utf-8")
    for phrase in ("from sheet11_check import check", "grade check sheet11.ipynb", "grade pack",
                   "Name1_id1_Name2_id2.zip", "at most 100 words", "3 to 5 sentences", "Sources:"):
        assert phrase in readme, phrase


def test_release_draws_only_public_seeds(monkeypatch, rubric, tmp_path):
    seen = _record_seeds(monkeypatch)
    public_data(rubric)
    assert seen and set(seen) <= _public_seeds(rubric)
    assert not set(seen) & _hidden_seeds(rubric)


def _bundle_texts(bundle: Path) -> dict[str, str]:
    # The npz is searched as bytes decoded latin-1, so a seed or a line stored in it as text shows.
    return {p.name: p.read_bytes().decode("latin-1") for p in bundle.iterdir()}


def test_bundle_holds_no_hidden_seed(bundle, rubric):
    texts = _bundle_texts(bundle)
    # The recall's train_seed is 0 and is printed in the template's try-cell on purpose; seeds
    # below 1000 are too common a number to search for, so they are skipped.
    hidden = [s for s in _hidden_seeds(rubric) if s >= 1000]
    assert len(hidden) >= 15
    for seed in hidden:
        for name, text in texts.items():
            assert not re.search(rf"(?<!\d){seed}(?!\d)", text), f"hidden seed {seed} in {name}"


def test_bundle_holds_no_reference_code(bundle):
    texts = _bundle_texts(bundle)
    template = nbformat.read(str(TEMPLATE), as_version=4)
    # What the contract itself hands out: the given make_recall_data, the imports and the
    # functions' signatures.
    given = "\n".join(c.source for c in template.cells
                      if {"given-make_recall_data", "imports"} & set(c.metadata.get("tags", [])))
    given += "\n".join(line for c in template.cells if any(t.startswith("function-") for t in c.metadata.get("tags", []))
                       for line in c.source.splitlines() if line.startswith("def "))
    checked = 0
    for path in sorted((ROOT / "reference").glob("*.py")):
        for line in path.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if len(line) <= 30 or line.startswith(("import ", "from ")) or line in given:
                continue
            checked += 1
            for name, text in texts.items():
                assert line not in text, f"{path.name}: {line!r} is in {name}"
    assert checked > 200


def test_bundle_holds_no_model_answer(bundle):
    texts = _bundle_texts(bundle)
    answers = tomllib.loads((ROOT / "reference" / "answers.toml").read_text(encoding="utf-8"))["answers"]
    checked = 0
    for qid, entry in answers.items():
        for piece in re.split(r"(?<=[.!?:])\s+|\n+", entry["answer"]):
            piece = piece.strip(" -*>#`")
            if len(piece) <= 30:
                continue
            checked += 1
            for name, text in texts.items():
                assert piece not in text, f"model answer of {qid} ({piece[:40]!r}...) in {name}"
    assert checked > 20


def test_bundle_holds_no_hidden_input_or_expected_value(bundle, rubric):
    hidden: list[np.ndarray] = []
    secret = load_secret()  # the tests' own (tests/conftest.py)
    for check in rubric.checks():
        for case in check.cases:
            inputs = case_inputs.make_inputs(check.function, case.seed, case.params, secret)
            out = to_numpy(getattr(reference, check.function)(**inputs))
            stack = [out, *inputs.values()]
            while stack:
                v = stack.pop()
                if isinstance(v, (tuple, list)):
                    stack += list(v)
                elif isinstance(v, dict):
                    stack += list(v.values())
                elif isinstance(v, case_inputs.LossSpec):
                    stack.append(v.vector)
                elif isinstance(v, (np.ndarray, torch.Tensor)):
                    a = to_numpy(v) if isinstance(v, torch.Tensor) else v
                    if a.size >= 3:
                        hidden.append(np.asarray(a, dtype=np.float64))
    x, _ = reference.make_recall_data(64, rubric.recall.seq_len, rubric.recall.n_classes, rubric.recall.heldout_seed)
    hidden.append(x.numpy().astype(np.float64))
    with np.load(bundle / "sheet11_public.npz", allow_pickle=False) as npz:
        stored = {k: npz[k].astype(np.float64) for k in npz.files}
    for key, arr in stored.items():
        for h in hidden:
            if arr.shape == h.shape:
                assert not np.allclose(arr, h), f"{key} equals a hidden input or expected value"


def test_release_cli(tmp_path):
    result = CliRunner().invoke(main, ["release", "-o", str(tmp_path / "b")])
    assert result.exit_code == 0, result.output
    assert {p.name for p in (tmp_path / "b").iterdir()} == BUNDLE_FILES


# ============================================================================ the template

def test_template_has_the_check_cells():
    nb = nbformat.read(str(TEMPLATE), as_version=4)
    tags = [c.metadata.get("tags", []) for c in nb.cells]
    index = {t: i for i, ts in enumerate(tags) for t in ts}
    assert index["check-import"] == index["group"] + 1
    assert index["check-import"] < index["question-11.1.1"]
    assert "from sheet11_check import check" in nb.cells[index["check-import"]].source
    for name in FUNCTIONS:
        i = index[f"check-{name}"]
        assert i == index[f"try-{name}"] + 1, name
        assert re.match(r'check\("(11\.4\.[a-d]|%s)"\)' % name, nb.cells[i].source), nb.cells[i].source
    assert nb.cells[index["check-rnn_forward"]].source.startswith('check("11.4.a")')


def test_check_import_cell_without_the_module_prints_how_to_get_it(capsys):
    source = cell_with_tag(nbformat.read(str(TEMPLATE), as_version=4), "check-import").source
    assert importlib.util.find_spec("sheet11_check") is None
    ns: dict = {}
    exec(source, ns)
    ns["check"]("11.4.a")
    assert "sheet11_check.py" in capsys.readouterr().out


# ============================================================================ the check module

def test_check_module_passes_the_solution_quickly(bundle, monkeypatch):
    import time
    monkeypatch.chdir(bundle)
    module = _load_check_module(bundle)
    ns = _solution_namespace()
    start = time.perf_counter()
    results = module.run_checks(*[f for f in FUNCTIONS if f != "train_recall"], namespace=ns)
    assert time.perf_counter() - start < 10  # generous: a loaded machine
    public = sum(len(c.public_cases()) for c in load_rubric().checks())
    assert len(results) == public and all(r.passed for r in results), results
    by_question = module.run_checks("11.4.b", namespace=ns)
    assert list(dict.fromkeys(r.function for r in by_question)) == [
        "activation_jacobian", "hidden_grad_norms", "gradient_bound"]


def test_check_module_messages(bundle, monkeypatch):
    monkeypatch.chdir(bundle)
    module = _load_check_module(bundle)
    ns = _solution_namespace()
    ns["_correct_bound"] = _solution_namespace()["gradient_bound"]  # its own rnn_forward
    exec(W_TRANSPOSED + '''
def lstm_cell(x, h, c, W_ih, W_hh, b_ih, b_hh):
    gates = x @ W_ih.T + b_ih + h @ W_hh.T + b_hh
    i, f, o, g = gates.chunk(4, dim=1)
    c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c_new), c_new

def activation_jacobian(z, activation="tanh"):
    return (1 - torch.tanh(z) ** 2).reshape(-1, 1)           # the diagonal only

def hidden_grad_norms(x, h0, W, U, b, loss_fn, activation="tanh"):
    return torch.zeros(x.shape[0], dtype=torch.int64)

def gradient_bound(x, h0, W, U, b, loss_fn, activation="tanh"):
    r = torch.as_tensor(_correct_bound(x, h0, W, U, b, loss_fn, activation)).clone()
    r[3] += 1.0
    return r

def tbptt_grads(x, y, params, k):
    params["W"].mul_(2)
    return {"W": params["W"]}

def tree_encode(tree, embed, W, b):
    raise NotImplementedError("tree_encode: not implemented yet")
''', ns)
    del ns["train_recall"]
    results: dict = {}
    for r in module.run_checks(namespace=ns):
        results.setdefault(r.function, r)  # the first example of each function
    assert "matches `rnn_forward` with `W` transposed" in results["rnn_forward"].message
    assert "i, f, o, g" in results["lstm_cell"].message
    assert "shape (6, 1)" in results["activation_jacobian"].message
    assert "expected shape (6, 6)" in results["activation_jacobian"].message
    assert "dtype torch.int64" in results["hidden_grad_norms"].message
    msg = results["gradient_bound"].message
    assert "first at index (3,)" in msg and "got" in msg and "expected" in msg
    assert "no 'U', 'b', 'V', 'c'" in results["tbptt_grads"].message
    assert "`params['W']` was changed in place (values)" in results["tbptt_grads"].message
    assert results["tree_encode"].status == "todo"
    assert results["train_recall"].status == "missing"


def test_check_prints_a_report(bundle, monkeypatch, capsys):
    monkeypatch.chdir(bundle)
    module = _load_check_module(bundle)
    monkeypatch.setattr(module, "_namespace", lambda: _solution_namespace(W_TRANSPOSED))
    module.check("11.4.a")
    out = capsys.readouterr().out
    n = len(next(c for c in load_rubric().checks() if c.function == "rnn_forward").public_cases())
    assert "FAIL" in out and "`W` transposed" in out and f"0 of {n} public check(s) pass" in out
    module.check("nothing")
    assert "unknown question or function" in capsys.readouterr().out


RULE_INPUTS_TEXT = 'breaks the rule "a function leaves its arguments as it found them"'

ACTIVATION_IGNORED = '''
def rnn_forward(x, h0, W, U, b, activation="tanh"):
    h, out = h0, []
    for t in range(x.shape[0]):
        h = torch.tanh(h @ W.T + x[t] @ U.T + b)   # activation is ignored
        out.append(h)
    return torch.stack(out)
'''

TBPTT_REQUIRES_GRAD = '''
def tbptt_grads(x, y, params, k):
    for p in params.values():
        p.requires_grad_(True)                     # on the caller's tensors
    h = torch.zeros(x.shape[1], params["W"].shape[0])
    for t in range(x.shape[0]):
        if t == x.shape[0] - k:
            h = h.detach()
        h = torch.tanh(h @ params["W"].T + x[t] @ params["U"].T + params["b"])
    torch.nn.functional.cross_entropy(h @ params["V"].T + params["c"], y).backward()
    return {n: p.grad for n, p in params.items()}
'''

TBPTT_ZEROES = '''
_tbptt_right = tbptt_grads
def tbptt_grads(x, y, params, k):
    grads = _tbptt_right(x, y, params, k)
    for p in params.values():
        p.zero_()                                  # wipes the caller's parameters
    return grads
'''

TBPTT_OWN_CLONES = '''
_tbptt_right = tbptt_grads
def tbptt_grads(x, y, params, k):
    own = {n: p.detach().clone().double() for n, p in params.items()}
    own["W"].mul_(1.0)                             # in place, but on its own copy
    return {n: g.numpy() for n, g in _tbptt_right(x.double(), y, own, k).items()}
'''


def test_check_module_fails_an_rnn_forward_that_ignores_activation(bundle, monkeypatch):
    """Issue 9, section 3: the public examples show sigmoid, so check() catches it."""
    monkeypatch.chdir(bundle)
    module = _load_check_module(bundle)
    results = module.run_checks("rnn_forward", namespace=_solution_namespace(ACTIVATION_IGNORED))
    failed = [r for r in results if r.status == "fail"]
    assert failed and all("sigmoid" in r.example for r in failed), results
    assert any("the `activation` argument is ignored" in r.message for r in failed), failed
    assert any(r.passed for r in results)  # the tanh examples still pass


@pytest.mark.parametrize(("overrides", "said"), [
    (TBPTT_REQUIRES_GRAD, ("`requires_grad` of `params['W']` was switched on", "`.grad` of `params['W']` was set")),
    (TBPTT_ZEROES, ("`params['W']` was changed in place (values)",)),
])
def test_check_module_names_the_contract_rule(bundle, monkeypatch, overrides, said):
    monkeypatch.chdir(bundle)
    module = _load_check_module(bundle)
    results = module.run_checks("tbptt_grads", namespace=_solution_namespace(overrides))
    assert results and all(r.status == "fail" for r in results), results
    for r in results:
        assert 'breaks the rule "a function leaves its arguments as it found them"' in r.message, r
        for phrase in said:
            assert phrase in r.message, r.message


def test_check_module_names_a_second_call_that_differs(bundle, monkeypatch):
    monkeypatch.chdir(bundle)
    module = _load_check_module(bundle)
    ns = _solution_namespace("""
_calls = [0]
_lstm_right = lstm_cell
def lstm_cell(x, h, c, W_ih, W_hh, b_ih, b_hh):
    _calls[0] += 1
    h_new, c_new = _lstm_right(x, h, c, W_ih, W_hh, b_ih, b_hh)
    return h_new * _calls[0] ** 0, c_new + (_calls[0] % 2 == 0)
""")
    results = module.run_checks("lstm_cell", namespace=ns)
    assert all(r.status == "fail" and "a second call with fresh copies of the same inputs returned "
               "different values" in r.message for r in results), results


def test_check_module_passes_a_correct_function_in_an_unusual_style(bundle, monkeypatch):
    monkeypatch.chdir(bundle)
    module = _load_check_module(bundle)
    results = module.run_checks("tbptt_grads", namespace=_solution_namespace(TBPTT_OWN_CLONES))
    assert results and all(r.passed for r in results), results


def test_release_ships_every_public_setting(bundle, rubric):
    """The bundle holds each public case with its own parameters (sigmoid, k >= T, ...), and the
    outputs of the known mistakes that tell apart on them."""
    import json
    spec = json.loads((bundle / "sheet11_public.json").read_text(encoding="utf-8"))
    for check in rubric.checks():
        shipped = [c["params"] for c in spec["functions"][check.function]["cases"]]
        assert shipped == [c.describe() for c in check.public_cases()]
    rnn = spec["functions"]["rnn_forward"]["cases"]
    assert any("activation=sigmoid" in c["params"] and any("the `activation` argument is ignored" in m["description"]
                                                           for m in c["mistakes"]) for c in rnn)
    tb = [c["params"] for c in spec["functions"]["tbptt_grads"]["cases"]]
    assert any("k=1" in p for p in tb) and any("T=5" in p and "k=9" in p for p in tb)


@pytest.mark.slow
def test_grade_check_fails_an_rnn_forward_that_ignores_activation_and_a_mutating_tbptt(tmp_path):
    """`grade check` (check_notebook, what the command prints row by row) in a real kernel."""
    from grader.students.student import check_notebook
    nb = solution(fast=True)
    set_function(nb, "rnn_forward", ACTIVATION_IGNORED)
    set_function(nb, "tbptt_grads", TBPTT_ZEROES)
    report = check_notebook(write_notebook(nb, tmp_path / "sheet11.ipynb"))
    assert report.exit_code == 1
    rnn = [r for r in report.rows if r.item.startswith("rnn_forward")]
    assert {r.status for r in rnn if "sigmoid" in r.item} == {"fail"}
    assert {r.status for r in rnn if "tanh" in r.item} == {"pass"}
    assert all("the `activation` argument is ignored" in r.message for r in rnn if r.status == "fail")
    tb = [r for r in report.rows if r.item.startswith("tbptt_grads")]
    assert tb and all(r.status == "fail" and RULE_INPUTS_TEXT in r.message
                      and "`params['W']` was changed in place (values)" in r.message for r in tb), tb


# ============================================================================ pack

def _group_notebook(tmp_path: Path, members, name="sheet11.ipynb") -> Path:
    nb = solution(fast=True)
    set_group(nb, members)
    return write_notebook(nb, tmp_path / name)


CURIE_GROUP = [("Émilie du Châtelet", "2571111", "emilie@uni.example"),
               ("Jean-Luc Picard", "2572222", "jl@uni.example"),
               ("Maria Salomea Skłodowska-Curie", "2573333", "marie@uni.example")]


def test_pack_names_the_zip_from_the_group_cell(tmp_path):
    nb_path = _group_notebook(tmp_path, CURIE_GROUP, "work in progress.ipynb")
    extra = tmp_path / "drawing.pdf"
    extra.write_bytes(b"%PDF-1.4")
    result = pack(nb_path, [extra], tmp_path / "out")
    assert result.path.name == "Chatelet_2571111_Picard_2572222_SklodowskaCurie_2573333.zip"
    assert check_naming(result.path.name, result.members) == ()
    with zipfile.ZipFile(result.path) as zf:
        assert sorted(zf.namelist()) == ["drawing.pdf", "sheet11.ipynb"]
        assert zf.read("sheet11.ipynb") == nb_path.read_bytes()
    assert result.problems == () and result.warnings == ()


def test_pack_notes_what_is_unfinished(tmp_path):
    nb = nbformat.read(str(TEMPLATE), as_version=4)
    set_group(nb, CURIE_GROUP[:2])
    result = pack(write_notebook(nb, tmp_path / "sheet11.ipynb"), [], tmp_path / "out")
    assert result.path.is_file() and result.problems == ()
    text = " ".join(result.warnings)
    assert all(qid in text for qid in WRITTEN_IDS) and all(f"`{fn}`" in text for fn in FUNCTIONS)


@pytest.mark.parametrize("members, extra, reason", [
    ([("Ada Lovelace", "25x1", "ada@uni.example"), ("Alan Turing", "2579876", "alan@uni.example")],
     None, "not digits only"),
    ([("Ada Lovelace", "2571234", "ada(at)uni"), ("Alan Turing", "2579876", "alan@uni.example")],
     None, "group.email"),
    ([("Ada Lovelace", "2571234", "ada@uni.example")], None, "naming.group_size"),
    ([("Ada Lovelace", "2571234", "ada@uni.example"), ("Alan Turing", "2571234", "alan@uni.example")],
     None, "share the student id"),
    ([("Ada Lovelace", "2571234", "ada@uni.example"), ("Alan Turing", "2579876", "alan@uni.example")],
     "other.ipynb", "one notebook only"),
])
def test_pack_refuses_with_the_reason(tmp_path, members, extra, reason):
    nb_path = _group_notebook(tmp_path, members)
    extras = []
    if extra:
        (tmp_path / extra).write_text("{}")
        extras = [tmp_path / extra]
    with pytest.raises(PackRefused, match=re.escape(reason)):
        pack(nb_path, extras, tmp_path / "out")
    assert not list((tmp_path / "out").glob("*.zip")) if (tmp_path / "out").exists() else True
    forced = pack(nb_path, extras, tmp_path / "out", force=True)
    assert forced.path.is_file() and forced.problems


def test_pack_without_a_group_is_a_usage_error(tmp_path):
    nb = solution(fast=True)
    nb.cells.remove(cell_with_tag(nb, "group"))
    path = write_notebook(nb, tmp_path / "sheet11.ipynb")
    with pytest.raises(UsageError, match="no group cell"):
        pack(path, [], tmp_path)
    blank = tmp_path / "blank.ipynb"
    shutil.copyfile(TEMPLATE, blank)
    with pytest.raises(UsageError, match="empty 'name'"):
        pack(blank, [], tmp_path)


def test_pack_cli_exit_codes(tmp_path):
    good = _group_notebook(tmp_path, CURIE_GROUP[:2])
    runner = CliRunner()
    ok = runner.invoke(main, ["pack", str(good), "-o", str(tmp_path / "out")], env=WIDE)
    assert ok.exit_code == 0, ok.output
    assert "Chatelet_2571111_Picard_2572222.zip" in ok.output
    bad = _group_notebook(tmp_path, CURIE_GROUP[:1], "alone.ipynb")
    refused = runner.invoke(main, ["pack", str(bad), "-o", str(tmp_path / "out")], env=WIDE)
    assert refused.exit_code == 1 and "naming.group_size" in refused.output
    forced = runner.invoke(main, ["pack", str(bad), "-o", str(tmp_path / "out"), "--force"], env=WIDE)
    assert forced.exit_code == 0 and "packed anyway" in forced.output
    missing = runner.invoke(main, ["pack", str(tmp_path / "nothing.ipynb")], env=WIDE)
    assert missing.exit_code == 2 and "Traceback" not in missing.output


def test_check_cli_usage_error(tmp_path):
    result = CliRunner().invoke(main, ["check", str(tmp_path / "nothing.ipynb")], env=WIDE)
    assert result.exit_code == 2 and "does not exist" in result.output


# ============================================================================ kernels (slow)

@pytest.mark.slow
def test_packed_group_with_diacritics_is_graded_without_naming_flags(tmp_path):
    nb_path = _group_notebook(tmp_path, CURIE_GROUP)
    zipped = pack(nb_path, [], tmp_path / "out").path
    result = grade_submission(zipped, quick_context())
    assert result.status == "graded", result.message
    codes = {f.code for f in result.flags}
    assert not {c for c in codes if c.startswith(("naming.", "group."))}, result.flags
    assert [m["name"] for m in result.group] == [m[0] for m in CURIE_GROUP]
    assert result.questions["11.4.a"].points == 1.0


@pytest.mark.slow
def test_grade_check_on_the_solution_exits_0_and_draws_only_public_seeds(monkeypatch, rubric):
    seen = _record_seeds(monkeypatch)
    result = CliRunner().invoke(main, ["check", str(SOLUTION)], env=WIDE)
    assert result.exit_code == 0, result.output
    assert "Everything that can be checked automatically is in order" in result.output
    assert "FIX" not in result.output and "OPEN" not in result.output
    for fn in FUNCTIONS:
        assert fn in result.output
    assert "Lovelace_2571234_Turing_2579876" in result.output  # the file-name advice
    assert seen and set(seen) <= _public_seeds(rubric), seen
    assert rubric.recall.public_heldout_seed in seen
    assert not set(seen) & _hidden_seeds(rubric)


@pytest.mark.slow
def test_grade_check_on_the_blank_template_lists_what_is_missing(tmp_path):
    result = CliRunner().invoke(main, ["check", str(TEMPLATE)], env=WIDE)
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    for qid in WRITTEN_IDS:
        assert any(qid in line and "OPEN" in line and "no answer yet" in line for line in lines), qid
    for fn in FUNCTIONS:
        assert any(f"`{fn}` is not implemented yet" in line and "OPEN" in line for line in lines), fn
    assert any("group.missing" in line and "FIX" in line for line in lines)
    assert "Not ready yet" in result.output


@pytest.mark.slow
def test_bundle_checks_pass_in_a_kernel_without_the_project(tmp_path, rubric):
    """The bundle alone, in the sandbox (the project's packages masked), with the solution's
    functions pasted into the template's stubs: every check cell passes; a known mistake is named."""
    from grader.errors import SandboxUnavailable
    from grader.kernel.execute import KernelSession
    from grader.kernel.sandbox import choose_sandbox, give_to_kernel
    try:
        sandbox = choose_sandbox("bwrap")
    except SandboxUnavailable as exc:
        pytest.skip(str(exc))
    folder = tmp_path / "bundle"
    release(folder)
    nb = nbformat.read(str(folder / "sheet11.ipynb"), as_version=4)
    sol = nbformat.read(str(SOLUTION), as_version=4)
    for name in FUNCTIONS:
        cell_with_tag(nb, f"function-{name}").source = cell_with_tag(sol, f"function-{name}").source
    # The try-cells train models and compare with torch; the check cells are what is tested.
    nb.cells = [c for c in nb.cells if not any(t.startswith("try-") for t in c.metadata.get("tags", []))]
    probe = nbformat.v4.new_code_cell('import importlib.util\nprint("project:", importlib.util.find_spec("grader"), '
                                      'importlib.util.find_spec("reference"))')
    mistake = nbformat.v4.new_code_cell(W_TRANSPOSED + '\ncheck("11.4.a")')
    nb.cells += [probe, mistake]
    with KernelSession(sandbox, rubric.limits) as session:
        for p in folder.iterdir():
            shutil.copyfile(p, session.scratch / p.name)
            give_to_kernel(session.scratch / p.name)
        run = session.run_notebook(nb)
    assert run.started and not run.flags, run.flags
    text = {id(c): "".join(o.get("text", "") for o in c.get("outputs", [])) for c in nb.cells if c.cell_type == "code"}
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors, errors
    assert text[id(cell_with_tag(nb, "check-import"))] == ""  # the module was found
    assert text[id(probe)].strip() == "project: None None"
    for name in FUNCTIONS:
        out = text[id(cell_with_tag(nb, f"check-{name}"))]
        assert "PASS" in out and "All" in out, (name, out)
        assert not re.search(r"\b(FAIL|TODO|MISSING)\b", out), (name, out)
    assert "nn.Module" in text[id(cell_with_tag(nb, "check-train_recall"))]
    out = text[id(mistake)]
    assert "FAIL" in out and "your output matches `rnn_forward` with `W` transposed" in out, out
