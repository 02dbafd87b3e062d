"""The rubric's typed objects: the question ids, the case parameters each function takes, and the
immutable dataclasses a rubric file is read into (:func:`grader.rubric.load_rubric` reads them;
:mod:`grader.rubric_tables` holds one reader per table). Import them from :mod:`grader.rubric`, the
front door of the rubric.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: The written questions (a markdown answer cell each, scored by a tutor) and the automatic ones.
WRITTEN_IDS = ("11.1.1", "11.1.2", "11.2.1", "11.2.2", "11.3.1", "11.3.2", "11.3.3",
               "11.3.4a", "11.3.4b")
AUTO_IDS = ("11.4.a", "11.4.b", "11.4.c", "11.4.d")
QUESTION_IDS = WRITTEN_IDS + AUTO_IDS

#: The case parameters each function's hidden cases must give (besides ``seed``).
CASE_KEYS: dict[str, dict[str, type]] = {
    "rnn_forward": {"T": int, "B": int, "D": int, "H": int, "activation": str},
    "activation_jacobian": {"H": int, "activation": str},
    "hidden_grad_norms": {"T": int, "D": int, "H": int, "activation": str,
                          "spectral_norm": float, "loss": str},
    "gradient_bound": {"T": int, "D": int, "H": int, "activation": str,
                       "spectral_norm": float, "loss": str},
    "lstm_cell": {"B": int, "D": int, "H": int},
    "tree_encode": {"d": int, "leaves": int, "shape": str},
    "tbptt_grads": {"T": int, "B": int, "D": int, "H": int, "C": int, "k": int},
}
CASE_CHOICES: dict[str, tuple[str, ...]] = {
    "activation": ("tanh", "sigmoid"),
    "loss": ("linear", "squared"),
    "shape": ("balanced", "random", "left_chain"),
}
POLICIES = ("flag", "reject")
LATE_POLICIES = ("none", "flag", "per_day", "zero")


def case_settings(function: str, params: Mapping[str, Any]) -> dict[str, str]:
    """The settings a case exercises that a public example must show before a hidden case uses
    them: every choice (activation, loss, tree shape) and the edge regimes of the sizes.

    Returns ``{key: setting}``, the setting as a reader of the rubric would write it
    (``activation = "sigmoid"``, ``k >= T``).
    """
    out = {key: f'{key} = "{params[key]}"' for key in CASE_CHOICES if key in params}
    for key in ("T", "B"):
        if key in params:
            out[key] = f"{key} = 1" if params[key] == 1 else f"{key} > 1"
    if "k" in params:
        k, T = params["k"], params["T"]
        out["k"] = "k >= T" if k >= T else ("k = 1" if k == 1 else "1 < k < T")
    if "spectral_norm" in params:
        sn = params["spectral_norm"]
        out["spectral_norm"] = "spectral_norm < 1" if sn < 1 else (
            "spectral_norm = 1" if sn == 1 else "spectral_norm > 1")
    if "leaves" in params and params["leaves"] == 1:
        out["leaves"] = "leaves = 1"
    return out


@dataclass(frozen=True)
class Case:
    """One hidden (or public) input of a function check: a seed and the shape parameters.

    A hidden case's seed only names it: its numbers are drawn under the course secret
    (:func:`grader.checks.cases.case_rng`). A public case's seed draws its numbers directly.
    """

    seed: int
    params: Mapping[str, Any]

    def describe(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.params.items())


@dataclass(frozen=True)
class Check:
    function: str
    points: float
    rtol: float
    atol: float
    cases: tuple[Case, ...]
    public: tuple[Case, ...]
    #: Share of a case's points lost when the call breaks a contract rule (changed its inputs,
    #: or a second call with the same inputs returned something else); 1.0: the case fails.
    contract_penalty: float = 1.0

    @property
    def public_seeds(self) -> tuple[int, ...]:
        return tuple(c.seed for c in self.public)

    def public_cases(self) -> tuple[Case, ...]:
        """The examples students may see, with their own parameters (``public`` in the rubric)."""
        return self.public


@dataclass(frozen=True)
class Question:
    id: str
    title: str
    points: float
    checks: tuple[Check, ...] = ()
    max_words: int | None = None
    require_citation: bool = False
    min_sentences: int | None = None
    max_sentences: int | None = None
    expected_items: int | None = None
    max_sentences_per_item: int | None = None
    fallback_max_sentences: int | None = None

    @property
    def automatic(self) -> bool:
        """Scored by the grader's checks (11.4.*)."""
        return self.id in AUTO_IDS

    @property
    def written(self) -> bool:
        """A written question: its answer is a markdown cell a tutor scores (contract §1, §5)."""
        return self.id in WRITTEN_IDS


@dataclass(frozen=True)
class Recall:
    function: str
    question: str
    points: float
    seq_len: int
    n_classes: int
    train_seed: int
    heldout_seed: int
    heldout_n: int
    threshold: float
    public_heldout_seed: int
    tries: int              # LSTM trainings at most, seeds train_seed, train_seed + 1, ...
    cpu_time_limit: float   # CPU s of the kernel per train_recall call (the limit that counts)
    wall_time_limit: float  # s of wall clock per call: the safety net that stops a call
    compare_rnn: bool       # also train the vanilla RNN once, shown beside the LSTM
    check_seq_len: int      # the short interface run of the self-check and `grade check`
    #: The memory evidence (grader/checks/recall.py, judge_memory): held-out sequences it runs on, and
    #: the probe accuracy the learned recurrent state must reach.
    evidence_n: int = 600
    memory_min_accuracy: float = 0.6
    #: CPU s of the kernel for the LSTM's tries together: a new try starts while the tries so far
    #: used less (and fewer than ``tries`` ran), so a fast but fragile trainer gets more tries.
    cpu_budget: float = 0.0
    #: The largest probability, at the 95 % upper bound of its per-try failure rate, that a
    #: calibrated correct implementation fails all its tries (docs/recall.md): stated to students,
    #: recomputed from the calibration logs by tests/test_recall.py. 0: not stated.
    false_fail_bound: float = 0.0


