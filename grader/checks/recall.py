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
- **Several tries.** A correct implementation still fails now and then on one seed (its
  optimisation stalls on the plateau). The LSTM is trained with the seeds ``train_seed``,
  ``train_seed + 1``, ... up to the rubric's ``tries``, and the first run that reaches the
  threshold within the time limit counts. The rule was chosen from the calibration
  (``python -m reference.calibrate``): :func:`tries_needed`.
- **Time the student is responsible for.** The limit is on the CPU time of the kernel (all its
  processes) during the call, read from outside the kernel: its cgroup's CPU accounting where the
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
    safety net stopped it), ``died`` (the kernel crashed) or ``bad-model`` (the model could not be
    called or returned the wrong shape). ``cpu_seconds`` is ``None`` where the kernel's CPU time
    could not be read; the wall clock then stands in (and the report says so).
    """

    cell: str
    seed: int
    status: str
    accuracy: float | None = None
    cpu_seconds: float | None = None
    wall_seconds: float = 0.0
    problem: str = ""
    error_type: str = ""  # with "raised": the exception's class name (feedback only)

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


# Runs in the kernel (defined again before every call, so a student cannot have replaced it). It
# puts a relabelling make_recall_data in the notebook's globals for the duration of the call and
# the student's own object back afterwards, whatever train_recall does.
KERNEL_TRAIN_CODE = r'''
def _sheet11_recall_train(args):
    import torch as _torch
    g = globals()
    perm = args["perm"].long()
    n_perm = int(perm.numel())

    def make_recall_data(n, seq_len, n_classes, seed):
        """The template's make_recall_data; during grading the classes are relabelled."""
        if int(n_classes) != n_perm:
            raise ValueError("during grading make_recall_data serves n_classes=%d only, got %r"
                             % (n_perm, n_classes))
        gen = _torch.Generator().manual_seed(seed)
        tokens = _torch.randint(0, n_classes, (seq_len, n), generator=gen)
        x = _torch.nn.functional.one_hot(tokens, n_classes).float()
        return x, perm[tokens[0]]

    missing = object()
    saved = g.get("make_recall_data", missing)
    g["make_recall_data"] = make_recall_data
    try:
        model = g[args["function"]](args["cell"], int(args["seq_len"]), int(args["n_classes"]),
                                    int(args["seed"]))
    finally:
        if saved is missing:
            g.pop("make_recall_data", None)
        else:
            g["make_recall_data"] = saved
    g["_sheet11_model_" + args["cell"]] = model
    return 0.0
'''

_TRAIN_EXPR = "exec(__args['src'], globals()) or _sheet11_recall_train(__args)"


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
    return "ok" if attempt.status == "bad-model" else attempt.status


def _train(bridge: Bridge, spec_function: str, cell: str, seq_len: int, n_classes: int, seed: int,
           perm: list[int], wall_limit: float) -> tuple[str, str, str, float | None, float]:
    """One training call: (status, error, its class name, kernel CPU seconds, wall seconds)."""
    before = kernel_cpu_seconds(bridge.session)
    got = bridge.call(_TRAIN_EXPR, {"src": KERNEL_TRAIN_CODE, "function": spec_function, "cell": cell,
                                    "seq_len": seq_len, "n_classes": n_classes, "seed": seed,
                                    "perm": torch.tensor(perm, dtype=torch.int64)}, wall_limit)
    after = kernel_cpu_seconds(bridge.session) if got.status not in ("died", "timeout") else None
    cpu = after - before if before is not None and after is not None and after >= before else None
    return got.status, got.error, got.error_type, cpu, got.seconds


def _attempt(bridge: Bridge, rubric: Rubric, cell: str, seed: int, perm: list[int],
             x: torch.Tensor, y: np.ndarray) -> Attempt:
    """Train ``cell`` with ``seed`` at the length of ``x`` and score it on (x, y) in the grader."""
    from grader.checks.bridge import ArrayInfo
    spec = rubric.recall
    status, error, error_type, cpu, wall = _train(bridge, spec.function, cell, int(x.shape[0]), spec.n_classes, seed,
                                      perm, spec.wall_time_limit)
    if status != "ok":
        problem = {"timeout": f"training was stopped after {spec.wall_time_limit:g} s (wall clock)",
                   "died": "the kernel crashed during training",
                   "raised": f"`{spec.function}('{cell}', ...)` raised {error}"}.get(
            status, error or f"the training call ended with status {status}")
        return Attempt(cell, seed, "raised" if status == "garbled" else status, None, cpu, wall, problem,
                       error_type if status == "raised" else "")
    scored = bridge.call(f"__logits(globals()['_sheet11_model_{cell}'], __args['x'])", {"x": x},
                         rubric.limits.call_timeout)
    value = scored.value
    if scored.status != "ok":
        return Attempt(cell, seed, "bad-model", None, cpu, wall,
                       f"calling the trained model failed: {scored.error or scored.status}")
    if not isinstance(value, ArrayInfo) or value.array.shape != (spec.heldout_n, spec.n_classes):
        shape = tuple(value.array.shape) if isinstance(value, ArrayInfo) else type(value).__name__
        return Attempt(cell, seed, "bad-model", None, cpu, wall,
                       f"the model returned {shape} for x of shape {tuple(x.shape)}; expected logits "
                       f"of shape ({spec.heldout_n}, {spec.n_classes})")
    logits = value.array
    # NaN logits are no prediction: argmax would pick the first NaN, a class by accident.
    valid = np.isfinite(logits).all(axis=1)
    accuracy = float(np.mean(valid & (np.argmax(np.nan_to_num(logits, nan=-np.inf), axis=1) == y)))
    return Attempt(cell, seed, "ok", accuracy, cpu, wall)


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
        if wall_budget_spent(attempts, spec.wall_time_limit):
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
        message = (f"the LSTM model reached at most {max(a.accuracy or 0.0 for a in attempts):.1%} "
                   f"held-out accuracy in {len(attempts)} tr{'y' if len(attempts) == 1 else 'ies'}; "
                   f"at least {spec.threshold:.0%} is needed. The grader relabels the classes, so the "
                   "model must learn them from make_recall_data")
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
