"""The rubric: a TOML file read into typed, validated, immutable objects.

Every number the grader uses (points, seeds, shapes, tolerances, limits, word rules, naming
policy) comes from here. A malformed rubric raises :class:`~grader.errors.RubricError` naming the
file, the key and what is allowed, before anything is graded.
"""
from __future__ import annotations

import hashlib
import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grader import resources
from grader.errors import RubricError

DEFAULT_RUBRIC = resources.default_rubric()

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
LATE_POLICIES = ("none", "flag", "per_day", "zero")


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
        return self.id in AUTO_IDS


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


class _Reader:
    """Typed access to a TOML table that names the file and the dotted key on every error."""

    def __init__(self, path: str, table: Mapping[str, Any], prefix: str) -> None:
        self.path, self.table, self.prefix = path, table, prefix
        self.used: set[str] = set()

    def _key(self, key: str) -> str:
        return f"{self.prefix}.{key}" if self.prefix else key

    def fail(self, key: str, problem: str) -> RubricError:
        return RubricError(self.path, self._key(key), problem)

    def get(self, key: str, kind: type, default: Any = ..., choices: tuple | None = None,
            positive: bool = False) -> Any:
        self.used.add(key)
        if key not in self.table:
            if default is ...:
                raise self.fail(key, f"missing; expected {_kind_name(kind)}")
            return default
        value: Any = self.table[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.fail(key, f"is {value!r}; expected {_kind_name(kind)}")
        if choices is not None and value not in choices:
            raise self.fail(key, f"is {value!r}; allowed: {', '.join(map(repr, choices))}")
        number: Any = value  # isinstance(value, kind) narrowed it to object; positive is for numbers
        if positive and number <= 0:
            raise self.fail(key, f"is {value!r}; expected a number > 0")
        return value

    def sub(self, key: str) -> _Reader:
        self.used.add(key)
        value = self.table.get(key)
        if not isinstance(value, dict):
            raise self.fail(key, "missing or not a table")
        return _Reader(self.path, value, self._key(key))

    def no_unknown(self) -> None:
        unknown = sorted(set(self.table) - self.used)
        if unknown:
            raise self.fail(unknown[0], f"unknown key; allowed: {', '.join(sorted(self.used))}")


def _kind_name(kind: type) -> str:
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false",
            list: "a list", dict: "a table"}.get(kind, kind.__name__)


def _read_cases(r: _Reader, key: str, function: str) -> tuple[Case, ...]:
    raw_cases = r.get(key, list)
    if not raw_cases:
        raise r.fail(key, "needs at least one case")
    cases = []
    for i, raw in enumerate(raw_cases):
        if not isinstance(raw, dict):
            raise r.fail(f"{key}[{i}]", "expected an inline table { seed = ..., ... }")
        cr = _Reader(r.path, raw, r._key(f"{key}[{i}]"))
        seed = cr.get("seed", int)
        params = {}
        for name, kind in CASE_KEYS[function].items():
            value = cr.get(name, kind, choices=CASE_CHOICES.get(name))
            if kind in (int, float) and value <= 0:
                raise cr.fail(name, f"is {value!r}; expected a number > 0")
            params[name] = value
        cr.no_unknown()
        cases.append(Case(seed, params))
    return tuple(cases)


def _penalty(r: _Reader, key: str, default: float) -> float:
    value = r.get(key, float, default=default)
    if not 0.0 <= value <= 1.0:
        raise r.fail(key, f"is {value!r}; expected a share of the case's points from 0.0 "
                          "(no points lost) to 1.0 (the case fails)")
    return value


