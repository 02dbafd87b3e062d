"""The recall verdict of 11.4.d: train the student's ``train_recall`` in its kernel and judge it.

What makes the verdict defensible (docs/recall.md):

- **Learning, not reading the input.** The label of a recall sequence is its first token, so a
  model that returns ``x[0]`` scores 100 % without learning anything. During the grader's calls
  the kernel's global ``make_recall_data`` is replaced by one whose labels pass through a secret
  permutation of the classes (a derangement keyed by the course secret and the submission's
  bytes, so every submission has its own and a re-grade the same);
  the held-out labels the grader scores against go through the same permutation. A model that
  did not learn from the training data scores about 0; a trained one is unaffected. The
  student's own ``make_recall_data`` is put back after every call.
- **The accuracy must come from a recurrent network that learned.** The relabelling cannot be
  kept from a trainer: every batch of ``make_recall_data`` shows which first token goes with which
  label, and a lookup table read off one batch is, formally, a learner. What it does stop is a
  model that never looked at the training data. What stops a model that read the relabelling and
  answers with a lookup (or any code beside a recurrent network) is evidence about *what carries
  the accuracy*, measured in the grader's process (:func:`judge_memory`): the returned model must
  hold a recurrent module of the requested kind (exactly ``torch.nn.LSTM``/``LSTMCell`` for the
  LSTM), which the grader rebuilds from its weights (sent as plain arrays by
  grader/checks/recall_kernel.py) and runs itself, with its own torch, on the inputs the module was given
  for the held-out sequences. Those inputs must be one vector per step, a function of that step's
  token alone, in order and for every step (no reversed sequence, no first token copied into
  later steps); the module's final state must then carry the first token: a linear probe fitted
  in the grader on half the sequences must name it on the other half with at least the rubric's
  ``memory_min_accuracy``. The same module with its recurrent weights re-initialised is measured
  beside it (about chance: ``1 / n_classes``), and the report shows both. A model whose answer
  comes from anywhere else, or whose forward notices that it is being probed, gains nothing: the
  grader never runs the student's forward for this evidence, only torch's module on the student's
  weights. What is left is a recurrent network of the requested kind that really remembers the
  first token over the whole sequence.
- **Several tries.** A correct implementation still fails now and then on one seed (its
  optimisation stalls on the plateau). The LSTM is trained with the seeds ``train_seed``,
  ``train_seed + 1``, ... up to the rubric's ``tries``, and the first run that reaches the
  threshold within the time limit counts. The rule was chosen from the calibration
  (``python -m reference.calibrate``): :func:`tries_needed`.
- **Time the student is responsible for.** The limit is on the CPU time of the kernel (all its
  processes and threads) from the start of the training call to the end of the last call made
  on its model (scoring and evidence), so training left to a background thread and waited for
  in the model's forward counts too. It is read from outside the kernel: its cgroup's CPU accounting where the
  grader made one, else ``/proc`` of the kernel's process tree. Nothing the kernel reports about
  itself is used. The wall clock stops a call only as a safety net with a wide margin.

Everything numeric comes from the rubric's ``[recall]`` section.
"""
from __future__ import annotations

import math
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from grader.checks.secret import derive
from grader.resources import kernel_module

if TYPE_CHECKING:  # pragma: no cover - imports for the type checker only
    from grader.checks.bridge import Bridge
    from grader.kernel.execute import KernelSession
    from grader.result import CaseResult, Recall
    from grader.rubric import Rubric

__all__ = [
    "Attempt",
    "KERNEL_TRAIN_CODE",
    "decide",
    "draw_permutation",
    "PUBLIC_KEY",
    "permutation_key",
    "failure_upper_bound",
    "heldout",
    "judge_memory",
    "Memory",
    "probe_accuracy",
    "kernel_cpu_seconds",
    "process_tree_cpu_seconds",
    "run_recall",
    "should_retry",
    "wall_budget_spent",
    "train_seeds",
    "tries_needed",
]


# ============================================================================ the decision rule

