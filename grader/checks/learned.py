"""Mistakes learned from the batch: failing submissions grouped by what their code returned, a
tutor's name for a group, and that name carried to the students' reports and to the next term.

**Output fingerprint.** A case of a function, as one submission met it, has a fingerprint
computed in the grader's process from what the Bridge returned (:func:`fingerprint`): ``pass``
where the case passed; ``status:<s>`` where no value came back to compare (``timeout``,
``died``, ``garbled``, ``missing``, ``not_called``); else the first 16 hex digits of the
SHA-256 of the returned structure with every number rounded to a grid: the value divided by
``q = quantum * s`` and rounded to the nearest integer, where ``s`` is the largest |value| of the
reference's result on that case (1 where that is 0) and ``quantum`` is the rubric's
``[learned] quantum`` (0.01: the grid is 1 % of the result's scale). Shapes and the structure
(tuple, dict keys, a type name) are part of it, the dtype and tensor-versus-array are not; a
raised exception is its class name. Two submissions whose outputs differ by less than the grid
get the same fingerprint except where a value lies within their difference of a grid boundary
(float32 rounding, about 1e-6 of the scale, splits a group of a 100-value result with a
probability of about 100 * 2e-6 / 0.01 = 2 %); two that differ by more than the grid anywhere
always differ.

**Case key.** ``<kind>/<secret id or ->/<seed>/<params as sorted JSON>`` (:func:`case_key`):
``hidden`` cases carry the id of the course secret they were drawn under
(:func:`grader.checks.secret.secret_id`), ``public`` examples none. Grading fingerprints every
hidden case of a function and, where the function failed a case and its calls neither crashed
nor hung, calls it once more on each of the check's public examples (:func:`observe_public`:
feedback only, never points, at most one call timeout each, stopped by a crash or a timeout);
``grade check`` fingerprints the public examples it runs. They are kept in ``result.json``
(``fingerprints``: function -> case key -> fingerprint).

**Group.** A submission's failing function belongs to the group :func:`group_key` names: the
function, every (case key, fingerprint) it has, and the outcome of each probe
(grader/checks/probes.py); :func:`batch_groups` gathers a batch's groups, largest first, each
with its members and a representative failing case (its first member's first failing case).

**Naming.** A tutor names a group (a short title and an explanation for students) in ``grade
serve`` (``/mistakes``); the names are rows of the gradebook's chained ``learned_names`` table,
the latest row of a key being its name (an empty title takes the name back).
:func:`apply_names` puts the explanation beside the failing checks of every member, on every
render of a report and on every re-grade (grader/folder/outdir.py).

**Next term.** ``grade mistakes export`` writes the named groups as ``[[learned_mistakes]]``
entries (:func:`export_toml`): the key, function, title, explanation, member count and the
group's cases with their fingerprints. A rubric loads them (inline, or from files named by
``[learned] files``; grader/rubric.py validates them). **A learned entry matches** a submission's
failing function (:func:`matches`) when, over the cases both have a fingerprint of (the same
kind, secret id, seed and parameters) and neither marked ``status:``, every fingerprint is equal
and at least one of them is a failing output's. Hidden cases drawn under another secret are
never common, so in a new term the public examples decide; an entry whose public examples the
new rubric no longer has matches nothing. A matched entry's explanation stands beside the failing
checks (source ``catalogue``), in grading and in ``grade check``.

**The students' self-check.** The release bundle (grader/students/release.py) carries, for each
entry, only what is public (:func:`public_part`): the title, the explanation and the fingerprints
on the rubric's public examples (by example number), and the rubric's ``quantum``; never a hidden
case, its secret id, the entry's key (a hash over hidden outputs too) or the member count. An entry
with no failing output on a public example could never match there and is left out.
``sheet11_check.py`` computes the same fingerprint of the student's output on each public example
(the kernel's conversion of the returned value, then this grid and hash) and applies
:func:`matches` to those cases. In a new term (another secret) grading decides on the same public
examples, so the two agree; in the term whose secret drew the entry's hidden cases, grading compares
those too and can differ from the self-check.
"""
from __future__ import annotations

import hashlib
import json
import math
import time
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from grader.checks.bridge import ArrayInfo, Returned, TypeInfo
from grader.result import CaseResult, SubmissionResult
from grader.rubric import Check, LearnedMistake, case_key

