"""One reader per table of a rubric file: each takes the file's top-level table and returns that
table's typed object (:mod:`grader.rubric_model`), and refuses a wrong value with a
:class:`~grader.errors.RubricError` that names the file, the dotted key and what is allowed (what to
fix). Checks that relate two tables (points that add up, seeds kept apart, the recall's CPU within
the kernel's limit) are :func:`grader.rubric.load_rubric`'s, which composes these readers.
"""
from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grader.errors import RubricError
from grader.rubric_model import (
    AUTO_IDS,
    CASE_CHOICES,
    CASE_KEYS,
    LATE_POLICIES,
    LEARNED_KINDS,
    MAX_LEARNED_CASES,
    MAX_LEARNED_FILES,
    MAX_LEARNED_TEXT,
    MAX_LEARNED_TITLE,
    POLICIES,
    QUESTION_IDS,
    ArchiveLimits,
    Budget,
    Case,
    Check,
    Late,
    Learned,
    LearnedMistake,
    Limits,
    Naming,
    Question,
    Recall,
    case_key,
    case_settings,
)


class TableReader:
    """Typed access to a TOML table that names the file and the dotted key on every error."""

    def __init__(self, path: str, table: Mapping[str, Any], prefix: str) -> None:
        self.path, self.table, self.prefix = path, table, prefix
        self.used: set[str] = set()

    def _key(self, key: str) -> str:
        return f"{self.prefix}.{key}" if self.prefix else key

    def fail(self, key: str, problem: str) -> RubricError:
        return RubricError(self.path, self._key(key), problem)

    def get(self, key: str, kind: type, default: Any = ..., choices: tuple[Any, ...] | None = None,
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

    def optional_sub(self, key: str) -> TableReader | None:
        """The reader of an optional table, or None when the file leaves it out."""
        return self.sub(key) if key in self.table else None

    def sub(self, key: str) -> TableReader:
        self.used.add(key)
        value = self.table.get(key)
        if not isinstance(value, dict):
            raise self.fail(key, "missing or not a table")
        return TableReader(self.path, value, self._key(key))

    def no_unknown(self) -> None:
        unknown = sorted(set(self.table) - self.used)
        if unknown:
            raise self.fail(unknown[0], f"unknown key; allowed: {', '.join(sorted(self.used))}")


def _kind_name(kind: type) -> str:
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false",
            list: "a list", dict: "a table"}.get(kind, kind.__name__)


def _read_cases(r: TableReader, key: str, function: str) -> tuple[Case, ...]:
    raw_cases = r.get(key, list)
    if not raw_cases:
        raise r.fail(key, "needs at least one case")
    cases = []
    for i, raw in enumerate(raw_cases):
        if not isinstance(raw, dict):
            raise r.fail(f"{key}[{i}]", "expected an inline table { seed = ..., ... }")
        cr = TableReader(r.path, raw, r._key(f"{key}[{i}]"))
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


def _penalty(r: TableReader, key: str, default: float) -> float:
    value: float = r.get(key, float, default=default)
    if not 0.0 <= value <= 1.0:
        raise r.fail(key, f"is {value!r}; expected a share of the case's points from 0.0 "
                          "(no points lost) to 1.0 (the case fails)")
    return value


def _read_check(r: TableReader, default_penalty: float) -> Check:
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