@dataclass(frozen=True)
class Attempt:
    """One call of ``train_recall`` and what came of it.

    ``status`` is ``ok`` (a model came back and was scored), ``raised``, ``timeout`` (the wall-clock
    safety net stopped it), ``died`` (the kernel crashed), ``bad-model`` (the model could not be
    called or returned the wrong shape) or ``no-memory`` (it scored, but the evidence of
    :func:`judge_memory` did not show a recurrent network of the requested kind carrying it).
    ``cpu_seconds`` (the kernel's, from the training call to the end of the last call on the model)
    is ``None`` where the kernel's CPU time could not be read; the wall clock of the same calls
    then stands in (and the report says so).
    """

    cell: str
    seed: int
    status: str
    accuracy: float | None = None
    cpu_seconds: float | None = None
    wall_seconds: float = 0.0
    problem: str = ""
    error_type: str = ""  # with "raised": the exception's class name (feedback only)
    #: The recurrent memory evidence (:func:`judge_memory`): the probe's held-out accuracy on the
    #: learned module's state, and on the same module re-initialised (``None``: not measured).
    memory: float | None = None
    memory_reset: float | None = None
    #: Why a model under the threshold failed, read from its held-out predictions
    #: (grader/checks/recall_diagnosis.py): the kind and the student's message ("" where none fits).
    diagnosis_kind: str = ""
    diagnosis: str = ""

    @property
    def seconds(self) -> float:
        """The seconds the time limit is applied to: CPU where known, else wall."""
        return self.cpu_seconds if self.cpu_seconds is not None else self.wall_seconds

    def in_time(self, cpu_limit: float) -> bool:
        return self.status != "timeout" and self.seconds <= cpu_limit

    def passed(self, threshold: float, cpu_limit: float) -> bool:
        return (self.status == "ok" and self.accuracy is not None and self.accuracy >= threshold
                and self.in_time(cpu_limit))


def should_retry(attempt: Attempt, threshold: float, cpu_limit: float) -> bool:
    """Whether another seed may help after ``attempt`` failed.

    Only a model that trained within the time and missed the threshold is retried: that is the
    failure a different seed can fix. A crash, an exception, a wrong model or a timeout would only
    repeat and cost the grader another full limit.
    """
    return attempt.status == "ok" and attempt.in_time(cpu_limit) and not attempt.passed(threshold, cpu_limit)


def wall_budget_spent(attempts: list[Attempt], wall_limit: float) -> bool:
    """No further try once the tries together took the wall-clock safety net's time.

    The safety net bounds the grader's time per submission (at most about twice
    ``wall_time_limit`` for the LSTM, whatever a submission does, e.g. sleep); correct training
    stays far below it (docs/recall.md, "Calibration").
    """
    return sum(a.wall_seconds for a in attempts) >= wall_limit


def cpu_budget_spent(attempts: list[Attempt], budget: float) -> bool:
    """No further try once the tries together used the rubric's CPU budget for them.

    The budget, not a count, bounds the tries: a fast but fragile trainer gets as many as its
    speed allows, a slow one as many as the budget holds (docs/recall.md, "Calibration"). Each
    try counts its CPU seconds where known, else its wall clock (:attr:`Attempt.seconds`).
    """
    return sum(a.seconds for a in attempts) >= budget


def tries_within(budget: float, seconds_per_try: float, cap: int) -> int:
    """How many tries a trainer that takes ``seconds_per_try`` CPU s gets from the budget: a try
    starts while the ones before used less than the budget, so ceil(budget / s), at most ``cap``."""
    if seconds_per_try <= 0:
        return cap
    return max(1, min(cap, math.ceil(budget / seconds_per_try)))


def decide(attempts: list[Attempt], threshold: float, cpu_limit: float) -> tuple[bool, Attempt | None]:
    """The verdict over the LSTM's tries: passed, and the attempt that decides it.

    The first attempt that passes counts. Without one, the deciding attempt is the last one (the
    one whose failure the report explains).
    """
    for attempt in attempts:
        if attempt.passed(threshold, cpu_limit):
            return True, attempt
    return False, (attempts[-1] if attempts else None)


def train_seeds(train_seed: int, tries: int) -> list[int]:
    """The seeds of the LSTM's tries, in order: ``train_seed, train_seed + 1, ...``."""
    return [train_seed + i for i in range(tries)]


def failure_upper_bound(failures: int, runs: int, confidence: float = 0.95) -> float:
    """One-sided Clopper-Pearson upper bound on a per-run failure rate.

    Parameters
    ----------
    failures, runs : int
        Observed failures out of ``runs`` independent runs.
    confidence : float
        Confidence level of the bound.

    Returns
    -------
    float
        The largest rate p for which seeing at most ``failures`` failures still has probability
        at least ``1 - confidence``: 0 failures in 30 runs gives 0.095 at 95 %.
    """
    if runs <= 0 or not 0 <= failures <= runs:
        raise ValueError(f"need 0 <= failures <= runs and runs > 0, got {failures}/{runs}")
    if failures == runs:
        return 1.0
    alpha = 1.0 - confidence

    def cdf(p: float) -> float:  # P(X <= failures) for X ~ Binomial(runs, p)
        return sum(math.comb(runs, i) * p**i * (1 - p) ** (runs - i) for i in range(failures + 1))

    lo, hi = failures / runs, 1.0
    for _ in range(60):  # bisection: cdf falls with p
        mid = (lo + hi) / 2
        if cdf(mid) > alpha:
            lo = mid
        else:
            hi = mid
    return hi