#: A case whose value was not compared: no fingerprint of an output, skipped when matching.
NO_VALUE = ("timeout", "died", "garbled", "missing", "not_called")
PASS = "pass"
#: What a name and an explanation may hold (as the rubric's entries: grader/rubric.py).
MAX_TITLE, MAX_EXPLANATION = 120, 2000


def is_output(fp: str) -> bool:
    """A failing output's fingerprint (not ``pass``, not a ``status:`` marker)."""
    return fp != PASS and not fp.startswith("status:")


def _scale(expected: Any) -> float:
    if isinstance(expected, np.ndarray):
        finite = np.abs(expected[np.isfinite(expected)]) if expected.size else np.zeros(0)
        return float(finite.max()) if finite.size else 0.0
    if isinstance(expected, tuple):
        return max((_scale(e) for e in expected), default=0.0)
    if isinstance(expected, dict):
        return max((_scale(e) for e in expected.values()), default=0.0)
    if isinstance(expected, (int, float)):
        return abs(float(expected)) if math.isfinite(float(expected)) else 0.0
    return 0.0


def _canonical(value: Any, q: float) -> Any:
    if isinstance(value, ArrayInfo):
        grid = np.rint(np.asarray(value.array, dtype=np.float64) / q)
        return ["a", list(grid.shape), grid.ravel().tolist()]
    if isinstance(value, np.ndarray):
        grid = np.rint(value.astype(np.float64) / q)
        return ["a", list(grid.shape), grid.ravel().tolist()]
    if isinstance(value, TypeInfo):
        return ["t", value.kind]
    if isinstance(value, bool):
        return ["b", value]
    if isinstance(value, (int, float)):
        return ["n", float(np.rint(float(value) / q)) if math.isfinite(float(value)) else repr(float(value))]
    if isinstance(value, tuple | list):
        return ["l", [_canonical(v, q) for v in value]]
    if isinstance(value, dict):
        return ["d", [[str(k), _canonical(value[k], q)] for k in sorted(value, key=str)]]
    return ["o", type(value).__name__]


