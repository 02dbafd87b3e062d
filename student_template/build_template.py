"""Build the student notebook ``student_template/sheet11.ipynb`` for Exercise Sheet 11.

Run ``python student_template/build_template.py`` from the project root. The notebook is built
here with the ``nbformat.v4`` builders so that it can be reviewed as code; the written file is
committed. Output is deterministic (fixed cell ids, no outputs), so a test can rebuild it and
compare it with the committed file.

Cells are found by ``metadata.tags`` (see ``docs/contract.md`` §2). Tags beyond the
contract: ``exercise-<n>``, ``question-<id>``, ``imports``, ``function-<name>``, ``try-<name>``,
``given-make_recall_data`` and ``intro-11.4``.

The prose (instructions, questions, headings, the functions' stubs) is in ``prose/``, one file
per cell, with placeholders for the rubric's numbers (``prose/README.md``). The public seeds of
the try-cells, the recall settings, points and limits are read from ``rubrics/sheet11.toml`` so
the notebook cannot drift from the rubric.
"""
from __future__ import annotations

import re
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
from nbformat import v4

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
NOTEBOOK_PATH = HERE / "sheet11.ipynb"
RUBRIC_PATH = ROOT / "rubrics" / "sheet11.toml"
# Beside this script wherever it is (a checkout, or the installed grader.template package, which
# ships it as package data), so the build reads the prose of the same version as its code.
PROSE_DIR = HERE / "prose"

PLACEHOLDER = "*Your answer here.*"

#: The written questions in notebook order (contract §1).
WRITTEN_IDS = [
    "11.1.1", "11.1.2", "11.2.1", "11.2.2",
    "11.3.1", "11.3.2", "11.3.3", "11.3.4a", "11.3.4b",
]

#: The functions students write, in notebook order (contract §3).
FUNCTIONS = [
    "rnn_forward", "activation_jacobian", "hidden_grad_norms", "gradient_bound",
    "lstm_cell", "tree_encode", "tbptt_grads", "train_recall",
]

#: The five architectures of 11.3.1, as named in the answer list.
ARCHITECTURES = [
    "One-to-one",
    "One-to-many",
    "Many-to-one",
    "Many-to-many (encoder-decoder)",
    "Many-to-many (synchronised)",
]



# ---------------------------------------------------------------------------------------------
# helpers

def _cell_id(name: str) -> str:
    """A valid, stable nbformat cell id made from a tag or a name."""
    cid = re.sub(r"[^A-Za-z0-9_-]", "-", name)
    return cid[:64]


def md(source: str, cid: str, tags: list[str] | None = None) -> nbformat.NotebookNode:
    cell: nbformat.NotebookNode = v4.new_markdown_cell(source.strip("\n"))
    cell.id = _cell_id(cid)
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


def code(source: str, cid: str, tags: list[str] | None = None) -> nbformat.NotebookNode:
    cell: nbformat.NotebookNode = v4.new_code_cell(source.strip("\n"))
    cell.id = _cell_id(cid)
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


def load_rubric(path: Path = RUBRIC_PATH) -> dict[str, Any]:
    with open(path, "rb") as fh:
        return tomllib.load(fh)


def public_seeds(rubric: dict[str, Any]) -> dict[str, list[int]]:
    """Map each automatically checked function to its public seeds."""
    seeds: dict[str, list[int]] = {}
    for question in rubric.get("questions", {}).values():
        for check in question.get("checks", []):
            seeds[check["function"]] = [case["seed"] for case in check.get("public", [])]
    return seeds


def points(rubric: dict[str, Any], qid: str) -> str:
    return _with_unit(float(rubric["questions"][qid]["points"]))


def _with_unit(value: float) -> str:
    return f"{value:g} {'point' if value == 1 else 'points'}"


def _number(value: object) -> str:
    # The shortest way a reader writes it: 120 not 120.0, 0.75 as is.
    return f"{value:g}" if isinstance(value, float) else str(value)


def _sigmoid_power(bias: float, steps: int) -> float:
    import math
    return (1.0 / (1.0 + math.exp(-bias))) ** steps


