"""Measure how often the grader's feedback names or locates a bug, and how often it misleads.

    OMP_NUM_THREADS=1 python tests/diagnosis_rate.py     # prints one line per bug and the totals

Runs each bug's function in this process against the rubric's hidden cases and the probes
(tests/test_probes.py's fake Bridge: the same comparison, attribution and probing code as
grading, without a kernel). Sets: the twelve single-bug notebooks (tests/make_function_fixtures.py)
and the third unseen set (tests/make_unseen3_fixtures.py). See docs/guides/diagnoses.md.
"""
from __future__ import annotations

import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from make_function_fixtures import SINGLE_BUGS  # noqa: E402
from make_unseen3_fixtures import UNSEEN3  # noqa: E402

import reference  # noqa: E402
from grader.checks import probes as P  # noqa: E402
from grader.checks.compare import CaseResult  # noqa: E402
from grader.checks.mistakes import mistakes_for  # noqa: E402


@dataclass(frozen=True)
class Bug:
    name: str
    function: str
    source: str
    mistakes: tuple[str, ...]
    terms: tuple[str, ...]
    phrases: tuple[str, ...] = ()


#: Single-bug notebooks whose bug truly lies in more terms than the one SINGLE_BUGS records, or
#: that a finding other than a term names (a constant factor is the factor ||dL/dh_T||).
ALSO = {"bound_frobenius": (("wnorm", "jnorm"), ()),
        "tbptt_detach_after_step": (("trunc", "backprop"), ()),
        "bound_no_loss_gradient": ((), ("a factor that multiplies the whole result",))}


def bugs() -> dict[str, list[Bug]]:
    single = [Bug(n, b.function, b.source, (b.mistake,) if b.mistake else (),
                  ((b.term,) if b.term else ()) + ALSO.get(n, ((), ()))[0], ALSO.get(n, ((), ()))[1])
              for n, b in SINGLE_BUGS.items()]
    third = [Bug(n, b.function, b.source, b.mistakes, b.terms, b.phrases) for n, b in UNSEEN3.items()]
    return {"single_bug": single, "unseen3": third}


def student_function(bug: Bug) -> Callable[..., Any]:
    namespace: dict[str, Any] = {"torch": torch, "np": np,
                                 "activation_jacobian": reference.activation_jacobian,
                                 "rnn_forward": reference.rnn_forward}
    exec(compile(bug.source, f"<{bug.name}>", "exec"), namespace)
    return namespace[bug.function]  # type: ignore[no-any-return]


def located_terms(function: str, diagnosis: str, activation: str | None) -> tuple[str, ...]:
    """The terms the probes' verdict claims are wrong ("X is wrong", "more than one ...")."""
    m = re.search(r"it does not: (.*?)(?:\.(?: |$))", diagnosis) or re.search(
        r"your output differs from the reference: (.*?)(?:\.(?: |$))", diagnosis)
    if not m:
        return ()
    tail = m.group(1)
    if "could not" in tail or "how the terms combine" in tail:
        return ()
    texts = P._terms(function, activation)
    return tuple(t for t in P.TERMS[function] if texts[t] in tail)


def judge(bug: Bug, results: Sequence[CaseResult]) -> tuple[bool, str]:
    """(named or located, "" or why it misleads)."""
    failed = [r for r in results if not r.passed]
    if not failed:
        return False, "passed"
    text = " ".join([r.message for r in failed] + [failed[0].diagnosis])
    named = [m.key for m in mistakes_for(bug.function) if m.description in text]
    m = re.search(r"activation=(\w+)", failed[0].params)
    located = located_terms(bug.function, failed[0].diagnosis, m.group(1) if m else None)
    hedged = "one of these is wrong" in failed[0].diagnosis
    ok = (any(k in bug.mistakes for k in named) or any(t in bug.terms for t in located)
          or any(p in text for p in bug.phrases))
    wrong_names = [k for k in named if k not in bug.mistakes]
    if hedged:
        wrong_terms = [] if any(t in bug.terms for t in located) else list(located)
    else:
        wrong_terms = [t for t in located if t not in bug.terms]
    misleads = ""
    if wrong_names or wrong_terms:
        misleads = f"names {wrong_names} locates {wrong_terms}"
    return ok and not (hedged and not any(k in bug.mistakes for k in named)
                       and not any(p in text for p in bug.phrases) and len(located) > 1), misleads


def measure(verbose: bool = True) -> dict[str, tuple[int, int, int]]:
    """set -> (named or located, misleading, total)."""
    from test_probes import _grade
    out = {}
    for name, group in bugs().items():
        good = bad = 0
        for bug in group:
            results, _ = _grade(bug.function, student_function(bug))
            ok, misleads = judge(bug, results)
            good += ok
            bad += bool(misleads)
            if verbose:
                failed = [r for r in results if not r.passed]
                first = failed[0] if failed else None
                print(f"{'OK  ' if ok else 'MISS'}{' MISLEADS' if misleads else ''} {name}/{bug.name}: "
                      f"{misleads} | {first.message if first else ''} | {first.diagnosis if first else ''}")
        out[name] = (good, bad, len(group))
    return out


if __name__ == "__main__":
    totals = measure()
    for name, (good, bad, n) in totals.items():
        print(f"{name}: named or located {good} of {n}; misleading {bad}")
