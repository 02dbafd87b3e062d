"""Build the student notebook ``student_template/sheet11.ipynb`` for Exercise Sheet 11.

Run ``python student_template/build_template.py`` from the project root. The notebook is built
here with the ``nbformat.v4`` builders so that it can be reviewed as code; the written file is
committed. Output is deterministic (fixed cell ids, no outputs), so a test can rebuild it and
compare it with the committed file.

Cells are found by ``metadata.tags`` (see ``docs/contract.md`` §2). Tags beyond the
contract: ``exercise-<n>``, ``question-<id>``, ``imports``, ``function-<name>``, ``try-<name>``,
``given-make_recall_data`` and ``intro-11.4``.

The public seeds of the try-cells and the recall settings are read from
``rubrics/sheet11.toml`` so the notebook cannot drift from the rubric.
"""
from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

import nbformat
from nbformat import v4

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
NOTEBOOK_PATH = HERE / "sheet11.ipynb"
RUBRIC_PATH = ROOT / "rubrics" / "sheet11.toml"

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
    cell = v4.new_markdown_cell(source.strip("\n"))
    cell.id = _cell_id(cid)
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


def code(source: str, cid: str, tags: list[str] | None = None) -> nbformat.NotebookNode:
    cell = v4.new_code_cell(source.strip("\n"))
    cell.id = _cell_id(cid)
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


def load_rubric(path: Path = RUBRIC_PATH) -> dict:
    with open(path, "rb") as fh:
        return tomllib.load(fh)


def public_seeds(rubric: dict) -> dict[str, list[int]]:
    """Map each automatically checked function to its public seeds."""
    seeds: dict[str, list[int]] = {}
    for question in rubric.get("questions", {}).values():
        for check in question.get("checks", []):
            seeds[check["function"]] = [case["seed"] for case in check.get("public", [])]
    return seeds


def points(rubric: dict, qid: str) -> str:
    value = float(rubric["questions"][qid]["points"])
    return f"{value:g} {'point' if value == 1 else 'points'}"


# ---------------------------------------------------------------------------------------------
# written part

