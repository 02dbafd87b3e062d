"""Benchmark: the grader against plain notebook execution, and -j 2 against -j 1.

    OMP_NUM_THREADS=1 python benchmarks/bench.py [-n 20]

It generates N submissions (the reference solution under N group names, every third one with a
wrong function so that mistake matching runs too; train_recall stubbed so the run stays short),
then measures in one run:

(a) the grader (`run_batch`, -j 1, sandboxed) per submission, against executing the same
    notebooks with plain nbclient and making the same function calls on the same inputs with no
    sandbox, no comparison and no report;
(b) the throughput of `run_batch` with -j 2 against -j 1.

It prints the times and the two ratios. Targets: (a) <= 1.15, (b) >= 1.7.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import nbformat  # noqa: E402
from builders import set_function, set_group, solution, write_notebook  # noqa: E402
from nbclient import NotebookClient  # noqa: E402

from grader.batch import run_batch  # noqa: E402
from grader.rubric import load_rubric  # noqa: E402

WRONG = ("def rnn_forward(x, h0, W, U, b, activation='tanh'):\n"
         "    h, out = h0, []\n"
         "    for t in range(x.shape[0]):\n"
         "        h = torch.tanh(h @ W.T + x[t] @ U.T)\n"
         "        out.append(h)\n"
         "    return torch.stack(out)\n")


def make_batch(folder: Path, n: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        a, b = f"{2_700_000 + 2 * i}", f"{2_700_001 + 2 * i}"
        nb = set_group(solution(fast=True), [(f"Student{i}a Alpha", a, f"a{i}@uni.example"),
                                             (f"Student{i}b Beta", b, f"b{i}@uni.example")])
        if i % 3 == 2:
            set_function(nb, "rnn_forward", WRONG)
        paths.append(write_notebook(nb, folder / f"Alpha_{a}_Beta_{b}.ipynb"))
    return paths


def _call_cell() -> str:
    """The same calls the grader makes, with inputs drawn in the kernel: no files, no checks."""
    rubric = load_rubric()
    lines = ["import torch"]
    lines.append("_g = torch.Generator().manual_seed(0)")
    lines.append("def _r(*s): return torch.randn(*s, generator=_g)")
    for check in rubric.checks():
        for case in check.cases:
            p = case.params
            f = check.function
            if f == "rnn_forward":
                lines.append(f"rnn_forward(_r({p['T']},{p['B']},{p['D']}), _r({p['B']},{p['H']}), _r({p['H']},{p['H']}), "
                             f"_r({p['H']},{p['D']}), _r({p['H']}), {p['activation']!r})")
            elif f == "activation_jacobian":
                lines.append(f"activation_jacobian(_r({p['H']}), {p['activation']!r})")
            elif f in ("hidden_grad_norms", "gradient_bound"):
                lines.append(f"{f}(_r({p['T']},1,{p['D']}), _r(1,{p['H']}), _r({p['H']},{p['H']}), _r({p['H']},{p['D']}), "
                             f"_r({p['H']}), lambda h: h.sum(), {p['activation']!r})")
            elif f == "lstm_cell":
                B, D, H = p["B"], p["D"], p["H"]
                lines.append(f"lstm_cell(_r({B},{D}), _r({B},{H}), _r({B},{H}), _r({4*H},{D}), _r({4*H},{H}), _r({4*H}), _r({4*H}))")
            elif f == "tree_encode":
                d = p["d"]
                lines.append("_t = 'w0'\nfor _i in range(1, %d): _t = (_t, 'w%%d' %% (_i %% 3))" % p["leaves"])
                lines.append(f"tree_encode(_t, {{'w0': _r({d}), 'w1': _r({d}), 'w2': _r({d})}}, _r({d},{2*d}), _r({d}))")
            elif f == "tbptt_grads":
                T, B, D, H, C = p["T"], p["B"], p["D"], p["H"], p["C"]
                lines.append(f"tbptt_grads(_r({T},{B},{D}), torch.randint(0,{C},({B},)), {{'W': _r({H},{H}), 'U': _r({H},{D}), "
                             f"'b': _r({H}), 'V': _r({C},{H}), 'c': _r({C})}}, {p['k']})")
    lines += ["try:\n    train_recall('lstm', 60, 8, 0)\nexcept NotImplementedError:\n    pass"] * 2
    return "\n".join(lines)


def plain_run(paths: list[Path]) -> float:
    calls = _call_cell()
    t0 = time.perf_counter()
    for path in paths:
        nb = nbformat.read(str(path), as_version=4)
        nb.cells.append(nbformat.v4.new_code_cell(calls))
        NotebookClient(nb, timeout=600, kernel_name="python3", allow_errors=True,
                       resources={"metadata": {"path": tempfile.gettempdir()}}).execute()
    return time.perf_counter() - t0


def grader_run(paths: list[Path], out: Path, jobs: int) -> float:
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    run_batch([str(p) for p in paths], out, jobs=jobs)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=20, help="submissions to generate (default 20)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sheet11-bench-"))
    try:
        paths = make_batch(work / "in", args.n)
        plain = plain_run(paths)
        one = grader_run(paths, work / "j1", 1)
        two = grader_run(paths, work / "j2", 2)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    n = len(paths)
    print(f"submissions: {n}")
    print(f"plain nbclient + same calls : {plain:7.1f} s  ({plain / n:5.2f} s per submission)")
    print(f"grader -j 1                 : {one:7.1f} s  ({one / n:5.2f} s per submission)")
    print(f"grader -j 2                 : {two:7.1f} s  ({two / n:5.2f} s per submission)")
    print(f"(a) grader / plain          : {one / plain:5.2f}   (target <= 1.15)")
    print(f"(b) throughput -j 2 / -j 1  : {one / two:5.2f}   (target >= 1.7)")


if __name__ == "__main__":
    main()