def _read_check(r: _Reader, default_penalty: float) -> Check:
    function = r.get("function", str, choices=tuple(CASE_KEYS))
    points = r.get("points", float, positive=True)
    rtol = r.get("rtol", float, positive=True)
    atol = r.get("atol", float, positive=True)
    if "public_seeds" in r.table:
        raise r.fail("public_seeds", "is replaced by `public`: a list of public examples with their "
                                     "own parameters, like `cases`, e.g. public = [{ seed = 11401, "
                                     + ", ".join(f"{k} = ..." for k in CASE_KEYS[function]) + " }]")
    public = _read_cases(r, "public", function)
    cases = _read_cases(r, "cases", function)
    penalty = _penalty(r, "contract_penalty", default_penalty)
    r.no_unknown()
    _check_coverage(r, function, cases, public)
    return Check(function, points, rtol, atol, cases, public, penalty)


def _check_coverage(r: _Reader, function: str, cases: tuple[Case, ...],
                    public: tuple[Case, ...]) -> None:
    """Refuse hidden cases that use a setting no public example shows (issue: a student whose
    function ignores `activation` must be able to see it fail before handing in)."""
    shown: dict[str, set[str]] = {}
    for case in public:
        for key, value in case_settings(function, case.params).items():
            shown.setdefault(key, set()).add(value)
    for i, case in enumerate(cases):
        for key, value in case_settings(function, case.params).items():
            if value not in shown.get(key, set()):
                have = ", ".join(sorted(shown.get(key, set()))) or "none"
                raise r.fail("public", f"has no `{function}` example with {value}, which hidden case cases[{i}] "
                                       f"(seed {case.seed}) uses (key `{key}`); the public examples "
                                       f"show: {have}. Add a public example with {value}")


def _read_question(qid: str, r: _Reader, default_penalty: float = 1.0) -> Question:
    title = r.get("title", str)
    points = r.get("points", float, positive=True)
    kw: dict[str, Any] = {}
    for key in ("max_words", "min_sentences", "max_sentences", "expected_items",
                "max_sentences_per_item", "fallback_max_sentences"):
        kw[key] = r.get(key, int, default=None, positive=True)
    kw["require_citation"] = r.get("require_citation", bool, default=False)
    checks: tuple[Check, ...] = ()
    if qid in AUTO_IDS:
        raw = r.get("checks", list, default=[])
        checks = tuple(_read_check(_Reader(r.path, c, r._key(f"checks[{i}]")), default_penalty)
                       for i, c in enumerate(raw))
    r.no_unknown()
    return Question(qid, title, points, checks, **kw)


def _check_recall(rr: _Reader, recall: Recall) -> None:
    """Relations between the ``[recall]`` keys that no single key's type can express."""
    if recall.n_classes < 2:
        # The grader relabels the classes with a permutation without fixed points.
        raise rr.fail("n_classes", f"is {recall.n_classes}; the recall task needs at least 2 classes")
    if not 0 < recall.threshold <= 1:
        raise rr.fail("threshold", f"is {recall.threshold!r}; expected an accuracy in (0, 1]")
    if recall.wall_time_limit < recall.cpu_time_limit:
        raise rr.fail("wall_time_limit", f"is {recall.wall_time_limit:g} s, under cpu_time_limit = "
                      f"{recall.cpu_time_limit:g} CPU s; the wall clock is the safety net and needs a "
                      "wide margin over the CPU limit")
    if not 1 / recall.n_classes < recall.memory_min_accuracy <= 1:
        raise rr.fail("memory_min_accuracy", f"is {recall.memory_min_accuracy!r}; expected an accuracy "
                      f"above chance (1 / n_classes = {1 / recall.n_classes:.3f}) and at most 1")
    if not 20 <= recall.evidence_n <= recall.heldout_n:
        raise rr.fail("evidence_n", f"is {recall.evidence_n}; expected 20 to heldout_n = {recall.heldout_n}")
    if recall.check_seq_len >= recall.seq_len:
        raise rr.fail("check_seq_len", f"is {recall.check_seq_len}; the interface run must be shorter "
                      f"than seq_len = {recall.seq_len}")