def tries_needed(failures: int, runs: int, target: float = 0.01, confidence: float | None = 0.95,
                 most: int = 10) -> int:
    """The fewest tries k with ``p ** k <= target``, assuming the seeds fail independently.

    ``p`` is the one-sided Clopper-Pearson upper bound at ``confidence``, or the observed rate
    ``failures / runs`` with ``confidence=None``. Returns 0 where even ``most`` tries would not
    reach the target (the implementation fails too often for any number of tries to help).
    """
    p = failures / runs if confidence is None else failure_upper_bound(failures, runs, confidence)
    for k in range(1, most + 1):
        if p**k <= target * (1 + 1e-9):  # 0.1 ** 2 is 0.010000000000000002 in floats
            return k
    return 0


# ======================================================================== data and relabelling

def draw_permutation(n_classes: int, key: bytes | None = None) -> list[int]:
    """A secret relabelling of the classes without a fixed point (Sattolo's algorithm).

    With ``key`` (grading: :func:`permutation_key` of the course secret and the submission's
    sha256) the relabelling is a function of the key, so a re-grade of the same bytes trains on
    the same labels and reaches the same verdict, and a benchmark's legs do the same work; it
    still cannot be reproduced without the course secret. Without a key it is drawn from the
    operating system's randomness.
    No class keeps its label, so a model that reads the first token instead of learning scores 0
    on the relabelled held-out data.
    """
    if n_classes < 2:
        raise ValueError(f"a relabelling needs at least 2 classes, got {n_classes}")
    pick: Callable[[int], int]
    if key is None:
        pick = secrets.SystemRandom().randrange
    else:
        def pick(i: int) -> int:
            # One keyed 256-bit number per position: its remainder mod i (any i < 2**32) is
            # uniform to within 2**-224, as unbiased as Sattolo's with true randomness.
            return int.from_bytes(derive(key, "sattolo", i), "big") % i
    perm = list(range(n_classes))
    for i in range(n_classes - 1, 0, -1):
        j = pick(i)  # j < i: a single cycle through every class
        perm[i], perm[j] = perm[j], perm[i]
    return perm


#: What `grade check` keys its relabelling with: it has no course secret, so a student's check is
#: reproducible (the same notebook, the same relabelling) but not secret. Knowing it does not
#: help a model that reads the input: the relabelling depends on the notebook's own bytes.
PUBLIC_KEY = b"sheet11 grade check: no course secret"


def permutation_key(secret: bytes | None, sha256: str) -> bytes:
    """The key of a submission's relabelling: keyed by the course secret (so students cannot
    compute it; :data:`PUBLIC_KEY` where there is none) and by the submission's bytes (so each
    submission gets its own, a re-grade the same)."""
    return derive(PUBLIC_KEY if secret is None else secret, "recall.permutation", sha256)


def heldout(n: int, seq_len: int, n_classes: int, seed: int, perm: list[int]) -> tuple[torch.Tensor, np.ndarray]:
    """Held-out data drawn in the grader: x (T, n, C) and the relabelled labels ``perm[y]``."""
    import reference
    x, y = reference.make_recall_data(n, seq_len, n_classes, seed)
    return x, np.asarray(perm, dtype=np.int64)[y.numpy()]


# Runs in the kernel (grader/checks/recall_train_kernel.py, executed afresh in a fresh namespace
# before every call, so a student cannot have replaced it), with the notebook's globals.
KERNEL_TRAIN_CODE = kernel_module("grader.checks", "recall_train_kernel.py")
_TRAIN_EXPR = ("(lambda ns, a: (exec(a['src'], ns), ns['train'](globals(), a))[1])"
               "({'__name__': 'sheet11_recall_train'}, __args)")


# ============================================================================ memory evidence

@dataclass(frozen=True)
class Memory:
    """What :func:`judge_memory` found: ``problem`` is empty where the evidence holds."""

    problem: str
    learned: float | None = None  # the probe's held-out accuracy on the learned module's state
    reset: float | None = None    # the same with the module's weights re-initialised


_KIND_NAMES = {0.0: "LSTM", 1.0: "LSTMCell", 2.0: "RNN", 3.0: "RNNCell"}
_WANTED = {"lstm": "torch.nn.LSTM or torch.nn.LSTMCell", "rnn": "torch.nn.RNN or torch.nn.RNNCell"}


def _number(entry: dict, key: str) -> float:
    value = entry.get(key)
    if not isinstance(value, float) or not math.isfinite(value):
        raise ValueError(f"{key} missing")
    return value