@dataclass(frozen=True)
class Naming:
    group_size: tuple[int, int]
    pattern: str
    group_size_policy: str
    mismatch: str
    email: str
    group_missing: str

    def policy(self, code: str) -> str:
        """The policy (``flag`` or ``reject``) for a naming/group flag code."""
        return {
            "naming.pattern": self.pattern,
            "naming.group_size": self.group_size_policy,
            "naming.mismatch": self.mismatch,
            "group.email": self.email,
            "group.missing": self.group_missing,
        }.get(code, "flag")


@dataclass(frozen=True)
class Limits:
    cell_timeout: float
    notebook_timeout: float
    call_timeout: float
    kernel_start_timeout: float
    memory_mb: int
    cpu_seconds: int
    max_processes: int
    max_file_mb: int
    max_output_chars: int
    max_notebook_mb: float
    # Added for hostile input (issue 10); defaults keep older rubric files loadable.
    submission_timeout: float = 1800.0   # s for all of one submission's kernel work, restarts included
    max_restarts: int = 4                # kernel restarts per submission
    max_cells: int = 1000                # a notebook with more cells is refused
    max_outputs_mb: float = 8.0          # stored outputs of the whole notebook
    max_attachments_mb: float = 4.0      # image attachments of the whole notebook
    max_picture_kb: int = 512            # pictures (base64) one cell may show, besides its text

    @property
    def max_picture_chars(self) -> int:
        """``max_picture_kb`` in base64 characters, as the output caps count."""
        return self.max_picture_kb * 1024


@dataclass(frozen=True)
class ArchiveLimits:
    max_entries: int
    max_total_mb: float
    max_ratio: float
    max_depth: int
    # A platform's download of every submission (grader/submission/platform.py): entries, size, depth.
    platform_max_entries: int = 20000
    platform_max_total_mb: float = 8000.0
    platform_max_depth: int = 6


@dataclass(frozen=True)
class Budget:
    """The grader's own budget per submission (grader/batch/run.py): wall time for all of it
    (kernel runs and restarts included) and address space beyond what the grader had loaded."""

    seconds: float
    memory_mb: int


@dataclass(frozen=True)
class Late:
    policy: str
    per_day: float


@dataclass(frozen=True)
class LearnedMistake:
    """A mistake a tutor named in an earlier batch (grader/checks/learned.py), exported as a catalogue
    entry: the function, the tutor's title and explanation for students, and the output
    fingerprint of the group on each case it was observed on (``case key -> fingerprint``, see
    :func:`grader.checks.learned.case_key`). Matched on a new submission by :func:`grader.checks.learned.matches`."""

    key: str
    function: str
    title: str
    explanation: str
    cases: Mapping[str, str]
    members: int = 0


@dataclass(frozen=True)
class Learned:
    """``[learned]``: the quantum of the output fingerprints (a share of the largest |value| of
    the reference's result on the case) and the entries of ``[[learned_mistakes]]`` (in the rubric
    and in the files ``[learned] files`` names, relative to the rubric)."""

    quantum: float = 0.01
    mistakes: tuple[LearnedMistake, ...] = ()
    files: tuple[str, ...] = ()  # as ``[learned] files`` names them; their bytes are in Rubric.sha256


@dataclass(frozen=True)
class Rubric:
    path: str
    sha256: str
    title: str
    max_points: float
    questions: Mapping[str, Question]
    recall: Recall
    naming: Naming
    limits: Limits
    archive: ArchiveLimits
    late: Late = field(default_factory=lambda: Late("flag", 0.0))
    budget: Budget = field(default_factory=lambda: Budget(2700.0, 4096))
    #: [contract_rules] settle_seconds: how long after a function's last call its inputs are looked
    #: at again (grader/checks/contract.py), so a thread that changes them later is seen.
    contract_settle: float = 0.5
    # Whom a student asks to contest a grade ([rubric] contact): the report's next step names it.
    contact: str = ""
    #: [learned] and [[learned_mistakes]]: mistakes named by tutors in earlier batches (grader/checks/learned.py).
    learned: Learned = field(default_factory=Learned)

    def checks(self) -> tuple[Check, ...]:
        return tuple(c for q in self.questions.values() for c in q.checks)

    def question_of(self, function: str) -> str:
        for q in self.questions.values():
            if any(c.function == function for c in q.checks):
                return q.id
        if function == self.recall.function:
            return self.recall.question
        raise KeyError(function)

    def hidden_seeds(self) -> set[int]:
        """The seeds that name hidden cases (their numbers come from the course secret)."""
        seeds = {case.seed for check in self.checks() for case in check.cases}
        return seeds | {self.recall.train_seed, self.recall.heldout_seed}


#: What a learned entry may hold, at most: the grader's own safety limit, not course policy: a
#: constant, not a rubric entry, so no rubric can loosen it.
MAX_LEARNED_TITLE, MAX_LEARNED_TEXT, MAX_LEARNED_CASES, MAX_LEARNED_FILES = 120, 2000, 200, 20
LEARNED_KINDS = ("public", "hidden")


def case_key(kind: str, seed: int, params: Mapping[str, Any], secret_id: str | None) -> str:
    """The one spelling of a case in an output fingerprint (grader/checks/learned.py):
    ``<kind>/<secret id or ->/<seed>/<params as sorted JSON>``."""
    return f"{kind}/{secret_id or '-'}/{seed}/" + json.dumps(dict(params), sort_keys=True, separators=(",", ":"))