def load_rubric(path: str | Path | None = None) -> Rubric:
    """Read and validate a rubric file.

    Raises
    ------
    RubricError
        Naming the file, the dotted key and what is allowed.
    """
    p = Path(path) if path is not None else DEFAULT_RUBRIC
    name = str(p)
    try:
        raw_bytes = p.read_bytes()
    except OSError as exc:
        raise RubricError(name, "(file)", f"cannot be read ({exc.strerror}); "
                          "pass an existing rubric with --rubric") from None
    try:
        data = tomllib.loads(raw_bytes.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise RubricError(name, "(file)", f"is not valid TOML: {exc}") from None
    top = _Reader(name, data, "")

    meta = top.sub("rubric")
    title = meta.get("title", str)
    max_points = meta.get("max_points", float, positive=True)
    meta.get("sheet", str, default="11")
    contact = " ".join(meta.get("contact", str, default="").split())
    if len(contact) > 300:
        raise meta.fail("contact", "is longer than 300 characters; name a person or an address")
    meta.no_unknown()

    default_penalty, contract_settle = 1.0, 0.5
    if "contract_rules" in data:
        cr = top.sub("contract_rules")
        default_penalty = _penalty(cr, "penalty", 1.0)
        contract_settle = cr.get("settle_seconds", float, default=0.5, positive=True)
        cr.no_unknown()

    qr = top.sub("questions")
    questions: dict[str, Question] = {}
    for qid in QUESTION_IDS:
        questions[qid] = _read_question(qid, qr.sub(qid), default_penalty)
    qr.no_unknown()
    for qid in AUTO_IDS[:-1]:
        if not questions[qid].checks:
            raise RubricError(name, f"questions.{qid}.checks", "needs at least one check")

    rr = top.sub("recall")
    recall = Recall(
        function=rr.get("function", str, choices=("train_recall",)),
        question=rr.get("question", str, choices=AUTO_IDS),
        points=rr.get("points", float, positive=True),
        seq_len=rr.get("seq_len", int, positive=True),
        n_classes=rr.get("n_classes", int, positive=True),
        train_seed=rr.get("train_seed", int),
        heldout_seed=rr.get("heldout_seed", int),
        heldout_n=rr.get("heldout_n", int, positive=True),
        threshold=rr.get("threshold", float, positive=True),
        public_heldout_seed=rr.get("public_heldout_seed", int),
        tries=rr.get("tries", int, positive=True),
        cpu_time_limit=rr.get("cpu_time_limit", float, positive=True),
        wall_time_limit=rr.get("wall_time_limit", float, positive=True),
        compare_rnn=rr.get("compare_rnn", bool),
        check_seq_len=rr.get("check_seq_len", int, positive=True),
        evidence_n=rr.get("evidence_n", int, default=600, positive=True),
        memory_min_accuracy=rr.get("memory_min_accuracy", float, default=0.6, positive=True),
        cpu_budget=rr.get("cpu_budget", float, positive=True),
    )
    rr.no_unknown()
    _check_recall(rr, recall)

    nr = top.sub("naming")
    sizes = nr.get("group_size", list)
    if len(sizes) != 2 or not all(isinstance(s, int) and s > 0 for s in sizes) or sizes[0] > sizes[1]:
        raise nr.fail("group_size", f"is {sizes!r}; expected [min, max], e.g. [2, 3]")
    naming = Naming(
        group_size=(sizes[0], sizes[1]),
        pattern=nr.get("pattern", str, choices=POLICIES),
        group_size_policy=nr.get("group_size_policy", str, choices=POLICIES),
        mismatch=nr.get("mismatch", str, choices=POLICIES),
        email=nr.get("email", str, choices=POLICIES),
        group_missing=nr.get("group_missing", str, choices=POLICIES),
    )
    nr.no_unknown()

    lr = top.sub("limits")
    limits = Limits(
        cell_timeout=lr.get("cell_timeout", float, positive=True),
        notebook_timeout=lr.get("notebook_timeout", float, positive=True),
        call_timeout=lr.get("call_timeout", float, positive=True),
        kernel_start_timeout=lr.get("kernel_start_timeout", float, positive=True),
        memory_mb=lr.get("memory_mb", int, positive=True),
        cpu_seconds=lr.get("cpu_seconds", int, positive=True),
        max_processes=lr.get("max_processes", int, positive=True),
        max_file_mb=lr.get("max_file_mb", int, positive=True),
        max_output_chars=lr.get("max_output_chars", int, positive=True),
        max_notebook_mb=lr.get("max_notebook_mb", float, positive=True),
        submission_timeout=lr.get("submission_timeout", float, default=1800.0, positive=True),
        max_restarts=lr.get("max_restarts", int, default=4, positive=True),
        max_cells=lr.get("max_cells", int, default=1000, positive=True),
        max_outputs_mb=lr.get("max_outputs_mb", float, default=8.0, positive=True),
        max_attachments_mb=lr.get("max_attachments_mb", float, default=4.0, positive=True),
        max_picture_kb=lr.get("max_picture_kb", int, default=512, positive=True),
    )
    lr.no_unknown()
    # Every training call of the recall experiment runs in the one kernel, whose RLIMIT_CPU
    # (limits.cpu_seconds) would kill it first: the calls must fit with room for the notebook.
    # The LSTM's tries stop once they used cpu_budget; the last may have started just under it.
    lstm_cpu = min(recall.cpu_time_limit * recall.tries, recall.cpu_budget + recall.cpu_time_limit)
    recall_cpu = lstm_cpu + (recall.cpu_time_limit if recall.compare_rnn else 0.0)
    if recall_cpu >= limits.cpu_seconds:
        raise rr.fail("cpu_budget", f"with the tries' last call and{' the RNN' if recall.compare_rnn else ''} "
                      f"the trainings may use {recall_cpu:g} CPU s, not under limits.cpu_seconds = "
                      f"{limits.cpu_seconds}; lower cpu_budget, tries or cpu_time_limit, or raise "
                      "limits.cpu_seconds")

    ar = top.sub("archive")
    archive = ArchiveLimits(
        max_entries=ar.get("max_entries", int, positive=True),
        max_total_mb=ar.get("max_total_mb", float, positive=True),
        max_ratio=ar.get("max_ratio", float, positive=True),
        max_depth=ar.get("max_depth", int, positive=True),
        platform_max_entries=ar.get("platform_max_entries", int, positive=True),
        platform_max_total_mb=ar.get("platform_max_total_mb", float, positive=True),
        platform_max_depth=ar.get("platform_max_depth", int, positive=True),
    )
    ar.no_unknown()

    late = Late("flag", 0.0)
    if "late" in data:
        tr = top.sub("late")
        late = Late(tr.get("policy", str, choices=LATE_POLICIES), tr.get("per_day", float, default=0.0))
        tr.no_unknown()
    budget = Budget(2700.0, 4096)
    if "budget" in data:
        br = top.sub("budget")
        budget = Budget(br.get("grader_seconds", float, positive=True),
                        br.get("grader_memory_mb", int, positive=True))
        br.no_unknown()
    learned = _read_learned(top, data, p)
    top.no_unknown()

    total = sum(q.points for q in questions.values())
    if abs(total - max_points) > 1e-9:
        raise RubricError(name, "rubric.max_points",
                          f"is {max_points}, but the questions' points add up to {total}")
    for q in questions.values():
        if q.automatic:
            inner = sum(c.points for c in q.checks) + (recall.points if recall.question == q.id else 0)
            if abs(inner - q.points) > 1e-9:
                raise RubricError(name, f"questions.{q.id}.checks",
                                  f"points add up to {inner}, but the question is worth {q.points}")
    public = {s for c in (c for q in questions.values() for c in q.checks) for s in c.public_seeds}
    public.add(recall.public_heldout_seed)
    hidden = {case.seed for q in questions.values() for c in q.checks for case in c.cases}
    hidden |= {recall.train_seed, recall.heldout_seed}
    clash = sorted(public & hidden)
    if clash:
        where = next((f"questions.{q.id}.checks[{i}].public" for q in questions.values()
                      for i, c in enumerate(q.checks) if clash[0] in c.public_seeds), "recall.public_heldout_seed")
        raise RubricError(name, where, f"seed {clash[0]} is both public and hidden; keep them apart")

    # The rubric's identity covers the learned files it names: their entries change grading.
    digest = hashlib.sha256(raw_bytes)
    for entry_file in sorted(learned.files):
        digest.update(b"\0learned\0" + entry_file.encode() + b"\0" + (Path(name).parent / entry_file).read_bytes())
    return Rubric(path=name, sha256=digest.hexdigest(), title=title,
                  max_points=max_points, questions=questions, recall=recall, naming=naming,
                  limits=limits, archive=archive, late=late, budget=budget,
                  contract_settle=contract_settle, contact=contact, learned=learned)


#: What a learned entry may hold, at most.
MAX_LEARNED_TITLE, MAX_LEARNED_TEXT, MAX_LEARNED_CASES, MAX_LEARNED_FILES = 120, 2000, 200, 20
LEARNED_KINDS = ("public", "hidden")


def case_key(kind: str, seed: int, params: Mapping[str, Any], secret_id: str | None) -> str:
    """The one spelling of a case in an output fingerprint (grader/checks/learned.py):
    ``<kind>/<secret id or ->/<seed>/<params as sorted JSON>``."""
    return f"{kind}/{secret_id or '-'}/{seed}/" + json.dumps(dict(params), sort_keys=True, separators=(",", ":"))


def _read_learned(top: _Reader, data: Mapping[str, Any], rubric_path: Path) -> Learned:
    """``[learned]`` (quantum, files) and every ``[[learned_mistakes]]`` entry, validated."""
    quantum, files = 0.01, []
    if "learned" in data:
        lr = top.sub("learned")
        quantum = lr.get("quantum", float, default=0.01, positive=True)
        if quantum >= 1:
            raise lr.fail("quantum", f"is {quantum!r}; expected a share of the result's scale below 1, e.g. 0.01")
        files = lr.get("files", list, default=[])
        if len(files) > MAX_LEARNED_FILES or not all(isinstance(f, str) and f for f in files):
            raise lr.fail("files", f"is {files!r}; expected at most {MAX_LEARNED_FILES} file names (strings)")
        lr.no_unknown()
    entries: list[LearnedMistake] = []
    if "learned_mistakes" in data:
        top.used.add("learned_mistakes")
        entries += _read_learned_entries(top.path, data["learned_mistakes"], "learned_mistakes", quantum)
    for name in files:
        path = rubric_path.parent / name
        if not path.is_file():
            raise RubricError(top.path, "learned.files", f"names '{name}', which is not a file; give a path "
                              "relative to the rubric")
        entries += read_learned_file(path, quantum)
    seen: set[str] = set()
    for entry in entries:
        if entry.key in seen:
            raise RubricError(top.path, "learned_mistakes", f"the entry {entry.key!r} is given twice; keep one")
        seen.add(entry.key)
    return Learned(quantum, tuple(entries), tuple(files))


def read_learned_file(path: Path, quantum: float) -> list[LearnedMistake]:
    """The ``[[learned_mistakes]]`` of a file ``grade mistakes export`` wrote (or a tutor edited),
    validated; its ``[learned_export] quantum`` must be ``quantum``."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RubricError(str(path), "(file)", f"cannot be read ({exc.strerror})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise RubricError(str(path), "(file)", f"is not valid TOML: {exc}") from None
    fr = _Reader(str(path), raw, "")
    if "learned_export" in raw:  # what `grade mistakes export` writes about itself
        meta = fr.sub("learned_export")
        made = meta.get("quantum", float, positive=True)
        if made != quantum:
            raise meta.fail("quantum", f"is {made!r}, but the rubric's [learned] quantum is {quantum!r}: "
                            "fingerprints made under another quantum never match; export again or set "
                            "the rubric's quantum to the file's")
        meta.get("exported", str, default="")
        meta.get("source", str, default="")
        meta.no_unknown()
    fr.used.add("learned_mistakes")
    entries = _read_learned_entries(str(path), raw.get("learned_mistakes", []), "learned_mistakes", quantum)
    fr.no_unknown()
    return entries


def _read_learned_entries(path: str, raw: Any, key: str, quantum: float) -> list[LearnedMistake]:
    if not isinstance(raw, list):
        raise RubricError(path, key, "expected an array of tables [[learned_mistakes]]")
    out = []
    for i, table in enumerate(raw):
        if not isinstance(table, dict):
            raise RubricError(path, f"{key}[{i}]", "expected a table")
        r = _Reader(path, table, f"{key}[{i}]")
        function = r.get("function", str, choices=tuple(CASE_KEYS))
        entry_key = r.get("key", str)
        if not re.fullmatch(r"[a-z_]{1,40}-[0-9a-f]{8,64}", entry_key):
            raise r.fail("key", f"is {entry_key!r}; expected the group's key as exported, "
                                "e.g. 'rnn_forward-3f2a9c1b0d4e'")
        title = " ".join(r.get("title", str).split())
        if not title or len(title) > MAX_LEARNED_TITLE:
            raise r.fail("title", f"expected 1 to {MAX_LEARNED_TITLE} characters")
        explanation = r.get("explanation", str).strip()
        if not explanation or len(explanation) > MAX_LEARNED_TEXT:
            raise r.fail("explanation", f"expected 1 to {MAX_LEARNED_TEXT} characters")
        members = r.get("members", int, default=0)
        cases = _read_learned_cases(r, function)
        r.no_unknown()
        out.append(LearnedMistake(entry_key, function, title, explanation, cases, members))
    return out


def _read_learned_cases(r: _Reader, function: str) -> dict[str, str]:
    raw = r.get("cases", list)
    if not raw or len(raw) > MAX_LEARNED_CASES:
        raise r.fail("cases", f"expected 1 to {MAX_LEARNED_CASES} cases {{ kind, seed, params, fingerprint }}")
    cases: dict[str, str] = {}
    for j, item in enumerate(raw):
        if not isinstance(item, dict):
            raise r.fail(f"cases[{j}]", "expected an inline table { kind, seed, params, fingerprint }")
        cr = _Reader(r.path, item, r._key(f"cases[{j}]"))
        kind = cr.get("kind", str, choices=LEARNED_KINDS)
        seed = cr.get("seed", int)
        params = cr.get("params", dict)
        wanted = CASE_KEYS[function]
        if set(params) != set(wanted):
            raise cr.fail("params", f"has the keys {sorted(params)}; `{function}` cases have {sorted(wanted)}")
        pr = _Reader(r.path, params, cr._key("params"))
        params = {k: pr.get(k, wanted[k]) for k in params}  # typed as the rubric's cases are (2 -> 2.0)
        secret = cr.get("secret_id", str, default="")
        if (kind == "hidden") != bool(secret) or (secret and not re.fullmatch(r"[0-9a-f]{16}", secret)):
            raise cr.fail("secret_id", "a hidden case names the secret it was drawn under (16 hex digits); "
                                       "a public case names none")
        fp = cr.get("fingerprint", str)
        if not re.fullmatch(r"pass|status:[a-z_]{1,20}|[0-9a-f]{16}", fp):
            raise cr.fail("fingerprint", f"is {fp!r}; expected 'pass', 'status:...' or 16 hex digits")
        cr.no_unknown()
        cases[case_key(kind, seed, params, secret or None)] = fp
    if not any(len(v) == 16 and v != "pass" and not v.startswith("status:") for v in cases.values()):
        raise r.fail("cases", "no case holds a failing output's fingerprint: such an entry would match nothing")
    return cases