def _rebuild(entry: dict) -> tuple[torch.nn.Module, str]:
    """The module the kernel described, built by the grader's torch from the plain weights."""
    from grader.checks.bridge import ArrayInfo
    kind = _KIND_NAMES.get(_number(entry, "kind"), "")
    hidden, inp = int(_number(entry, "hidden_size")), int(_number(entry, "input_size"))
    bias = _number(entry, "bias") == 1.0
    if not (0 < hidden <= 4096 and 0 < inp <= 4096):
        raise ValueError("sizes out of range")
    nonlinearity = "tanh" if entry.get("tanh", 1.0) == 1.0 else "relu"
    module: torch.nn.Module
    if kind in ("LSTM", "RNN"):
        layers = int(_number(entry, "num_layers"))
        if not 0 < layers <= 4:
            raise ValueError("num_layers out of range")
        if _number(entry, "bidirectional") == 1.0:
            raise ValueError("bidirectional")
        if kind == "LSTM":
            module = torch.nn.LSTM(inp, hidden, layers, bias=bias, proj_size=int(_number(entry, "proj_size")))
        else:
            module = torch.nn.RNN(inp, hidden, layers, bias=bias, nonlinearity=nonlinearity)
    elif kind == "LSTMCell":
        module = torch.nn.LSTMCell(inp, hidden, bias=bias)
    elif kind == "RNNCell":
        module = torch.nn.RNNCell(inp, hidden, bias=bias, nonlinearity=nonlinearity)
    else:
        raise ValueError("unknown kind")
    weights = entry.get("weights")
    if not isinstance(weights, dict):
        raise ValueError("weights missing")
    state = {}
    for name, param in module.state_dict().items():
        got = weights.get(name)
        if not isinstance(got, ArrayInfo) or tuple(got.array.shape) != tuple(param.shape):
            raise ValueError(f"weight {name} missing or of another shape")
        state[name] = torch.from_numpy(got.array).to(torch.float32)
    module.load_state_dict(state)
    return module.eval(), kind


def _final_state(module: torch.nn.Module, kind: str, inputs: torch.Tensor) -> np.ndarray:
    """The module's state after the whole sequence (T, B, D), from zero: features per sequence."""
    with torch.no_grad():
        if kind in ("LSTM", "RNN"):
            _, state = module(inputs)
            parts = state if isinstance(state, tuple) else (state,)
            feats = torch.cat([p.permute(1, 0, 2).reshape(inputs.shape[1], -1) for p in parts], dim=1)
        else:
            h = None
            for t in range(inputs.shape[0]):
                h = module(inputs[t], h)
            parts = h if isinstance(h, tuple) else (h,)
            feats = torch.cat(list(parts), dim=1)
    return feats.double().numpy()


def probe_accuracy(features: np.ndarray, labels: np.ndarray, n_classes: int) -> float:
    """Held-out accuracy of a ridge-regression probe from ``features`` to ``labels``.

    Fitted on the first half of the sequences, measured on the second, features standardised
    on the first half. Linear in the features: it reads what the state holds, it learns no
    memory of its own.
    """
    half = len(labels) // 2
    train, test = features[:half], features[half:]
    mean, std = train.mean(axis=0), train.std(axis=0) + 1e-6
    a = np.hstack([(train - mean) / std, np.ones((half, 1))])
    b = np.hstack([(test - mean) / std, np.ones((len(test), 1))])
    target = np.eye(n_classes)[labels[:half]]
    ridge = 1e-2 * half * np.eye(a.shape[1])
    coef = np.linalg.solve(a.T @ a + ridge, a.T @ target)
    return float(np.mean(np.argmax(b @ coef, axis=1) == labels[half:]))


def _time_local(inputs: np.ndarray, tokens: np.ndarray) -> bool:
    """Whether the module's input at every step is one and the same function of that step's
    token (a one-hot vector, an embedding, a linear map...), read in order: rows of equal tokens
    are equal, and the first token is not copied into later steps or read backwards."""
    flat = inputs.reshape(-1, inputs.shape[-1])
    keys = tokens.reshape(-1)
    scale = max(1.0, float(np.max(np.abs(flat)))) if flat.size else 1.0
    first: dict[int, np.ndarray] = {}
    for k in np.unique(keys):
        rows = flat[keys == k]
        if np.max(np.abs(rows - rows[0])) > 1e-4 * scale:
            return False
        first[int(k)] = rows[0]
    # Distinct tokens must give distinct inputs (else the token is not what the module reads).
    vectors = list(first.values())
    return all(np.max(np.abs(u - v)) > 1e-6 * scale for i, u in enumerate(vectors) for v in vectors[i + 1:])