def _facts(rubric: dict[str, Any]) -> dict[str, Callable[..., str]]:
    """The placeholders of the prose files: name -> function of the placeholder's arguments."""
    questions, recall = rubric["questions"], rubric["recall"]
    return {
        "points": lambda qid: points(rubric, qid),
        "value": lambda qid: _number(float(questions[qid]["points"])),
        "exercise_points": lambda n: _with_unit(sum(float(q["points"]) for qid, q in questions.items()
                                                    if qid.startswith(n + "."))),
        "total": lambda: _number(sum(float(q["points"]) for q in questions.values())),
        "q": lambda qid, key: _number(questions[qid][key]),
        "recall": lambda key: _number(recall[key]),
        "recall_percent": lambda key: f"{recall[key]:.0%}",
        "train_seeds": lambda: ", ".join(str(recall["train_seed"] + i) for i in range(recall["tries"])),
        "tries_plural": lambda: "s" if recall["tries"] != 1 else "",
        "forget_gate_open": lambda bias: f"{_sigmoid_power(float(bias), recall['seq_len']):.2f}",
    }


_PLACEHOLDER = re.compile(r"\{\{([^{}]*)\}\}")


def prose(name: str, rubric: dict[str, Any]) -> str:
    """The file ``prose/<name>`` with its placeholders filled in from ``rubric``.

    Raises ValueError naming the file and the placeholder where one is unknown, has the wrong
    arguments or names a key the rubric lacks, and where a ``{{`` is left that is no placeholder."""
    path = PROSE_DIR / name
    text = path.read_text(encoding="utf-8")
    facts = _facts(rubric)

    def fill(match: re.Match[str]) -> str:
        fact, *args = match[1].split()
        if fact not in facts:
            raise ValueError(f"{path}: unknown placeholder {match[0]!r}; the facts are "
                             f"{', '.join(sorted(facts))} (see {PROSE_DIR / 'README.md'})")
        try:
            return facts[fact](*args)
        except (TypeError, KeyError) as exc:
            raise ValueError(f"{path}: cannot fill {match[0]!r} from the rubric ({type(exc).__name__}: {exc}); "
                             f"see {PROSE_DIR / 'README.md'}") from None

    out = _PLACEHOLDER.sub(fill, text)
    if "{{" in out:  # a lone "}}" is LaTeX's (a closing brace pair); "{{" only opens a placeholder
        raise ValueError(f"{path}: a '{{{{' that is not a placeholder {{{{fact argument...}}}}")
    return out


# ---------------------------------------------------------------------------------------------
# written part

def title_cells(rubric: dict[str, Any]) -> list[nbformat.NotebookNode]:
    return [
        md(prose("title.md", rubric), "title"),
        md(prose("instructions.md", rubric), "instructions"),
        code(
            """
GROUP = [{"name": "", "student_id": "", "email": ""}, {"name": "", "student_id": "", "email": ""}]
# A third member may be added as one more {"name": ..., "student_id": ..., "email": ...} entry.
""",
            "group",
            ["group"],
        ),
        code(CHECK_IMPORT, "check-import", ["check-import"]),
    ]


def question_cells(rubric: dict[str, Any]) -> list[nbformat.NotebookNode]:
    cells: list[nbformat.NotebookNode] = []

    def exercise(n: str) -> None:
        cells.append(md(prose(f"exercise-{n}.md", rubric), f"exercise-{n}", [f"exercise-{n}"]))

    def question(qid: str) -> None:
        text = prose(f"question-{qid}.md", rubric)
        cells.append(md(f"**{qid}** ({points(rubric, qid)}) {text.strip()}",
                        f"question-{qid}", [f"question-{qid}"]))

    def answer(qid: str, source: str = PLACEHOLDER) -> None:
        cells.append(md(source, f"answer-{qid}", [f"answer-{qid}"]))

    exercise("11.1")
    for qid in ("11.1.1", "11.1.2"):
        question(qid)
        answer(qid)
    exercise("11.2")
    for qid in ("11.2.1", "11.2.2"):
        question(qid)
        answer(qid, PLACEHOLDER + "\n\nSources: ")
    exercise("11.3")
    question("11.3.1")
    answer("11.3.1", "\n".join(f"- **{name}:** {PLACEHOLDER}" for name in ARCHITECTURES))
    for qid in ("11.3.2", "11.3.3", "11.3.4a", "11.3.4b"):
        question(qid)
        answer(qid)
    return cells


# ---------------------------------------------------------------------------------------------
# practical part

MAKE_RECALL_DATA = '''
def make_recall_data(n, seq_len, n_classes, seed):
    """Random one-hot sequences whose label is their first token (given; do not change).

    Returns x of shape (seq_len, n, n_classes), float32, and y of shape (n,), int64.
    """
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, n_classes, (seq_len, n), generator=g)
    x = torch.nn.functional.one_hot(tokens, n_classes).float()
    y = tokens[0]
    return x, y
'''


