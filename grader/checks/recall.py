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

This module runs the experiment and is the front door of the concept: the decision rule lives in
grader/checks/recall_rule.py, the memory evidence in grader/checks/recall_memory.py, the kernel's CPU
time in grader/kernel/cputime.py, and every public name of theirs is importable from here.
"""
from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from grader.checks.recall_memory import Memory, judge_memory, probe_accuracy
from grader.checks.recall_rule import (
    Attempt,
    cpu_budget_spent,
    decide,
    failure_upper_bound,
    should_retry,
    train_seeds,
    tries_needed,
    tries_within,
    wall_budget_spent,
)
from grader.checks.recall_side import SecondKernel
from grader.checks.secret import derive
from grader.kernel.cputime import kernel_cpu_seconds, process_tree_cpu_seconds
from grader.resources import kernel_module

if TYPE_CHECKING:  # pragma: no cover - imports for the type checker only
    from grader.checks.bridge import Bridge
    from grader.kernel.execute import KernelSession
    from grader.kernel.spare import SpareSlots
    from grader.result import CaseResult, Recall
    from grader.rubric import Recall as RecallSpec
    from grader.rubric import Rubric

__all__ = [
    "Attempt",
    "KERNEL_TRAIN_CODE",
    "Memory",
    "PUBLIC_KEY",
    "cpu_budget_spent",
    "decide",
    "how_sure",
    "draw_permutation",
    "failure_upper_bound",
    "heldout",
    "judge_memory",
    "kernel_cpu_seconds",
    "permutation_key",
    "probe_accuracy",
    "process_tree_cpu_seconds",
    "run_recall",
    "second_kernel",
    "should_retry",
    "train_seeds",
    "tries_needed",
    "tries_within",
    "wall_budget_spent",
]


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


def how_sure(spec: RecallSpec, attempts: Sequence[Attempt]) -> str:
    """Why missing the threshold in these tries is not bad luck, in numbers from the rubric and
    this submission's tries: a correct trainer that succeeds on half of its seeds fails as many
    tries with probability 0.5^n, and the calibrated ones at most ``false_fail_bound``."""
    n = len(attempts)
    per_try = sum(a.seconds for a in attempts) / n if n else 0.0
    calibrated = (f"; each correct implementation this rule was calibrated on fails it with probability at most "
                  f"{spec.false_fail_bound:.1e}") if spec.false_fail_bound else ""
    return (f"How sure this is: tries go on while together they used less than {spec.cpu_budget:g} CPU s, so "
            f"a trainer as fast as yours (about {per_try:.0f} CPU s per try) gets {n}; a correct one that "
            f"reaches {spec.threshold:.0%} on half of its seeds fails {n} tries with probability "
            f"{0.5 ** n:.1e}{calibrated}")


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


def _heldout_full(rubric: Rubric, public: bool, perm: list[int]) -> tuple[torch.Tensor, np.ndarray]:
    """The held-out data of the full experiment: the public seed for `grade check --full`, else the hidden one."""
    spec = rubric.recall
    return heldout(spec.heldout_n, spec.seq_len, spec.n_classes,
                   spec.public_heldout_seed if public else spec.heldout_seed, perm)


def second_kernel(rubric: Rubric, key: bytes, public: bool, slots: SpareSlots,
                  open_session: Callable[[], KernelSession], nb: Any, budget_end: float) -> SecondKernel:
    """The RNN comparison of one submission, ready to run in a second kernel when a spare slot
    comes (grader/checks/recall_side.py); :func:`run_recall` takes it as ``side``.

    ``key`` is the submission's relabelling key (the same as :func:`run_recall`'s, so both kernels
    train and are scored on the same labels); ``open_session`` opens a kernel as the first one
    was opened; ``nb`` is a copy of the notebook, run there the same way; ``budget_end`` is the
    first kernel's, so the submission's time budget covers both."""
    spec = rubric.recall

    def run() -> Attempt | str:
        from grader.checks.bridge import Bridge
        perm = draw_permutation(spec.n_classes, key)
        x, y = _heldout_full(rubric, public, perm)
        with open_session() as session:
            session.budget_end = budget_end
            ran = session.run_notebook(nb)
            if not ran.started:
                return "; ".join(f.message for f in ran.flags) or "it did not start"
            bridge = Bridge(session)
            got = bridge.call("float(callable(globals().get(__args['name'])))", {"name": spec.function},
                              rubric.limits.call_timeout)
            if got.status != "ok" or got.value != 1.0:
                return f"`{spec.function}` was not defined there after the notebook ran ({got.status})"
            pid = session.kernel_pid()
            attempt = _attempt(bridge, rubric, "rnn", spec.train_seed, perm, x, y)
            if attempt.status == "died":
                return "it died during the RNN's training"
            return replace(attempt, kernel_pid=pid)

    return SecondKernel(slots, run)


def run_recall(bridge: Bridge, rubric: Rubric, defined: bool, public: bool = False,
               why: str = "", full: bool = True, key: bytes | None = None,
               side: SecondKernel | None = None) -> tuple[Recall, CaseResult]:
    """The recall experiment for one submission: the ``Recall`` summary and the graded case.

    ``public`` uses the public held-out seed (``grade check --full``); grading uses the hidden one.
    ``full=False`` (`grade check` without ``--full``) trains once at ``check_seq_len`` and checks
    the interface only. ``key``: the relabelling's key (:func:`permutation_key`); None draws it
    at random. ``side`` (:func:`second_kernel`, made with the same ``key``): the RNN comparison
    in a second kernel where a spare slot came first; the caller closes it.
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
    x, y = _heldout_full(rubric, public, perm)
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
    rnn = None
    if spec.compare_rnn:  # in a second kernel where a spare slot came first (grader/checks/recall_side.py)
        def here() -> Attempt:
            return _attempt(bridge, rubric, "rnn", spec.train_seed, perm, x, y)
        rnn = side.result(here) if side is not None else here()

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
                   f"at least {spec.threshold:.0%} is needed. In the last try {why}. {how_sure(spec, attempts)}")
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