def judge_memory(found: object, tokens: np.ndarray, cell: str, n_classes: int, min_accuracy: float) -> Memory:
    """Whether the model's recurrent module of kind ``cell`` carries the first token (see the
    module docstring); ``tokens`` (T, B) are the held-out tokens the evidence ran on."""
    from grader.checks.bridge import ArrayInfo
    modules = found.get("modules") if isinstance(found, dict) else None
    if not isinstance(modules, tuple) or not modules:
        return Memory(f"the grader found no LSTM in the model ({_WANTED[cell]}, calls of the notebook's own "
                      "lstm_cell, or LSTM-shaped weights): it checks that the accuracy comes from a recurrent "
                      "network of that kind (see the docstring of train_recall)" if cell == "lstm" else
                      f"the model holds no {_WANTED[cell]}: the grader checks that the accuracy comes "
                      "from a recurrent network of that kind (see the docstring of train_recall)")
    T, B = tokens.shape
    labels = tokens[0].astype(np.int64)
    best: Memory | None = None
    problems = []
    for entry in modules:
        try:
            module, kind = _rebuild(entry)
        except (ValueError, RuntimeError, TypeError) as exc:
            problems.append("its recurrent module is bidirectional (it reads the sequence backwards too)"
                            if str(exc) == "bidirectional" else f"its recurrent module could not be rebuilt ({exc})")
            continue
        inputs = entry.get("inputs")
        calls = entry.get("calls")
        arr = inputs.array if isinstance(inputs, ArrayInfo) else None
        if arr is not None and kind in ("LSTM", "RNN") and entry.get("batch_first") == 1.0 and arr.ndim == 3:
            arr = arr.transpose(1, 0, 2)
        want_calls = 1.0 if kind in ("LSTM", "RNN") else float(T)
        if arr is None or calls != want_calls or arr.ndim != 3 or arr.shape[:2] != (T, B):
            problems.append(f"its {kind} was not run once over all {T} steps of each held-out sequence")
            continue
        if not _time_local(arr, tokens):
            problems.append(f"what its {kind} reads at a step is not that step's token alone, in order")
            continue
        x = torch.from_numpy(np.ascontiguousarray(arr)).to(torch.float32)
        try:
            learned = max(probe_accuracy(_final_state(m, kind, x), labels, n_classes)
                          for m in _gate_orders(module, entry.get("any_gate_order") == 1.0))
            torch.manual_seed(0)
            fresh = _reset(module)
            reset = probe_accuracy(_final_state(fresh, kind, x), labels, n_classes)
        except (RuntimeError, ValueError, np.linalg.LinAlgError) as exc:
            problems.append(f"its {kind} could not be run on its own inputs ({type(exc).__name__})")
            continue
        got = Memory("" if learned >= min_accuracy else
                     f"its {kind}'s state after the last step names the first token for only {learned:.0%} "
                     f"of held-out sequences ({min_accuracy:.0%} needed; re-initialised: {reset:.0%})",
                     learned, reset)
        if best is None or (got.learned or 0.0) > (best.learned or 0.0):
            best = got
    if best is not None:
        return best
    return Memory("; ".join(problems[:2]) or "no recurrent module could be judged")


def _gate_orders(module: torch.nn.Module, any_order: bool) -> list[torch.nn.Module]:
    """``module`` as it is, or, for an inline LSTM whose gate order is the student's own, the
    module under each of the 24 orders of its four gate blocks (the grader's LSTMCell reads i, f, g, o)."""
    if not any_order:
        return [module]
    import copy
    import itertools
    state = module.state_dict()
    hidden = int(state["weight_hh"].shape[1])
    out = []
    for order in itertools.permutations(range(4)):
        index = torch.cat([torch.arange(k * hidden, (k + 1) * hidden) for k in order])
        other = copy.deepcopy(module)
        other.load_state_dict({name: value[index] for name, value in state.items()})
        out.append(other)
    return out


def _reset(module: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``module`` with every weight re-initialised as torch does (seeded by the caller)."""
    import copy
    fresh = copy.deepcopy(module)
    reset = getattr(fresh, "reset_parameters", None)
    if callable(reset):
        reset()
    return fresh


# ============================================================================ kernel CPU time

_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat_fields(pid: int, proc: Path) -> list[str] | None:
    try:
        raw = (proc / str(pid) / "stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    close = raw.rfind(")")
    return raw[close + 2:].split() if close >= 0 else None


def process_tree_cpu_seconds(root_pid: int, proc: Path = Path("/proc")) -> float | None:
    """User + system CPU seconds of ``root_pid`` and all its descendants, from ``/proc``.

    Each process counts its own time and its waited-for children's (``cutime``, ``cstime``), so
    a child that has ended and been reaped is still counted. ``None`` when ``root_pid`` is gone.
    One pass over ``/proc``: linear in the number of processes.
    """
    children: dict[int, list[int]] = {}
    times: dict[int, float] = {}
    try:
        entries = [e for e in os.listdir(proc) if e.isdigit()]
    except OSError:
        return None
    for name in entries:
        fields = _stat_fields(int(name), proc)
        if fields is None or len(fields) < 15:
            continue
        try:
            ppid = int(fields[1])
            ticks = sum(int(fields[i]) for i in (11, 12, 13, 14))  # utime stime cutime cstime
        except ValueError:
            continue
        children.setdefault(ppid, []).append(int(name))
        times[int(name)] = ticks / _CLK_TCK
    if root_pid not in times:
        return None
    total, stack, seen = 0.0, [root_pid], set()
    while stack:
        pid = stack.pop()
        if pid in seen:
            continue
        seen.add(pid)
        total += times.get(pid, 0.0)
        stack.extend(children.get(pid, ()))
    return total


def kernel_cpu_seconds(session: KernelSession) -> float | None:
    """CPU seconds the kernel (with everything it started) has used so far, read from outside.

    The kernel's cgroup where the grader made one (it counts every process that ever ran in it);
    else ``/proc`` of the process the grader started for the kernel and its descendants; ``None``
    where neither can be read. Never a number the kernel reports.
    """
    cgroup = getattr(session, "cgroup", None)
    if cgroup is not None:
        used = cgroup.cpu_seconds()
        if used is not None:
            return used
    pid = session.kernel_pid()
    return process_tree_cpu_seconds(pid) if pid is not None else None


# ============================================================================ the experiment

def _call_status(attempt: Attempt) -> str:
    """The attempt as a check's call status (grader/checks/compare.py's CaseResult.call_status)."""
    return "ok" if attempt.status in ("bad-model", "no-memory") else attempt.status


def _cpu_since(bridge: Bridge, before: float | None) -> float | None:
    """The kernel's CPU seconds since ``before`` (its whole process tree, read from outside)."""
    after = kernel_cpu_seconds(bridge.session)
    return after - before if before is not None and after is not None and after >= before else None