CHECK_IMPORT = """
# The self-check: `check("11.4.a")` runs the public examples of 11.4.a against your functions,
# `check()` all of them. It needs sheet11_check.py, sheet11_public.json and sheet11_public.npz
# (from the course's release bundle) in the same folder as this notebook.
try:
    from sheet11_check import check
except ImportError:
    def check(*what):
        print("The self-check is not available: put sheet11_check.py, sheet11_public.json and "
              "sheet11_public.npz (from the course's release bundle) next to this notebook, then "
              "run the cell `from sheet11_check import check` again.")
"""

#: The question of each function, for the check cells.
QUESTION_OF = {
    "rnn_forward": "11.4.a", "activation_jacobian": "11.4.b", "hidden_grad_norms": "11.4.b",
    "gradient_bound": "11.4.b", "lstm_cell": "11.4.c", "tree_encode": "11.4.c",
    "tbptt_grads": "11.4.d", "train_recall": "11.4.d",
}


def check_source(name: str) -> str:
    """The check cell after a function's try-it cell."""
    qid = QUESTION_OF[name]
    if sum(q == qid for q in QUESTION_OF.values()) == 1:
        return f'check("{qid}")   # the public examples of {qid}; check() runs all of 11.4'
    note = ""
    if name == "train_recall":
        note = ("\n# For train_recall only the interface is checked, on a short run (a few seconds);"
                "\n# `grade check --full` runs the grading experiment itself.")
    return (f'check("{name}")   # the public examples of `{name}`; check("{qid}") runs all of '
            f'{qid}, check() all of 11.4{note}')