def fingerprint(returned: Returned, expected: Any, quantum: float, passed: bool) -> str:
    """The fingerprint of one call on one case (see the module docstring)."""
    if passed:
        return PASS
    if returned.status == "raised":
        canon: Any = ["raised", returned.error_type or "an exception"]
    elif returned.status != "ok":
        return f"status:{returned.status if returned.status in NO_VALUE else 'garbled'}"
    else:
        scale = _scale(expected)
        canon = _canonical(returned.value, quantum * (scale if scale > 0 else 1.0))
    text = json.dumps(canon, separators=(",", ":"), allow_nan=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def case_fingerprint(result: CaseResult, returned: Returned, expected: Any, quantum: float) -> str:
    """:func:`fingerprint` of a compared case; a case that was never called gets its status."""
    if result.call_status in ("missing", "not_called"):
        return f"status:{result.call_status}"
    return fingerprint(returned, expected, quantum, result.passed)


def observe_public(check: Check, results: Sequence[CaseResult], bridge: Any, timeout: float,
                   quantum: float) -> dict[str, str]:
    """The fingerprints of ``check``'s function on its public examples, when it failed a hidden
    case with a value or an exception and no call crashed or hung (``{}`` otherwise). Feedback
    only: these calls never change a point. Bounded: one call per public example, each within
    ``timeout``; a call that crashes or hangs ends the observation."""
    import reference
    from grader.checks import cases as case_inputs
    from grader.checks.compare import same, to_numpy
    if all(r.passed for r in results) or any(r.call_status in ("died", "timeout", "missing", "not_called")
                                             for r in results):
        return {}
    out: dict[str, str] = {}
    for case in check.public_cases():
        inputs = case_inputs.make_inputs(check.function, case.seed, case.params, None)
        expected = to_numpy(getattr(reference, check.function)(**inputs))
        returned = bridge.call(f"{check.function}(**__args)", inputs, timeout)
        passed = returned.status == "ok" and same(expected, returned.value, check.rtol, check.atol)
        out[case_key("public", case.seed, case.params, None)] = fingerprint(returned, expected, quantum, passed)
        if returned.status in ("died", "timeout"):
            break
    return out


# -- groups of a batch ----------------------------------------------------------------------------
def failing_cases(result: SubmissionResult) -> dict[str, list[CaseResult]]:
    """``function -> its failed cases`` of a graded result (the recall experiment aside)."""
    out: dict[str, list[CaseResult]] = {}
    if result.status != "graded":
        return out
    for q in result.questions.values():
        for c in q.cases:
            if not c.passed and c.function in result.fingerprints:
                out.setdefault(c.function, []).append(c)
    return out


def group_key(result: SubmissionResult, function: str) -> str:
    """The key of the group of ``function`` in ``result``: ``<function>-<12 hex digits>``."""
    cases = sorted(result.fingerprints.get(function, {}).items())
    probes: list[tuple[str, str]] = []
    for c in failing_cases(result).get(function, []):
        if c.probes:
            probes = sorted((str(p.get("probe", p.get("setting", ""))), str(p.get("outcome", ""))) for p in c.probes)
            break
    text = json.dumps([function, cases, probes], separators=(",", ":"))
    return f"{function}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


@dataclass(frozen=True)
class Group:
    key: str
    function: str
    members: tuple[str, ...]          # folders, in the batch's order
    representative: CaseResult        # the first member's first failing case
    cases: Mapping[str, str]          # the group's fingerprints (every member has these)


def batch_groups(results: Iterable[SubmissionResult]) -> list[Group]:
    """Every group of failing functions in ``results``, the largest first (then by function)."""
    found: dict[str, dict[str, Any]] = {}
    for r in results:
        for function, cases in failing_cases(r).items():
            key = group_key(r, function)
            g = found.setdefault(key, {"function": function, "members": [], "rep": cases[0],
                                       "cases": dict(r.fingerprints.get(function, {}))})
            if r.folder not in g["members"]:
                g["members"].append(r.folder)
    groups = [Group(k, g["function"], tuple(g["members"]), g["rep"], g["cases"]) for k, g in found.items()]
    return sorted(groups, key=lambda g: (-len(g.members), g.function, g.key))


# -- notes on the reports ---------------------------------------------------------------------------
def _with_notes(result: SubmissionResult, notes: Mapping[str, Sequence[Mapping[str, str]]],
                source: str) -> SubmissionResult:
    """``result`` with the notes of ``source`` replaced by ``notes`` (function -> notes) on the
    failing cases of each function; the other source's notes stay. Idempotent."""
    changed = False
    questions = dict(result.questions)
    for qid, q in result.questions.items():
        cases = []
        for c in q.cases:
            kept = [n for n in c.learned if n.get("source") != source]
            if not c.passed:
                for n in notes.get(c.function, ()):
                    note = {"title": n["title"], "explanation": n["explanation"], "source": source}
                    if not any(k["title"] == note["title"] and k["explanation"] == note["explanation"] for k in kept):
                        kept.append(note)
            new = tuple(kept)
            if new != tuple(c.learned):
                changed = True
                c = replace(c, learned=new)
            cases.append(c)
        questions[qid] = replace(q, cases=tuple(cases))
    return replace(result, questions=questions) if changed else result


def matches(entry: LearnedMistake, fingerprints: Mapping[str, str]) -> bool:
    """Whether a learned entry names a failing function whose fingerprints are ``fingerprints``
    (see the module docstring: equal on every common case with an output, and a failing output
    among them)."""
    common = [k for k in entry.cases if k in fingerprints
              and not entry.cases[k].startswith("status:") and not fingerprints[k].startswith("status:")]
    return (any(is_output(entry.cases[k]) for k in common)
            and all(entry.cases[k] == fingerprints[k] for k in common))


def public_part(entry: LearnedMistake, public_keys: Sequence[str]) -> dict[str, Any] | None:
    """What the students' self-check may carry of ``entry`` (see the module docstring):
    ``{"title", "explanation", "cases": {example number: fingerprint}}`` over ``public_keys``
    (the case keys of the check's public examples, in their order, numbered from 1); ``None``
    where no public example holds a failing output of the entry's, so it could never match there."""
    cases = {str(i): entry.cases[key] for i, key in enumerate(public_keys, start=1)
             if key.startswith("public/") and key in entry.cases and not entry.cases[key].startswith("status:")}
    if not any(is_output(fp) for fp in cases.values()):
        return None
    return {"title": entry.title, "explanation": entry.explanation, "cases": cases}


def apply_catalogue(result: SubmissionResult, entries: Sequence[LearnedMistake]) -> SubmissionResult:
    """``result`` with every matching rubric entry's explanation beside its failing checks."""
    notes: dict[str, list[dict[str, str]]] = {}
    for function in failing_cases(result):
        for e in entries:
            if e.function == function and matches(e, result.fingerprints[function]):
                notes.setdefault(function, []).append({"title": e.title, "explanation": e.explanation})
    return _with_notes(result, notes, "catalogue")


def apply_names(result: SubmissionResult, names: Mapping[str, Mapping[str, Any]]) -> SubmissionResult:
    """``result`` with the tutors' names of its groups (``group key -> {title, explanation}``,
    from the gradebook) beside its failing checks; a name taken back is taken off. Idempotent."""
    notes: dict[str, list[dict[str, str]]] = {}
    for function in failing_cases(result):
        name = names.get(group_key(result, function))
        if name and name.get("title"):
            notes[function] = [{"title": str(name["title"]), "explanation": str(name["explanation"])}]
    return _with_notes(result, notes, "tutor")


def clean_name(title: str, explanation: str) -> tuple[str, str]:
    """A tutor's title (one line) and explanation as stored; ValueError saying what is wrong."""
    title = " ".join(title.split())
    explanation = explanation.replace("\r\n", "\n").replace("\r", "\n").strip()
    if len(title) > MAX_TITLE:
        raise ValueError(f"a title of at most {MAX_TITLE} characters, please")
    if title and not explanation:
        raise ValueError("give an explanation for the students: they read it beside the failing check")
    if len(explanation) > MAX_EXPLANATION:
        raise ValueError(f"an explanation of at most {MAX_EXPLANATION} characters, please")
    if any(unicodedata.category(ch)[0] == "C" and ch not in "\n\t" for ch in title + explanation):
        raise ValueError("the title and explanation may not hold control or format characters")
    return title, explanation


# -- export -----------------------------------------------------------------------------------------
def _toml_string(text: str) -> str:
    # JSON's escapes are TOML's (\", \\, \n, \uXXXX); TOML also forbids a raw DEL
    return json.dumps(text, ensure_ascii=True).replace("\x7f", "\\u007f")


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(type(value).__name__)


def _split_key(key: str) -> tuple[str, str, int, dict[str, Any]]:
    kind, secret, seed, params = key.split("/", 3)
    return kind, secret, int(seed), json.loads(params)


def export_toml(groups: Sequence[Group], names: Mapping[str, Mapping[str, Any]], quantum: float,
                source: str = "") -> tuple[str, int]:
    """The named groups as ``[[learned_mistakes]]`` entries (TOML text) and how many."""
    lines = ["# Mistakes tutors named in a batch (grade mistakes export): load them in the next term's rubric",
             "# with [learned] files = [\"<this file>\"] (or paste the entries into it).",
             "", "[learned_export]", f"quantum = {quantum!r}",
             f"exported = {_toml_string(time.strftime('%Y-%m-%d'))}", f"source = {_toml_string(source)}"]
    count = 0
    for g in groups:
        name = names.get(g.key)
        if not name or not name.get("title") or not any(is_output(v) for v in g.cases.values()):
            continue
        count += 1
        lines += ["", "[[learned_mistakes]]", f"key = {_toml_string(g.key)}", f"function = {_toml_string(g.function)}",
                  f"title = {_toml_string(str(name['title']))}",
                  f"explanation = {_toml_string(str(name['explanation']))}", f"members = {len(g.members)}",
                  "cases = ["]
        for key, fp in sorted(g.cases.items()):
            kind, secret, seed, params = _split_key(key)
            item: dict[str, Any] = {"kind": kind, "seed": seed, "params": params, "fingerprint": fp}
            if kind == "hidden":
                item["secret_id"] = secret
            lines.append(f"  {_toml_value(item)},")
        lines.append("]")
    return "\n".join(lines) + "\n", count