def _train(bridge: Bridge, spec_function: str, cell: str, seq_len: int, n_classes: int, seed: int,
           perm: list[int], wall_limit: float) -> tuple[str, str, str, float | None, float]:
    """One training call: (status, error, its class name, kernel CPU seconds before it, wall seconds)."""
    before = kernel_cpu_seconds(bridge.session)
    got = bridge.call(_TRAIN_EXPR, {"src": KERNEL_TRAIN_CODE, "function": spec_function, "cell": cell,
                                    "seq_len": seq_len, "n_classes": n_classes, "seed": seed,
                                    "perm": torch.tensor(perm, dtype=torch.int64)}, wall_limit)
    return got.status, got.error, got.error_type, before, got.seconds


#: Runs grader/checks/recall_kernel.py's source in a fresh namespace of the kernel and its `evidence` on
#: the trained model: defined anew with every call, never a name the notebook could have bound.
_EVIDENCE_EXPR = ("(lambda ns, a: (exec(a['src'], ns), ns['evidence'](globals()['_sheet11_model_' + a['cell']], "
                  "a['x'], a['cell'], globals()))[1])({'__name__': 'sheet11_recall_evidence'}, __args)")


def _kernel_module_source() -> str:
    from grader.resources import kernel_module
    return kernel_module("grader.checks", "recall_kernel.py")


def _memory(bridge: Bridge, rubric: Rubric, cell: str, x: torch.Tensor) -> Memory:
    """The memory evidence of the model trained for ``cell``, on the first ``evidence_n`` of ``x``."""
    spec = rubric.recall
    n = min(spec.evidence_n, int(x.shape[1]))
    part = x[:, :n]
    got = bridge.call(_EVIDENCE_EXPR, {"src": _kernel_module_source(), "cell": cell, "x": part},
                      rubric.limits.call_timeout)
    if got.status != "ok":
        return Memory(f"the grader could not look into the model ({got.error or got.status})")
    tokens = part.argmax(dim=2).numpy()
    return judge_memory(got.value, tokens, cell, spec.n_classes, spec.memory_min_accuracy)


