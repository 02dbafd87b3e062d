"""Do `grade check --full` and grading reach the same recall verdict? ``python benchmarks/agreement.py``.

A student runs ``grade check --full`` before handing in; the tutors' batch grades the same bytes.
The two differ in exactly two inputs of the recall experiment (grader/checks/recall.py):

* the relabelling's key: :func:`~grader.checks.recall.permutation_key` of the submission's sha256
  under the public key (check) or the course secret (grading), so the classes are relabelled
  differently;
* the held-out set: the rubric's ``public_heldout_seed`` (check) or ``heldout_seed`` (grading).

Everything else is the same code: the train seeds ``train_seed, train_seed + 1, ...``, the CPU limit
per try, the CPU budget for all tries, the threshold. This script draws ``--pairs`` submissions per
correct implementation of benchmarks/calibrate.py (a made-up sha256 each, and one course secret
drawn for the run), and for each decides the verdict both ways with the grader's own functions
(``draw_permutation``, ``permutation_key``, ``heldout``, ``train_seeds``, the try rule), training the
implementation in this process under the relabelling exactly as the kernel's ``make_recall_data``
would serve it. It prints, per implementation, how many pairs agree, and ends with one line
``agreement: {json}``.

What it leaves out, on purpose: the kernel and the memory evidence (the model's state must carry
the first token; a correct LSTM's does, see docs/recall.md); both are the same on the two sides.
CPU seconds are this process's, as the kernel's are measured from outside in grading.

Every verdict is one JSON line in ``--log``, so a long run can be summarised (``--summarise LOG``)
while it runs or after it was stopped.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import secrets
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import calibrate  # beside this script: the implementations and the relabelling

from grader.checks.recall import draw_permutation, heldout, permutation_key, train_seeds
from grader.rubric import Recall as RecallSpec
from grader.rubric import load_rubric
from reference.recall import accuracy


def verdict(impl: str, spec: RecallSpec, key: bytes, heldout_seed: int) -> dict[str, Any]:
    """The recall verdict of ``impl`` under the relabelling of ``key``, scored on ``heldout_seed``'s set.

    The tries follow grader/checks/recall.py: seeds from ``train_seed``; the first try that reaches
    the threshold within the per-try CPU limit passes; no new try once the tries' CPU reaches the
    budget or ``tries`` were made.
    """
    perm = draw_permutation(spec.n_classes, key)
    x, y = heldout(spec.heldout_n, spec.seq_len, spec.n_classes, heldout_seed, perm)
    target = torch.as_tensor(y)
    tries: list[dict[str, float]] = []
    spent = 0.0
    passed = False
    for seed in train_seeds(spec.train_seed, spec.tries):
        if spent >= spec.cpu_budget:
            break
        start = time.process_time()
        with calibrate.relabelled(perm):
            model = calibrate.IMPLEMENTATIONS[impl]("lstm", spec.seq_len, spec.n_classes, seed)
        cpu = time.process_time() - start
        spent += cpu
        acc = accuracy(model, x, target)
        tries.append({"seed": seed, "accuracy": round(acc, 4), "cpu_s": round(cpu, 2)})
        if acc >= spec.threshold and cpu <= spec.cpu_time_limit:
            passed = True
            break
    return {"passed": passed, "tries": tries, "cpu_s": round(spent, 2)}


def summarise(lines: list[dict[str, Any]]) -> dict[str, Any]:
    """Per implementation: pairs, agreeing pairs, the agreement and each side's pass rate."""
    out: dict[str, Any] = {}
    for impl in dict.fromkeys(line["impl"] for line in lines):
        mine = [line for line in lines if line["impl"] == impl]
        agree = sum(line["check"]["passed"] == line["grading"]["passed"] for line in mine)
        out[impl] = {"pairs": len(mine), "agree": agree, "agreement": round(agree / len(mine), 4),
                     "check_passed": sum(line["check"]["passed"] for line in mine),
                     "grading_passed": sum(line["grading"]["passed"] for line in mine),
                     "cpu_s": round(sum(line["check"]["cpu_s"] + line["grading"]["cpu_s"] for line in mine), 1)}
    return out


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; see the module docstring."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rubric", default=None, help="rubric file (default: rubrics/sheet11.toml)")
    parser.add_argument("--pairs", type=int, default=50, help="submissions (pairs of keys) per implementation")
    parser.add_argument("--first-pair", type=int, default=0)
    parser.add_argument("--impl", nargs="+", choices=sorted(calibrate.CORRECT), default=list(calibrate.CORRECT))
    parser.add_argument("--log", type=Path, default=Path("benchmarks/out/agreement.jsonl"))
    parser.add_argument("--summarise", type=Path, nargs="+", default=None, metavar="LOG")
    args = parser.parse_args(argv)
    if args.summarise is not None:
        lines = [json.loads(line) for log in args.summarise for line in log.read_text().splitlines() if line.strip()]
        print("agreement: " + json.dumps(summarise(lines)))
        return 0
    spec = load_rubric(args.rubric).recall
    course_secret = secrets.token_bytes(32)  # grading's key; never written down
    args.log.parent.mkdir(parents=True, exist_ok=True)
    lines: list[dict[str, Any]] = []
    with args.log.open("a") as log:
        for pair in range(args.first_pair, args.first_pair + args.pairs):
            sha = hashlib.sha256(f"sheet11 agreement submission {pair}".encode()).hexdigest()
            for impl in args.impl:
                line = {"impl": impl, "pair": pair,
                        "check": verdict(impl, spec, permutation_key(None, sha), spec.public_heldout_seed),
                        "grading": verdict(impl, spec, permutation_key(course_secret, sha), spec.heldout_seed)}
                lines.append(line)
                log.write(json.dumps(line) + "\n")
                log.flush()
                print(f"{impl:10s} pair {pair:3d}: check {'pass' if line['check']['passed'] else 'FAIL'} "
                      f"({len(line['check']['tries'])} tries), grading "
                      f"{'pass' if line['grading']['passed'] else 'FAIL'} ({len(line['grading']['tries'])} tries)",
                      flush=True)
    print("agreement: " + json.dumps(summarise(lines)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