def try_sources(seeds: dict[str, list[int]], recall: dict[str, Any]) -> dict[str, str]:
    """The try-it cells, one per function, each built from the rubric's public seed."""
    short, sl, nc = recall["check_seq_len"], recall["seq_len"], recall["n_classes"]
    return {
        "rnn_forward": f'''
# Try it: compare with torch.nn.RNN on a public example.
torch.manual_seed({seeds["rnn_forward"][0]})
T, B, D, Hd = 5, 3, 4, 6
x, h0 = torch.randn(T, B, D), torch.randn(B, Hd)
rnn = torch.nn.RNN(D, Hd, nonlinearity="tanh")
W, U = rnn.weight_hh_l0.detach(), rnn.weight_ih_l0.detach()
b = (rnn.bias_ih_l0 + rnn.bias_hh_l0).detach()
try:
    H = torch.as_tensor(rnn_forward(x, h0, W, U, b))
    print("H shape:", tuple(H.shape), "expected:", (T, B, Hd))
    with torch.no_grad():
        expected, _ = rnn(x, h0.unsqueeze(0))
    print("equals torch.nn.RNN:", torch.allclose(H.float(), expected, rtol=1e-4, atol=1e-5))
except NotImplementedError:
    print("rnn_forward is not implemented yet")
''',
        "activation_jacobian": f'''
# Try it: compare with the Jacobian that autograd computes.
torch.manual_seed({seeds["activation_jacobian"][0]})
z = torch.randn(5)
try:
    for act, f in [("tanh", torch.tanh), ("sigmoid", torch.sigmoid)]:
        J = torch.as_tensor(activation_jacobian(z, activation=act))
        expected = torch.autograd.functional.jacobian(f, z)
        print(act, "J shape:", tuple(J.shape),
              "equals autograd:", torch.allclose(J.float(), expected, rtol=1e-4, atol=1e-6))
except NotImplementedError:
    print("activation_jacobian is not implemented yet")
''',
        "hidden_grad_norms": f'''
# Try it: W has spectral norm 0.4, so the gradients should shrink as t goes back in time.
torch.manual_seed({seeds["hidden_grad_norms"][0]})
T, D, Hd = 8, 3, 5
x, h0 = torch.randn(T, 1, D), torch.zeros(1, Hd)
W = torch.randn(Hd, Hd)
W = 0.4 * W / torch.linalg.matrix_norm(W, ord=2)
U, b, v = torch.randn(Hd, D), torch.randn(Hd), torch.randn(Hd)
loss_fn = lambda h_T: (h_T * v.to(h_T.dtype)).sum()   # L = v . h_T, so dL/dh_T = v
try:
    g = torch.as_tensor(hidden_grad_norms(x, h0, W, U, b, loss_fn))
    print("g shape:", tuple(g.shape), "expected:", (T,))
    print("g =", g)
    print("g[T-1] equals ||v||:", torch.isclose(g[-1].double(), v.norm().double(), rtol=1e-4).item())
except NotImplementedError:
    print("hidden_grad_norms is not implemented yet")
''',
        "gradient_bound": f'''
# Try it: W has spectral norm 2.5; the bound r must lie above the true norms g everywhere.
torch.manual_seed({seeds["gradient_bound"][0]})
T, D, Hd = 6, 4, 6
x, h0 = torch.randn(T, 1, D), torch.zeros(1, Hd)
W = torch.randn(Hd, Hd)
W = 2.5 * W / torch.linalg.matrix_norm(W, ord=2)
U, b = torch.randn(Hd, D), torch.randn(Hd)
loss_fn = lambda h_T: 0.5 * (h_T ** 2).sum()   # dL/dh_T = h_T
try:
    r = torch.as_tensor(gradient_bound(x, h0, W, U, b, loss_fn)).double()
    print("r shape:", tuple(r.shape), "expected:", (T,))
    print("r =", r)
    try:
        g = torch.as_tensor(hidden_grad_norms(x, h0, W, U, b, loss_fn)).double()
        print("g <= r everywhere:", bool((g <= r * (1 + 1e-4) + 1e-7).all()))
        print("r[T-1] equals g[T-1]:", torch.isclose(r[-1], g[-1], rtol=1e-4).item())
    except NotImplementedError:
        print("implement hidden_grad_norms to compare g with r")
except NotImplementedError:
    print("gradient_bound is not implemented yet")
''',
        "lstm_cell": f'''
# Try it: compare with torch.nn.LSTMCell on a public example.
torch.manual_seed({seeds["lstm_cell"][0]})
B, D, Hd = 3, 4, 5
x, h, c = torch.randn(B, D), torch.randn(B, Hd), torch.randn(B, Hd)
cell = torch.nn.LSTMCell(D, Hd)
weights = [p.detach() for p in (cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh)]
try:
    h_new, c_new = lstm_cell(x, h, c, *weights)
    h_new, c_new = torch.as_tensor(h_new).float(), torch.as_tensor(c_new).float()
    print("h_new shape:", tuple(h_new.shape), "c_new shape:", tuple(c_new.shape))
    with torch.no_grad():
        h_ref, c_ref = cell(x, (h, c))
    print("equals torch.nn.LSTMCell:",
          torch.allclose(h_new, h_ref, rtol=1e-4, atol=1e-5)
          and torch.allclose(c_new, c_ref, rtol=1e-4, atol=1e-5))
except NotImplementedError:
    print("lstm_cell is not implemented yet")
''',
        "tree_encode": f'''
# Try it: a leaf is its embedding, and the root combines its two subtrees.
torch.manual_seed({seeds["tree_encode"][0]})
d = 4
embed = {{word: torch.randn(d) for word in ["the", "cat", "sat", "on", "mat"]}}
W, b = 0.5 * torch.randn(d, 2 * d), torch.randn(d)
tree = (("the", "cat"), ("sat", ("on", ("the", "mat"))))
try:
    p = torch.as_tensor(tree_encode(tree, embed, W, b)).float()
    print("root shape:", tuple(p.shape), "expected:", (d,))
    leaf = torch.as_tensor(tree_encode("cat", embed, W, b)).float()
    print("a leaf is its embedding:", torch.allclose(leaf, embed["cat"]))
    left = torch.as_tensor(tree_encode(tree[0], embed, W, b)).float()
    right = torch.as_tensor(tree_encode(tree[1], embed, W, b)).float()
    expected = torch.tanh(W @ torch.cat([left, right]) + b)
    print("root = tanh(W [left; right] + b):", torch.allclose(p, expected, rtol=1e-4, atol=1e-5))
except NotImplementedError:
    print("tree_encode is not implemented yet")
''',
        "tbptt_grads": f'''
# Try it: with k >= T the gradients equal full back-propagation through torch.nn.RNN.
torch.manual_seed({seeds["tbptt_grads"][0]})
T, B, D, Hd, C = 7, 4, 3, 5, 3
x, y = torch.randn(T, B, D), torch.randint(0, C, (B,))
params = {{"W": 0.5 * torch.randn(Hd, Hd), "U": torch.randn(Hd, D), "b": torch.randn(Hd),
          "V": torch.randn(C, Hd), "c": torch.randn(C)}}
before = {{name: p.clone() for name, p in params.items()}}
rnn = torch.nn.RNN(D, Hd, nonlinearity="tanh")
with torch.no_grad():
    rnn.weight_hh_l0.copy_(params["W"]); rnn.weight_ih_l0.copy_(params["U"])
    rnn.bias_ih_l0.copy_(params["b"]); rnn.bias_hh_l0.zero_()
V_, c_ = params["V"].clone().requires_grad_(), params["c"].clone().requires_grad_()
_, h_T = rnn(x)                                       # h_0 = 0
F.cross_entropy(h_T[0] @ V_.T + c_, y).backward()
full = {{"W": rnn.weight_hh_l0.grad, "U": rnn.weight_ih_l0.grad, "b": rnn.bias_ih_l0.grad,
        "V": V_.grad, "c": c_.grad}}
try:
    grads = tbptt_grads(x, y, params, k=T)
    print("k = T equals full BPTT:", all(
        torch.allclose(torch.as_tensor(grads[n]).float(), full[n], rtol=1e-4, atol=1e-6) for n in full))
    grads_1 = tbptt_grads(x, y, params, k=1)
    for n in ["W", "U", "b"]:
        print(f"||dL/d{{n}}||  k=1: {{torch.as_tensor(grads_1[n]).norm():.4f}}   k=T: {{full[n].norm():.4f}}")
    print("params unchanged:", all(torch.equal(params[n], before[n]) for n in params))
except NotImplementedError:
    print("tbptt_grads is not implemented yet")
''',
        "train_recall": f'''
# Try it at a short length (seq_len {short}) so it stays fast. The grader trains the LSTM
# with seq_len={sl}, n_classes={nc} and needs a held-out accuracy of at least
# {recall["threshold"]} within {recall["cpu_time_limit"]:g} CPU seconds (see the docstring). Try seq_len={sl}
# here too: does the RNN keep up? (`grade check --full` runs the grader's experiment.)
import time
x_test, y_test = make_recall_data(500, {short}, {nc}, seed={recall["public_heldout_seed"]})
for cell in ["lstm", "rnn"]:
    try:
        start = time.process_time()
        model = train_recall(cell, seq_len={short}, n_classes={nc}, seed={recall["train_seed"]})
        seconds = time.process_time() - start
    except NotImplementedError:
        print("train_recall is not implemented yet")
        break
    model.eval()
    with torch.no_grad():
        logits = torch.as_tensor(model(x_test))
    acc = (logits.argmax(dim=1) == y_test).float().mean().item()
    print(f"{{cell}}: held-out accuracy {{acc:.3f}} at seq_len {short} ({{seconds:.1f}} CPU s)")
''',
    }