def _attempt(bridge: Bridge, rubric: Rubric, cell: str, seed: int, perm: list[int],
             x: torch.Tensor, y: np.ndarray) -> Attempt:
    """Train ``cell`` with ``seed`` at the length of ``x``, score it on (x, y) in the grader and,
    where it reached the threshold, judge the memory evidence. The CPU time counted runs from the
    training call to the end of the last call on the model."""
    from grader.checks.bridge import ArrayInfo
    spec = rubric.recall
    status, error, error_type, before, wall = _train(bridge, spec.function, cell, int(x.shape[0]), spec.n_classes,
                                                     seed, perm, spec.wall_time_limit)
    if status != "ok":
        cpu = _cpu_since(bridge, before) if status not in ("died", "timeout") else None
        problem = {"timeout": f"training was stopped after {spec.wall_time_limit:g} s (wall clock)",
                   "died": "the kernel crashed during training",
                   "raised": f"`{spec.function}('{cell}', ...)` raised {error}"}.get(
            status, error or f"the training call ended with status {status}")
        return Attempt(cell, seed, "raised" if status == "garbled" else status, None, cpu, wall, problem,
                       error_type if status == "raised" else "")
    scored = bridge.call(f"__logits(globals()['_sheet11_model_{cell}'], __args['x'])", {"x": x},
                         rubric.limits.call_timeout)
    wall += scored.seconds
    value = scored.value
    if scored.status != "ok":
        return Attempt(cell, seed, "bad-model", None, _cpu_since(bridge, before), wall,
                       f"calling the trained model failed: {scored.error or scored.status}")
    if not isinstance(value, ArrayInfo) or value.array.shape != (spec.heldout_n, spec.n_classes):
        shape = tuple(value.array.shape) if isinstance(value, ArrayInfo) else type(value).__name__
        return Attempt(cell, seed, "bad-model", None, _cpu_since(bridge, before), wall,
                       f"the model returned {shape} for x of shape {tuple(x.shape)}; expected logits "
                       f"of shape ({spec.heldout_n}, {spec.n_classes})")
    logits = value.array
    # NaN logits are no prediction: argmax would pick the first NaN, a class by accident.
    valid = np.isfinite(logits).all(axis=1)
    accuracy = float(np.mean(valid & (np.argmax(np.nan_to_num(logits, nan=-np.inf), axis=1) == y)))
    if cell != "lstm":
        return Attempt(cell, seed, "ok", accuracy, _cpu_since(bridge, before), wall)
    if accuracy < spec.threshold:
        kind, why = _diagnosis(logits, x, y, perm)
        return Attempt(cell, seed, "ok", accuracy, _cpu_since(bridge, before), wall,
                       diagnosis_kind=kind, diagnosis=why)
    memory = _memory(bridge, rubric, cell, x)
    cpu = _cpu_since(bridge, before)
    if memory.problem:
        return Attempt(cell, seed, "no-memory", accuracy, cpu, wall,
                       f"the model reached {accuracy:.1%}, but not through what an LSTM learned: "
                       f"{memory.problem}", memory=memory.learned, memory_reset=memory.reset)
    return Attempt(cell, seed, "ok", accuracy, cpu, wall, memory=memory.learned, memory_reset=memory.reset)


def _diagnosis(logits: np.ndarray, x: torch.Tensor, y: np.ndarray, perm: list[int]) -> tuple[str, str]:
    """Why a model under the threshold failed, from its held-out predictions (in the grader)."""
    from grader.checks.recall_diagnosis import diagnose_recall
    tokens = x.argmax(dim=2).numpy()
    try:
        got = diagnose_recall(np.nan_to_num(logits, nan=-np.inf), y, tokens[-1], tokens[0], perm)
    except ValueError:  # logits of another shape are reported as such elsewhere
        return "", ""
    return got.kind, got.message


def _seconds_text(a: Attempt) -> str:
    if a.cpu_seconds is not None:
        return f"{a.cpu_seconds:.0f} CPU s"
    return f"{a.wall_seconds:.0f} s wall clock (the kernel's CPU time could not be read)"


def _interface_run(bridge: Bridge, rubric: Rubric, perm: list[int]) -> tuple[Recall, CaseResult]:
    """`grade check` without ``--full``: one short LSTM run (``check_seq_len``), the interface only."""
    from grader.result import CaseResult, Recall
    spec = rubric.recall
    x, y = heldout(spec.heldout_n, spec.check_seq_len, spec.n_classes, spec.public_heldout_seed, perm)
    a = _attempt(bridge, rubric, "lstm", spec.train_seed, perm, x, y)
    params = f"seq_len={spec.check_seq_len}, n_classes={spec.n_classes}, cell='lstm' (interface only)"
    later = (f"learning at seq_len {spec.seq_len} is not checked here: `grade check --full` trains as "
             f"grading does (up to {spec.tries} LSTM tr{'y' if spec.tries == 1 else 'ies'}, each within "
             f"{spec.cpu_time_limit:g} CPU s, needing {spec.threshold:.0%} held-out accuracy)")
    passed = a.status == "ok"
    got = f"{a.accuracy:.1%}" if a.accuracy is not None else ""
    message = (f"a model came back and was scored: {got} held-out accuracy at seq_len {spec.check_seq_len} "
               f"in {_seconds_text(a)}; {later}") if passed else f"{a.problem}; {later}"
    case = CaseResult(function=spec.function, index=1, params=params,
                      shapes=f"held-out x ({spec.check_seq_len}, {spec.heldout_n}, {spec.n_classes})",
                      max_points=spec.points, passed=passed, points=spec.points if passed else 0.0,
                      message=message, expected="a model", got=got, call_status=_call_status(a),
                      error_type=a.error_type)
    return Recall(a.accuracy, None, a.seconds if passed else None, None, spec.threshold,
                  "" if passed else a.problem, tries=1, rnn_run=False,
                  cpu_measured=a.cpu_seconds is not None), case


