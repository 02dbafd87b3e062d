"""Reading the probes: what ran (:class:`ProbeRun`) and what it shows (:func:`verdict`).

A probe that matched clears the terms it ``clears``; a probe that differed (or raised) implicates
the terms it ``covers`` that were not cleared (grader/checks/probe_table.py). The wrong terms are
the fewest that explain every differing probe, as in fault localisation. A finding is a claim a
student will act on, so it is stated only as far as the probes verify it (issue 22, 2e):

- one term, when it alone explains every difference and it is *pinned* (the only uncleared term of
  some differing probe) or some probe matched: putting the reference's computation in its place
  is then what every probe asks for;
- "one of these is wrong: A; B", when A and B each alone explain every difference and some
  differing probe's uncleared terms are exactly those;
- "more than one term is wrong: A; B", when no single term explains it and each is pinned;
- otherwise "the wrong part could not be located", or, when a differing probe has no uncleared
  term, that the error lies in how the terms combine.

"close" probes (within the check's tolerance but not within CLEAR_RTOL) neither clear nor differ.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations

from grader.checks.probe_table import TERMS, Probe
from grader.result import Evidence

__all__ = ["ProbeRun", "settings_text", "term_words", "verdict"]


def _activations(activation: str | None) -> dict[str, str]:
    act = activation or "tanh"
    return {"act": act, "other": "sigmoid" if act == "tanh" else "tanh"}


def term_words(function: str, activation: str | None) -> dict[str, str]:
    """The terms of ``function`` in words, with the activation of the base input filled in."""
    return {k: v.format(**_activations(activation)) for k, v in TERMS[function].items()}


def _setting(probe: Probe, activation: str | None) -> str:
    return probe.setting.format(**_activations(activation))


def settings_text(runs: Sequence[ProbeRun], activation: str | None) -> str:
    """The probes' settings as one phrase: "A, B and C"."""
    names = [_setting(r.probe, activation) for r in runs]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


@dataclass(frozen=True)
class ProbeRun:
    """One probe as it ran: ``outcome`` is matches | close | differs | raised | stopped | skipped.

    ``close``: within the check's tolerance but not within CLEAR_RTOL, so it neither
    clears a term nor counts as a difference."""

    probe: Probe
    outcome: str
    detail: str = ""
    evidence: tuple[Evidence, ...] = ()

    def to_json(self, terms: Mapping[str, str], activation: str | None) -> dict[str, str]:
        words = {"matches": "matches the reference", "differs": "differs from the reference",
                 "close": "is close to the reference but not equal to it (not taken as a match)",
                 "raised": "raised an error", "stopped": "did not finish (probing stopped)",
                 "skipped": "was not tried (the probes' time budget was used up)"}
        setting = _setting(self.probe, activation)
        return {"probe": self.probe.name, "setting": setting,
                "exercises": "; ".join(terms[t] for t in terms if t in self.probe.covers),
                "outcome": self.outcome,
                "text": f"with {setting} your output {words[self.outcome]}"
                        + (f" ({self.detail})" if self.detail else "")}


def _explanations(order: list[str], remaining: list[frozenset[str]]) -> list[tuple[str, ...]]:
    """The smallest sets of terms that meet every differing probe's uncleared terms."""
    if not all(remaining):
        return []
    candidates = sorted(frozenset().union(*remaining), key=order.index)
    for size in range(1, len(candidates) + 1):  # at most 2^len(TERMS[function]) subsets
        found = [c for c in combinations(candidates, size) if all(rem & set(c) for rem in remaining)]
        if found:
            return found
    return []


def _verified(keys: tuple[str, ...], explanations: list[tuple[str, ...]], remaining: list[frozenset[str]],
              any_match: bool) -> bool:
    """Whether the probes support stating ``keys`` (see the module docstring)."""
    pinned = {next(iter(rem)) for rem in remaining if len(rem) == 1}
    if len(explanations[0]) == 1 and len(keys) > 1:  # a hedge between single terms
        return any(rem == set(keys) for rem in remaining)
    if len(keys) == 1:
        return keys[0] in pinned or any_match
    return all(k in pinned for k in keys)


def verdict(function: str, runs: Sequence[ProbeRun], activation: str | None = None) -> tuple[str, tuple[str, ...]]:
    """The probes' finding in words, and the keys of the terms it names ("" and () if none)."""
    terms = term_words(function, activation)
    differ = [r for r in runs if r.outcome in ("differs", "raised")]
    match = [r for r in runs if r.outcome == "matches"]
    if not differ:
        return "", ()
    cleared = frozenset().union(*(r.probe.clears for r in match))
    remaining = [r.probe.covers - cleared for r in differ]
    order = list(TERMS[function])
    explanations = _explanations(order, remaining)
    keys = tuple(t for t in order if any(t in e for e in explanations))
    unverified = bool(keys) and not _verified(keys, explanations, remaining, bool(match))
    if match:
        lead = (f"With {settings_text(match, activation)} your output matches the reference; with "
                f"{settings_text(differ, activation)} it does not")
    else:
        lead = (f"With every probe ({settings_text(differ, activation)}) your output differs from "
                "the reference")
    if unverified:
        return (f"{lead}: the wrong part could not be located (no single term, put right, would "
                "explain every probe); compare your output with the expected values of the "
                "failing case shown."), ()
    if not keys:
        return (f"{lead}: the probes cannot isolate one term, so the error lies in how the "
                "terms combine."), ()
    named = "; ".join(terms[k] for k in keys)
    if len(keys) == 1:
        return f"{lead}: {terms[keys[0]]} is wrong.", keys
    if len(explanations[0]) == 1:
        return f"{lead}: one of these is wrong: {named}.", keys
    if len(explanations) == 1:
        return f"{lead}: more than one term is wrong: {named}.", keys
    return f"{lead}: more than one term is wrong, among: {named}.", keys