def practical_cells(rubric: dict[str, Any]) -> list[nbformat.NotebookNode]:
    seeds = public_seeds(rubric)
    recall = rubric["recall"]
    tries = try_sources(seeds, recall)
    cells: list[nbformat.NotebookNode] = [
        md(prose("intro-11.4.md", rubric), "intro-11.4", ["intro-11.4"]),
        code(
            """
import numpy as np
import torch
import torch.nn.functional as F

torch.set_num_threads(1)
""",
            "imports", ["imports"],
        ),
    ]
    for name in FUNCTIONS:
        cells.append(md(prose(f"heading-{name}.md", rubric), f"heading-{name}"))
        if name == "train_recall":
            cells.append(code(MAKE_RECALL_DATA, "given-make_recall_data", ["given-make_recall_data"]))
        cells.append(code(prose(f"function-{name}.py", rubric), f"function-{name}", [f"function-{name}"]))
        cells.append(code(tries[name], f"try-{name}", [f"try-{name}"]))
        cells.append(code(check_source(name), f"check-{name}", [f"check-{name}"]))
    return cells


def build_notebook(rubric_path: Path = RUBRIC_PATH) -> nbformat.NotebookNode:
    """Build the student notebook in memory."""
    rubric = load_rubric(rubric_path)
    nb: nbformat.NotebookNode = v4.new_notebook()
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    nb.cells = title_cells(rubric) + question_cells(rubric) + practical_cells(rubric)
    ids = [cell.id for cell in nb.cells]
    assert len(ids) == len(set(ids)), "duplicate cell ids"
    nbformat.validate(nb)
    return nb


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    out = Path(argv[0]) if argv else NOTEBOOK_PATH
    nb = build_notebook()
    nbformat.write(nb, str(out))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
