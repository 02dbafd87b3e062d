"""Generate the fixture notebooks of the contract rules (contract §3; tests/test_grade_functions.py).

    python tests/make_contract_fixtures.py          # (re)write tests/files/contract
    python tests/make_contract_fixtures.py --check  # exit 1 if a committed fixture is stale

Each fixture is the fast reference solution (``builders.solution(fast=True)``) with student cells
added after the functions' own cells (``builders.set_function``):

- ``breaks_*``: a function that returns the right values on every single call yet breaks a rule:
  it changes its caller's inputs, or a second call with the same inputs returns another result.
  ``BREAKS[name]`` says which function and what the report must name.
- ``keeps_unusual_styles``: correct functions written in unusual ways (in-place operations on
  their own clones, float64 inside, numpy arrays returned, a list of params iterated in place on
  copies): they keep every rule and must get full points.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from builders import FILES, set_function, solution  # noqa: E402

CONTRACT_DIR = FILES / "contract"


@dataclass(frozen=True)
class Breaks:
    function: str
    question: str
    source: str
    said: tuple[str, ...]  # phrases every failed case's message must hold


BREAKS: dict[str, Breaks] = {
    # Issue 9 §2: requires_grad_ on the caller's tensors, their .grad returned. The first call's
    # gradients are right; a second call on the same tensors would return twice as much.
    "breaks_tbptt_requires_grad_on_callers_params": Breaks("tbptt_grads", "11.4.d", '''\
def tbptt_grads(x, y, params, k):
    for p in params.values():
        p.requires_grad_(True)
    T = x.shape[0]
    h = torch.zeros(x.shape[1], params["W"].shape[0])
    for t in range(T):
        if t == T - k:
            h = h.detach()          # truncation: h_{T-k} is a constant
        h = torch.tanh(h @ params["W"].T + x[t] @ params["U"].T + params["b"])
    logits = h @ params["V"].T + params["c"]
    torch.nn.functional.cross_entropy(logits, y).backward()
    return {name: p.grad for name, p in params.items()}
''', ("`requires_grad` of `params['W']` was switched on", "`.grad` of `params['W']` was set")),
    # Issue 10: correct gradients, then the caller's params are wiped.
    "breaks_tbptt_zeroes_callers_params": Breaks("tbptt_grads", "11.4.d", '''\
_tbptt_right = tbptt_grads

def tbptt_grads(x, y, params, k):
    grads = _tbptt_right(x, y, params, k)
    with torch.no_grad():
        for p in params.values():
            p.zero_()               # "tidy up" the parameters
    return grads
''', ("`params['W']` was changed in place (values)",)),
    # State kept between calls: the second call with the same inputs returns something else.
    "breaks_lstm_second_call_differs": Breaks("lstm_cell", "11.4.c", '''\
_lstm_right = lstm_cell
_lstm_calls = []

def lstm_cell(x, h, c, W_ih, W_hh, b_ih, b_hh):
    _lstm_calls.append(1)
    h_new, c_new = _lstm_right(x, h, c, W_ih, W_hh, b_ih, b_hh)
    return h_new, c_new + 0.1 * (len(_lstm_calls) % 2 == 0)
''', ('breaks the rule "the same arguments give the same result"',)),
    # The embedding table of tree_encode is an input too.
    "breaks_tree_normalises_callers_embedding": Breaks("tree_encode", "11.4.c", '''\
_tree_right = tree_encode

def tree_encode(tree, embed, W, b):
    out = _tree_right(tree, embed, W, b)
    for word in embed:
        embed[word] = embed[word] / embed[word].norm()   # replaces the caller's vectors
    return out
''', ("was replaced by another object",)),
}

UNUSUAL_STYLES: dict[str, str] = {
    "rnn_forward": '''\
_rnn_right = rnn_forward

def rnn_forward(x, h0, W, U, b, activation="tanh"):
    # In place, but only on its own copies; float64 inside.
    Ws, Us, bs = W.clone(), U.clone(), b.clone()
    Ws.mul_(1.0)
    bs.add_(0.0)
    H = _rnn_right(x.clone().double(), h0.clone().double(), Ws.double(), Us.double(), bs.double(),
                   activation)
    return H.float()
''',
    "activation_jacobian": '''\
_jac_right = activation_jacobian

def activation_jacobian(z, activation="tanh"):
    # float64 out (the solution's gradient_bound calls this one and needs a tensor back)
    z_own = torch.as_tensor(z).clone().double()
    z_own.mul_(1.0)
    return _jac_right(z_own, activation)
''',
    "lstm_cell": '''\
_lstm_right = lstm_cell

def lstm_cell(x, h, c, W_ih, W_hh, b_ih, b_hh):
    c_own = c.clone()
    c_own.mul_(1.0)
    h_new, c_new = _lstm_right(x.double(), h.double(), c_own.double(), W_ih.double(), W_hh.double(),
                               b_ih.double(), b_hh.double())
    return (h_new.detach().numpy(), c_new.detach().numpy())
''',
    "tree_encode": '''\
_tree_right = tree_encode

def tree_encode(tree, embed, W, b):
    own = {word: vector.detach().clone().double() for word, vector in embed.items()}
    for vector in own.values():
        vector.mul_(1.0)
    return _tree_right(tree, own, W.double(), b.double()).detach().numpy()
''',
    "tbptt_grads": '''\
_tbptt_right = tbptt_grads

def tbptt_grads(x, y, params, k):
    own = {name: p.detach().clone() for name, p in params.items()}
    own["W"].mul_(1.0)
    grads = _tbptt_right(x.clone(), y.clone(), own, k)
    return {name: g.detach().numpy() for name, g in grads.items()}
''',
}


def _normalise_ids(nb: Any) -> Any:
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i:03d}"
    return nb


def build_all() -> dict[Path, Any]:
    """Every fixture path -> its notebook, as this script makes it."""
    out: dict[Path, Any] = {}
    for name, breaks in BREAKS.items():
        nb = solution(fast=True)
        set_function(nb, breaks.function, breaks.source)
        out[CONTRACT_DIR / f"{name}.ipynb"] = _normalise_ids(nb)
    nb = solution(fast=True)
    for function, source in UNUSUAL_STYLES.items():
        set_function(nb, function, source)
    out[CONTRACT_DIR / "keeps_unusual_styles.ipynb"] = _normalise_ids(nb)
    return out


def main(argv: list[str]) -> int:
    built = build_all()
    if "--check" in argv:
        stale = [p for p, nb in built.items()
                 if not p.exists() or p.read_text(encoding="utf-8") != nbformat.writes(nb)]
        for p in stale:
            print(f"stale: {p.relative_to(HERE.parent)}")
        return 1 if stale else 0
    CONTRACT_DIR.mkdir(parents=True, exist_ok=True)
    for old in CONTRACT_DIR.glob("*.ipynb"):
        if old not in built:
            old.unlink()
    for path, nb in built.items():
        path.write_text(nbformat.writes(nb), encoding="utf-8")
        print(f"wrote {path.relative_to(HERE.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