def run_recall(bridge: Bridge, rubric: Rubric, defined: bool, public: bool = False,
               why: str = "", full: bool = True, key: bytes | None = None) -> tuple[Recall, CaseResult]:
    """The recall experiment for one submission: the ``Recall`` summary and the graded case.

    ``public`` uses the public held-out seed (``grade check --full``); grading uses the hidden one.
    ``full=False`` (`grade check` without ``--full``) trains once at ``check_seq_len`` and checks
    the interface only. ``key``: the relabelling's key (:func:`permutation_key`); None draws it
    at random.
    """
    from grader.checks.compare import missing_case
    from grader.result import CaseResult, Recall
    spec = rubric.recall
    params = f"seq_len={spec.seq_len}, n_classes={spec.n_classes}, cell='lstm'"
    shapes = f"held-out x ({spec.seq_len}, {spec.heldout_n}, {spec.n_classes})"
    if not defined:
        return (Recall(None, None, None, None, spec.threshold, "not defined", rnn_run=spec.compare_rnn),
                missing_case(spec.function, 1, params, shapes, spec.points, why))
    perm = draw_permutation(spec.n_classes, key)
    if not full:
        return _interface_run(bridge, rubric, perm)
    x, y = heldout(spec.heldout_n, spec.seq_len, spec.n_classes,
                   spec.public_heldout_seed if public else spec.heldout_seed, perm)
    attempts: list[Attempt] = []
    for seed in train_seeds(spec.train_seed, spec.tries):
        if wall_budget_spent(attempts, spec.wall_time_limit) or cpu_budget_spent(attempts, spec.cpu_budget):
            break
        attempt = _attempt(bridge, rubric, "lstm", seed, perm, x, y)
        attempts.append(attempt)
        if attempt.passed(spec.threshold, spec.cpu_time_limit) or not should_retry(
                attempt, spec.threshold, spec.cpu_time_limit):
            break
    passed, deciding = decide(attempts, spec.threshold, spec.cpu_time_limit)
    assert deciding is not None  # tries >= 1 (rubric)
    rnn = _attempt(bridge, rubric, "rnn", spec.train_seed, perm, x, y) if spec.compare_rnn else None

    if (not passed and len(attempts) < spec.tries and should_retry(deciding, spec.threshold, spec.cpu_time_limit)):
        if cpu_budget_spent(attempts, spec.cpu_budget):
            skipped = (f"no further try: the tries used {sum(a.seconds for a in attempts):.0f} CPU s together, "
                       f"the budget for them is {spec.cpu_budget:g} CPU s")
        else:
            skipped = (f"no further try: the tries took {sum(a.wall_seconds for a in attempts):.0f} s of wall "
                       f"clock together, the safety net is {spec.wall_time_limit:g} s")
    else:
        skipped = ""
    tried = "; ".join(
        f"seed {a.seed}: " + (f"{a.accuracy:.1%} in {_seconds_text(a)}" if a.accuracy is not None
                              else a.problem) for a in attempts)
    if passed:
        message = ""
    elif deciding.status != "ok":
        message = deciding.problem
    elif not deciding.in_time(spec.cpu_time_limit):
        message = (f"training took {_seconds_text(deciding)}; the limit is {spec.cpu_time_limit:g} CPU s "
                   "per call")
    else:
        # The relabelling is named only where the predictions show it is the cause (the model
        # predicts the classes before relabelling); otherwise what the predictions show, if anything.
        why = deciding.diagnosis or "its predictions fit no simple pattern (it learned part of the task)"
        message = (f"the LSTM model reached at most {max(a.accuracy or 0.0 for a in attempts):.1%} "
                   f"held-out accuracy in {len(attempts)} tr{'y' if len(attempts) == 1 else 'ies'}; "
                   f"at least {spec.threshold:.0%} is needed. In the last try {why}")
    if rnn is None:
        rnn_text = "vanilla RNN: comparison not run (rubric: compare_rnn = false)"
    elif rnn.accuracy is not None:
        rnn_text = f"vanilla RNN: {rnn.accuracy:.1%} ({_seconds_text(rnn)})"
    else:
        rnn_text = f"vanilla RNN: {rnn.problem}"
    parts = [p for p in (message, f"LSTM tries: {tried}", skipped, rnn_text) if p]
    got = "" if deciding.accuracy is None else f"{deciding.accuracy:.1%}"
    case = CaseResult(function=spec.function, index=1, params=params, shapes=shapes,
                      max_points=spec.points, passed=passed, points=spec.points if passed else 0.0,
                      message="; ".join(parts), expected=f">= {spec.threshold:.0%}", got=got,
                      call_status=_call_status(deciding), error_type=deciding.error_type)
    recall = Recall(deciding.accuracy, None if rnn is None else rnn.accuracy,
                    deciding.seconds if deciding.status == "ok" else None,
                    None if rnn is None else rnn.seconds, spec.threshold, message,
                    tries=len(attempts), rnn_run=rnn is not None,
                    cpu_measured=deciding.cpu_seconds is not None)
    return recall, case