def title_cells(rubric: dict) -> list[nbformat.NotebookNode]:
    return [
        md(
            """
# Exercise Sheet 11: Recurrent Neural Networks

**Neural Networks** · Deadline: 01.02.2024 23:59 · 10 points in total
""",
            "title",
        ),
        md(
            """
## Before you start

- Work in a **group of 2 or 3** students and hand in **one** notebook per group.
- Fill in the `GROUP` cell below for every member: name, student ID (matriculation number) and email.
- Name your file after the group: `Name1_id1_Name2_id2.ipynb` (or `Name1_id1_Name2_id2_Name3_id3.ipynb`).
  If you hand in several files, zip them as `Name1_id1_Name2_id2.zip` with this notebook inside.
  A name has no spaces and no `_`; an id is only digits; every member of the `GROUP` cell appears in
  the file name.
- Write each answer into the cell right below its question, which says *Your answer here.*
- **Do not rename, split or delete the tagged cells**, and keep the function names and
  parameters of Exercise 11.4 exactly as given: the grader finds your answers by the cell tags and
  your functions by their names.
- The notebook must run from top to bottom (*Kernel → Restart & Run All*) without errors.

**How words and sentences are counted.** Words are counted as a reader sees the answer: markdown
and HTML are ignored, a formula or a piece of inline code counts as one word, a hyphenated word or a
number is one word, links and code blocks are not counted. Your sources are not counted either: start
them on a line beginning with `Sources:` (or `Source:` / `References:`), and everything from there to
the end of the cell is the source list.

- 11.2.1 and 11.2.2: **at most 100 words each**, and cite at least one source (a `Sources:` line,
  a URL, a DOI, or a reference such as "(Hochreiter & Schmidhuber, 1997)").
- 11.3.1: one list item per architecture (keep the list), **at most 2 sentences** per item.
- 11.3.2: **3 to 5 sentences**; the drawing (text art in a code block, or an image attached to the
  cell) is not counted.

For any clarification, please ask on the **CMS Forum**.
""",
            "instructions",
        ),
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


def question_cells(rubric: dict) -> list[nbformat.NotebookNode]:
    cells: list[nbformat.NotebookNode] = []

    def question(qid: str, text: str) -> None:
        cells.append(md(f"**{qid}** ({points(rubric, qid)}) {text.strip()}",
                        f"question-{qid}", [f"question-{qid}"]))

    def answer(qid: str, source: str = PLACEHOLDER) -> None:
        cells.append(md(source, f"answer-{qid}", [f"answer-{qid}"]))

    # --- 11.1 --------------------------------------------------------------------------------
    cells.append(md(
        """
## Exercise 11.1 - Sequence Modeling (0.5 + 0.5 points)

In the lectures (Chapter 10), you have been introduced to the concept of *Recurrent Neural
Networks* (*RNN*). Consider that you have built a sentiment analysis system that feeds a sentence
into an *RNN*, and then computes the sentiment class between 0 (*very negative*) and 5
(*very positive*), based only on the final hidden state of the network.
""",
        "exercise-11.1", ["exercise-11.1"],
    ))
    question("11.1.1", """
Let us consider a sample text input:

> Yesterday turned out to be a terrible day. I overslept my alarm clock, and to make matters
> worse, my dog ate my homework. At least my dog seems happy ...

Your model predicted a *positive* sentiment for the above text. What possibly went wrong that
could have led to this misclassification? Justify.
""")
    answer("11.1.1")
    question("11.1.2", """
Why can you perform gradient descent only for a certain number of tokens in case of *RNNs*?
When does this result in problems? Explain with the help of a suitable example.
""")
    answer("11.1.2")

    # --- 11.2 --------------------------------------------------------------------------------
    cells.append(md(
        """
## Exercise 11.2 - Sequence Modeling (0.75 + 0.75 points)

The aim of this exercise is to build upon the theory presented during the lecture on *RNNs*.
Please limit your answers to **100 words** for each question. Feel free to use any additional
reading material for the same, but always remember to **cite your sources** (on a `Sources:` line at
the end of your answer; sources do not count towards the 100 words).
""",
        "exercise-11.2", ["exercise-11.2"],
    ))
    question("11.2.1", """
What is the key difference between CNN and RNN in terms of the modelling of the problem?
Reference material: *RNN, LSTM, and GRU* (the reading linked on the course page).
""")
    answer("11.2.1", PLACEHOLDER + "\n\nSources: ")
    question("11.2.2", """
What is the mathematical difficulty in training the RNN, and how does LSTM mitigate the same?
Assume that you use *TanH* or *logistic sigmoid* activation functions. Does LSTM have similarities
to residual neural networks? Reference material: *ResNet* (He et al., 2016,
[arXiv:1512.03385](https://arxiv.org/abs/1512.03385)).
""")
    answer("11.2.2", PLACEHOLDER + "\n\nSources: ")

    # --- 11.3 --------------------------------------------------------------------------------
    cells.append(md(
        """
## Exercise 11.3 - Sequence Modeling (0.75 + 0.75 + 0.75 + (0.75 + 0.5) points)

Consider the following five architectures (not all being RNNs). The sheet shows them as
drawings; here they are described in words:

1. **One-to-one:** one input, one output, no recurrence across time steps.
2. **One-to-many:** a single input, then a sequence of outputs, one per step.
3. **Many-to-one:** a sequence of inputs, a single output after the last input.
4. **Many-to-many (encoder-decoder):** a sequence of inputs is read completely first; only
   then a sequence of outputs is produced (the output sequence may have a different length).
5. **Many-to-many (synchronised):** a sequence of inputs with one output at every input step.
""",
        "exercise-11.3", ["exercise-11.3"],
    ))
    question("11.3.1", """
Give an example application for each of the architectures above and describe its input and
output. [max 2 sentences each]
""")
    answer("11.3.1", "\n".join(f"- **{name}:** {PLACEHOLDER}" for name in ARCHITECTURES))
    question("11.3.2", """
A recursive NN is not among the architectures above. Draw the architecture of a recursive NN and describe
it [3-5 sentences]. Draw as text art in a code block (```` ``` ````) or attach an image to the
answer cell.
""")
    answer("11.3.2")
    question("11.3.3", """
Suggest a formula for how the weights on the node of a tree can be calculated based on the
weights of the children.
""")
    answer("11.3.3")
    question("11.3.4a", r"""
Consider sequences each of length $T$ and a vanilla RNN model with the following operations
($\mathbf{W}$ and $\mathbf{U}$ are shared by all time steps):

$$\mathbf{z}_t = \mathbf{W} \mathbf{h}_{t-1} + \mathbf{U} \mathbf{x}_t + \mathbf{b}$$

$$\mathbf{h}_t = \sigma(\mathbf{z}_t)$$

Using the chain rule, we can arrive at:

$$\left\| \frac{\partial \mathcal{L}}{\partial \mathbf{h}_t} \right\| \leq
\left\| \frac{\partial \mathcal{L}}{\partial \mathbf{h}_T} \right\| \|\mathbf{W}\|^{T-t}
\prod_{k=t}^{T-1} \|\mathbf{J}_{k+1}\| \qquad (1)$$

a) What is $\mathbf{J}_{k+1}$ in the above equation? Give the expression.
""")
    answer("11.3.4a")
    question("11.3.4b", """
b) What issues can occur because of equation (1)? Mention the two factors that cause the said
issue.
""")
    answer("11.3.4b")
    return cells


# ---------------------------------------------------------------------------------------------
# practical part

STUBS: dict[str, str] = {
    "rnn_forward": '''
def rnn_forward(x, h0, W, U, b, activation="tanh"):
    """Run a vanilla RNN over a whole sequence.

    For t = 1..T: ``z_t = W h_{t-1} + U x_t + b`` and ``h_t = act(z_t)``.
    With a batch the samples are rows, so ``z_t = h_{t-1} W^T + x_t U^T + b``.

    Parameters
    ----------
    x : torch.Tensor, shape (T, B, D)
        The inputs; ``x[t-1]`` holds x_t for the whole batch.
    h0 : torch.Tensor, shape (B, Hd)
        The initial hidden state h_0.
    W : torch.Tensor, shape (Hd, Hd)
        Hidden-to-hidden weights.
    U : torch.Tensor, shape (Hd, D)
        Input-to-hidden weights.
    b : torch.Tensor, shape (Hd,)
        The bias.
    activation : {"tanh", "sigmoid"}, default "tanh"
        The activation function act.

    Returns
    -------
    H : torch.Tensor, shape (T, B, Hd)
        All hidden states; ``H[t-1]`` is h_t (h_0 is not included).
    """
    raise NotImplementedError("rnn_forward: not implemented yet")
''',
    "activation_jacobian": '''
def activation_jacobian(z, activation="tanh"):
    """The Jacobian of h = act(z) with respect to z.

    Parameters
    ----------
    z : torch.Tensor, shape (Hd,)
        A pre-activation vector.
    activation : {"tanh", "sigmoid"}, default "tanh"
        The activation function act.

    Returns
    -------
    J : torch.Tensor, shape (Hd, Hd)
        ``diag(act'(z))``: the derivatives on the diagonal, zeros elsewhere.
    """
    raise NotImplementedError("activation_jacobian: not implemented yet")
''',
    "hidden_grad_norms": '''
def hidden_grad_norms(x, h0, W, U, b, loss_fn, activation="tanh"):
    """The norms of the gradients of the loss with respect to every hidden state.

    Run the RNN of ``rnn_forward``, compute ``L = loss_fn(h_T)`` and use autograd to get
    dL/dh_t for every t = 1..T (keep the hidden states and ask autograd for their gradients).

    Parameters
    ----------
    x : torch.Tensor, shape (T, 1, D)
        The inputs (batch size 1).
    h0 : torch.Tensor, shape (1, Hd)
        The initial hidden state.
    W : torch.Tensor, shape (Hd, Hd)
    U : torch.Tensor, shape (Hd, D)
    b : torch.Tensor, shape (Hd,)
        The RNN's parameters, as in ``rnn_forward``.
    loss_fn : callable
        Maps h_T, shape (1, Hd), float32 or float64, to a scalar tensor.
    activation : {"tanh", "sigmoid"}, default "tanh"

    Returns
    -------
    g : torch.Tensor, shape (T,)
        ``g[t-1] = ||dL/dh_t||_2``.
    """
    raise NotImplementedError("hidden_grad_norms: not implemented yet")
''',
    "gradient_bound": '''
def gradient_bound(x, h0, W, U, b, loss_fn, activation="tanh"):
    """The right side of equation (1) of the sheet, for every t = 1..T.

    ``r[t-1] = ||dL/dh_T||_2 * ||W||_2^(T-t) * prod_{k=t}^{T-1} ||J_{k+1}||_2`` with spectral
    norms (largest singular values); so ``r[T-1] = ||dL/dh_T||_2``, and
    ``hidden_grad_norms(...) <= gradient_bound(...)`` elementwise.

    Parameters
    ----------
    x : torch.Tensor, shape (T, 1, D)
        The inputs (batch size 1).
    h0 : torch.Tensor, shape (1, Hd)
        The initial hidden state.
    W : torch.Tensor, shape (Hd, Hd)
    U : torch.Tensor, shape (Hd, D)
    b : torch.Tensor, shape (Hd,)
        The RNN's parameters, as in ``rnn_forward``.
    loss_fn : callable
        Maps h_T, shape (1, Hd), float32 or float64, to a scalar tensor.
    activation : {"tanh", "sigmoid"}, default "tanh"

    Returns
    -------
    r : torch.Tensor, shape (T,)
        The bound for every time step; ``r[t-1]`` bounds ``||dL/dh_t||_2``.
    """
    raise NotImplementedError("gradient_bound: not implemented yet")
''',
    "lstm_cell": '''
def lstm_cell(x, h, c, W_ih, W_hh, b_ih, b_hh):
    """One step of an LSTM cell, exactly as ``torch.nn.LSTMCell``.

    The pre-activations ``x W_ih^T + b_ih + h W_hh^T + b_hh`` hold four blocks of Hd columns,
    in the order input gate i, forget gate f, cell candidate g, output gate o.

    Parameters
    ----------
    x : torch.Tensor, shape (B, D)
        The input at this step.
    h : torch.Tensor, shape (B, Hd)
        The previous hidden state.
    c : torch.Tensor, shape (B, Hd)
        The previous cell state.
    W_ih : torch.Tensor, shape (4*Hd, D)
    W_hh : torch.Tensor, shape (4*Hd, Hd)
    b_ih : torch.Tensor, shape (4*Hd,)
    b_hh : torch.Tensor, shape (4*Hd,)

    Returns
    -------
    h_new : torch.Tensor, shape (B, Hd)
        The new hidden state.
    c_new : torch.Tensor, shape (B, Hd)
        The new cell state.
    """
    raise NotImplementedError("lstm_cell: not implemented yet")
''',
    "tree_encode": '''
def tree_encode(tree, embed, W, b):
    """Encode a binary tree bottom-up with a recursive neural network.

    A leaf's vector is ``embed[word]``; a pair's vector is ``tanh(W [v_left; v_right] + b)``
    where ``[v_left; v_right]`` stacks the children's vectors into one vector of length 2d.

    Parameters
    ----------
    tree : str or tuple
        A leaf (a word, ``str``) or a pair ``(left, right)`` of trees, nested to any depth,
        e.g. ``(("the", "cat"), "sat")``.
    embed : dict of str to torch.Tensor, each of shape (d,)
        The vector of each leaf word.
    W : torch.Tensor, shape (d, 2*d)
        The composition weights.
    b : torch.Tensor, shape (d,)
        The composition bias.

    Returns
    -------
    p : torch.Tensor, shape (d,)
        The root's vector.
    """
    raise NotImplementedError("tree_encode: not implemented yet")
''',
    "tbptt_grads": '''
def tbptt_grads(x, y, params, k):
    """Gradients of a many-to-one RNN classifier with truncated back-propagation through time.

    ``h_0 = 0``, ``h_t = tanh(W h_{t-1} + U x_t + b)``, ``logits = h_T V^T + c``,
    ``L = cross_entropy(logits, y)`` averaged over the batch. Gradients flow back through the
    last ``k`` steps only: h_{T-k} is held constant. ``k >= T`` is full back-propagation.

    Parameters
    ----------
    x : torch.Tensor, shape (T, B, D)
        The inputs.
    y : torch.Tensor, shape (B,), int64
        The class labels.
    params : dict of str to torch.Tensor
        ``"W"`` (Hd, Hd), ``"U"`` (Hd, D), ``"b"`` (Hd,), ``"V"`` (C, Hd), ``"c"`` (C,).
        Must not be changed.
    k : int
        The truncation window, ``k >= 1``.

    Returns
    -------
    grads : dict of str to torch.Tensor
        The same five keys; ``grads[name]`` is dL/d params[name] with the shape of
        ``params[name]``.
    """
    raise NotImplementedError("tbptt_grads: not implemented yet")
''',
}

def train_recall_stub(recall: dict) -> str:
    """The ``train_recall`` stub; every number in its docstring is the rubric's."""
    tries = recall["tries"]
    seeds = ", ".join(str(recall["train_seed"] + i) for i in range(tries))
    sl, nc, cpu = recall["seq_len"], recall["n_classes"], recall["cpu_time_limit"]
    plural = "s" if tries != 1 else ""
    return f'''
def train_recall(cell, seq_len, n_classes, seed):
    """Train a sequence classifier on the recall task of ``make_recall_data``.

    The label of a sequence is its first token; everything after it is noise, so the model must
    remember the first input for ``seq_len`` steps. Keep it fast and reproducible: use ``seed``
    for everything random.

    How it is graded: the grader calls ``train_recall("lstm", seq_len={sl}, n_classes={nc}, seed=...)``
    in your notebook's kernel (one CPU thread) and measures the returned model's accuracy on
    held-out sequences it draws itself. It needs at least {recall["threshold"]:.0%} accuracy within
    {cpu:g} CPU seconds of training; up to {tries} seed{plural} ({seeds}) are tried
    and the first success counts.
    The vanilla RNN (``cell="rnn"``) is trained once beside it for comparison, without points.

    - Train on the global ``make_recall_data`` (call it by that name inside this function):
      while grading, the grader swaps in one that relabels the classes with a secret
      permutation, and checks the model against the same relabelling. A model must learn the
      labels from the data; one that reads the answer off its input scores 0.
    - At this length an LSTM learns the task only when its forget gate starts open: initialise
      the forget-gate bias high (about 4 or more; ``sigmoid(4) ** {recall["seq_len"]}`` is still
      {_sigmoid_power(4.0, recall["seq_len"]):.2f}), or the gradient of the first token vanishes like the RNN's.

    Parameters
    ----------
    cell : {{"rnn", "lstm"}}
        The recurrent part: a vanilla RNN (tanh) or an LSTM.
    seq_len : int
        The length T of the sequences.
    n_classes : int
        The number of token classes C (also the input size, one-hot).
    seed : int
        The seed for data and initialisation.

    Returns
    -------
    model : torch.nn.Module
        The trained model. ``model(x)`` with x of shape (seq_len, B, n_classes), float32, returns
        logits of shape (B, n_classes).
    """
    raise NotImplementedError("train_recall: not implemented yet")
'''


def _sigmoid_power(bias: float, steps: int) -> float:
    import math
    return (1.0 / (1.0 + math.exp(-bias))) ** steps


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


def try_sources(seeds: dict[str, list[int]], recall: dict) -> dict[str, str]:
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


def practical_cells(rubric: dict) -> list[nbformat.NotebookNode]:
    seeds = public_seeds(rubric)
    recall = rubric["recall"]
    tries = try_sources(seeds, recall)
    cells: list[nbformat.NotebookNode] = [
        md(
            f"""
## Exercise 11.4 - Practical (4 points)

Implement the functions below with **PyTorch** (numpy is fine too). Keep the names and parameters
exactly as given; the grader runs your notebook and then calls the functions by name on hidden
examples. Each function comes with a *try it* cell that runs a public example and, where possible,
compares your result with PyTorch's own implementation, and a *check* cell that runs the grader's
public examples (`check("11.4.a")`, `check("lstm_cell")`; `check()` runs everything) and says
what to fix: the shape or dtype that came back, the first element that differs, or the known
mistake your output matches. It needs `sheet11_check.py`, `sheet11_public.json` and
`sheet11_public.npz` next to this notebook (see the cell `from sheet11_check import check` at
the top).

Conventions used throughout:

- Time runs $t = 1, \\dots, T$ and step $t$ is stored at **index `t-1`**: `x[t-1]` is $x_t$, `H[t-1]` is $h_t$.
- Shapes: `T` time steps, `B` batch size, `D` input size, `Hd` hidden size, `C` classes.
- Tensors are `torch.float32` unless stated otherwise. Where a tensor is asked for, a numpy array
  is accepted too.
- The grader runs with one CPU thread; `train_recall` must train within
  {recall["cpu_time_limit"]:g} CPU seconds (see its docstring for how it is graded).

| part | functions | points |
|---|---|---|
| 11.4.a | `rnn_forward` | {points(rubric, "11.4.a")} |
| 11.4.b | `activation_jacobian`, `hidden_grad_norms`, `gradient_bound` | {points(rubric, "11.4.b")} |
| 11.4.c | `lstm_cell`, `tree_encode` | {points(rubric, "11.4.c")} |
| 11.4.d | `tbptt_grads`, `train_recall` | {points(rubric, "11.4.d")} |
""",
            "intro-11.4", ["intro-11.4"],
        ),
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
    headings = {
        "rnn_forward": "### 11.4.a The forward pass of a vanilla RNN",
        "activation_jacobian": "### 11.4.b Gradients through time and the bound (1)\n\n"
                               "The Jacobian $\\mathbf{J} = \\operatorname{diag}(\\sigma'(\\mathbf{z}))$ "
                               "of the activation:",
        "hidden_grad_norms": "The true gradient norms $\\|\\partial \\mathcal{L} / \\partial \\mathbf{h}_t\\|_2$, "
                             "with autograd:",
        "gradient_bound": "The right side of equation (1), with spectral norms:",
        "lstm_cell": "### 11.4.c An LSTM cell and a recursive encoder\n\nOne step of an LSTM:",
        "tree_encode": "A recursive neural network that encodes a binary tree:",
        "tbptt_grads": "### 11.4.d Truncated BPTT and long-range recall\n\n"
                       "Gradients with truncated back-propagation through time:",
        "train_recall": "The recall task: the label of a sequence is its **first** token, and all later "
                        "tokens are noise. `make_recall_data` is given. Train an RNN and an LSTM on it and "
                        "compare how well each remembers the first token over a long sequence.",
    }
    for name in FUNCTIONS:
        cells.append(md(headings[name], f"heading-{name}"))
        if name == "train_recall":
            cells.append(code(MAKE_RECALL_DATA, "given-make_recall_data", ["given-make_recall_data"]))
        stub = train_recall_stub(recall) if name == "train_recall" else STUBS[name]
        cells.append(code(stub, f"function-{name}", [f"function-{name}"]))
        cells.append(code(tries[name], f"try-{name}", [f"try-{name}"]))
        cells.append(code(check_source(name), f"check-{name}", [f"check-{name}"]))
    return cells


def build_notebook(rubric_path: Path = RUBRIC_PATH) -> nbformat.NotebookNode:
    """Build the student notebook in memory."""
    rubric = load_rubric(rubric_path)
    nb = v4.new_notebook()
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