def _check_coverage(r: TableReader, function: str, cases: tuple[Case, ...],
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


def _read_question(qid: str, r: TableReader, default_penalty: float = 1.0) -> Question:
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
        checks = tuple(_read_check(TableReader(r.path, c, r._key(f"checks[{i}]")), default_penalty)
                       for i, c in enumerate(raw))
    r.no_unknown()
    return Question(qid, title, points, checks, **kw)


def _check_recall(rr: TableReader, recall: Recall) -> None:
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



# ---- the tables, one reader each, in the order load_rubric reads them


@dataclass(frozen=True)
class Meta:
    """``[rubric]``: the title, the total and whom students ask to contest a grade."""

    title: str
    max_points: float
    contact: str


def read_meta(top: TableReader) -> Meta:
    meta = top.sub("rubric")
    title = meta.get("title", str)
    max_points = meta.get("max_points", float, positive=True)
    meta.get("sheet", str, default="11")
    contact = " ".join(meta.get("contact", str, default="").split())
    if len(contact) > 300:
        raise meta.fail("contact", "is longer than 300 characters; name a person or an address")
    meta.no_unknown()
    return Meta(title, max_points, contact)


def read_contract_rules(top: TableReader) -> tuple[float, float]:
    """``[contract_rules]`` (optional): the default contract penalty and the settle time in s."""
    cr = top.optional_sub("contract_rules")
    if cr is None:
        return 1.0, 0.5
    penalty = _penalty(cr, "penalty", 1.0)
    settle: float = cr.get("settle_seconds", float, default=0.5, positive=True)
    cr.no_unknown()
    return penalty, settle


def read_questions(top: TableReader, default_penalty: float) -> dict[str, Question]:
    """``[questions.<id>]`` for every question id, each automatic one but the last with checks."""
    qr = top.sub("questions")
    questions = {qid: _read_question(qid, qr.sub(qid), default_penalty) for qid in QUESTION_IDS}
    qr.no_unknown()
    for qid in AUTO_IDS[:-1]:
        if not questions[qid].checks:
            raise RubricError(top.path, f"questions.{qid}.checks", "needs at least one check")
    return questions


def read_recall(top: TableReader) -> tuple[Recall, TableReader]:
    """``[recall]``, and its reader (load_rubric names its keys when it relates them to limits)."""
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
        false_fail_bound=rr.get("false_fail_bound", float, default=0.0),
    )
    if not 0.0 <= recall.false_fail_bound < 1.0:
        raise rr.fail("false_fail_bound", f"is {recall.false_fail_bound!r}; expected a probability from 0 "
                      "(not stated) up to, not including, 1")
    rr.no_unknown()
    _check_recall(rr, recall)
    return recall, rr


def read_naming(top: TableReader) -> Naming:
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
    return naming


def read_limits(top: TableReader) -> Limits:
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
    return limits


def read_archive(top: TableReader) -> ArchiveLimits:
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
    return archive


def read_late(top: TableReader) -> Late:
    """``[late]`` (optional; without it a late submission is flagged)."""
    tr = top.optional_sub("late")
    if tr is None:
        return Late("flag", 0.0)
    late = Late(tr.get("policy", str, choices=LATE_POLICIES), tr.get("per_day", float, default=0.0))
    tr.no_unknown()
    return late


def read_budget(top: TableReader) -> Budget:
    """``[budget]`` (optional): the grader's own budget per submission."""
    br = top.optional_sub("budget")
    if br is None:
        return Budget(2700.0, 4096)
    budget = Budget(br.get("grader_seconds", float, positive=True),
                    br.get("grader_memory_mb", int, positive=True))
    br.no_unknown()
    return budget


def read_learned(top: TableReader, rubric_path: Path) -> Learned:
    """``[learned]`` (quantum, files) and every ``[[learned_mistakes]]`` entry, validated."""
    quantum, files = 0.01, []
    lr = top.optional_sub("learned")
    if lr is not None:
        quantum = lr.get("quantum", float, default=0.01, positive=True)
        if quantum >= 1:
            raise lr.fail("quantum", f"is {quantum!r}; expected a share of the result's scale below 1, e.g. 0.01")
        files = lr.get("files", list, default=[])
        if len(files) > MAX_LEARNED_FILES or not all(isinstance(f, str) and f for f in files):
            raise lr.fail("files", f"is {files!r}; expected at most {MAX_LEARNED_FILES} file names (strings)")
        lr.no_unknown()
    entries: list[LearnedMistake] = []
    if "learned_mistakes" in top.table:
        top.used.add("learned_mistakes")
        entries += _read_learned_entries(top.path, top.table["learned_mistakes"], "learned_mistakes", quantum)
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
    fr = TableReader(str(path), raw, "")
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
        r = TableReader(path, table, f"{key}[{i}]")
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


def _read_learned_cases(r: TableReader, function: str) -> dict[str, str]:
    raw = r.get("cases", list)
    if not raw or len(raw) > MAX_LEARNED_CASES:
        raise r.fail("cases", f"expected 1 to {MAX_LEARNED_CASES} cases {{ kind, seed, params, fingerprint }}")
    cases: dict[str, str] = {}
    for j, item in enumerate(raw):
        if not isinstance(item, dict):
            raise r.fail(f"cases[{j}]", "expected an inline table { kind, seed, params, fingerprint }")
        cr = TableReader(r.path, item, r._key(f"cases[{j}]"))
        kind = cr.get("kind", str, choices=LEARNED_KINDS)
        seed = cr.get("seed", int)
        params = cr.get("params", dict)
        wanted = CASE_KEYS[function]
        if set(params) != set(wanted):
            raise cr.fail("params", f"has the keys {sorted(params)}; `{function}` cases have {sorted(wanted)}")
        pr = TableReader(r.path, params, cr._key("params"))
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
