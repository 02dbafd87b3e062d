"""Write the demo batch in examples/submissions/ from the reference solution and the template.

    python examples/make_examples.py

The files are a pure function of reference/solution.ipynb and student_template/sheet11.ipynb
(the zip's time stamps are fixed), so tests/test_examples.py regenerates them into a temporary
folder and fails when the committed ones differ: run this script again after changing the
template or the solution.

- Lovelace_2571234_Turing_2579876.zip   the reference solution: 4/4 on 11.4, no flag
- Hopper_2581111_Liskov_2582222.ipynb   partly wrong: W transposed, LSTM gates in another order
- Noether_2590001.ipynb                  breaks the naming rule (one member in the name) and the
                                         word limit of 11.2.1, cites nothing
- Broken_2600001_Notebook_2600002.ipynb  not a notebook (truncated JSON)
"""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "examples" / "submissions"


def _cell(nb, tag):
    return next(c for c in nb.cells if tag in c.metadata.get("tags", []))


def _override(nb, name, source):
    cell = _cell(nb, f"function-{name}")
    new = nbformat.v4.new_code_cell(source)
    new.id = f"override-{name.replace('_', '-')}"  # not a random id: the same bytes every run
    nb.cells.insert(nb.cells.index(cell) + 1, new)


def _member(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=(2025, 1, 1, 0, 0, 0))  # fixed: the same bytes every run
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


def main(out: Path = OUT) -> None:
    out.mkdir(parents=True, exist_ok=True)
    solution = nbformat.read(str(ROOT / "reference" / "solution.ipynb"), as_version=4)

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(_member("submission/sheet11.ipynb"), nbformat.writes(solution))
        zf.writestr(_member("submission/notes.txt"), "We discussed 11.3.2 with the tutor on Tuesday.\n")
    (out / "Lovelace_2571234_Turing_2579876.zip").write_bytes(buf.getvalue())

    partly = nbformat.read(str(ROOT / "reference" / "solution.ipynb"), as_version=4)
    _cell(partly, "group").source = ('GROUP = [{"name": "Grace Hopper", "student_id": "2581111", '
                                     '"email": "grace@uni.example"}, {"name": "Barbara Liskov", '
                                     '"student_id": "2582222", "email": "barbara@uni.example"}]')
    _override(partly, "rnn_forward", '''def rnn_forward(x, h0, W, U, b, activation="tanh"):
    act = torch.tanh if activation == "tanh" else torch.sigmoid
    h, out = h0, []
    for t in range(x.shape[0]):
        h = act(h @ W + x[t] @ U.T + b)   # W should be transposed here
        out.append(h)
    return torch.stack(out)
''')
    _override(partly, "lstm_cell", '''def lstm_cell(x, h, c, W_ih, W_hh, b_ih, b_hh):
    gates = x @ W_ih.T + b_ih + h @ W_hh.T + b_hh
    i, f, o, g = gates.chunk(4, dim=1)        # torch's order is i, f, g, o
    c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c_new), c_new
''')
    nbformat.write(partly, str(out / "Hopper_2581111_Liskov_2582222.ipynb"))

    rules = nbformat.read(str(ROOT / "student_template" / "sheet11.ipynb"), as_version=4)
    _cell(rules, "group").source = ('GROUP = [{"name": "Emmy Noether", "student_id": "2590001", '
                                    '"email": "emmy@uni.example"}, {"name": "Sofia Kovalevskaya", '
                                    '"student_id": "2590002", "email": "sofia(at)uni.example"}]')
    _cell(rules, "answer-11.2.1").source = " ".join(
        ["A CNN shares weights across positions of a grid, while an RNN shares them across time."] * 8)
    nbformat.write(rules, str(out / "Noether_2590001.ipynb"))

    text = nbformat.writes(solution)
    (out / "Broken_2600001_Notebook_2600002.ipynb").write_text(text[: len(text) // 3], encoding="utf-8")


if __name__ == "__main__":
    main()
