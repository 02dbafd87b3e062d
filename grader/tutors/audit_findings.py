"""What the report says about a mutant, and the audit's verdicts and figures (`grade audit`).

:func:`finding_kind` reads a failed function's results as the report shows them (a named mistake,
a layout finding, a located term, ...); :class:`Verdict` is one mutant's outcome, with the claim
check of grader/tutors/audit_claims.py (is what the report names the part the mutant changed?);
:class:`AuditReport` holds every verdict and the figures.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from grader.checks.raised import at_line
from grader.result import CaseResult
from grader.tutors.audit_equivalence import Difference
from grader.tutors.audit_mutants import Mutant

__all__ = ["NAMED_KINDS", "AuditReport", "Verdict", "finding_kind"]


@dataclass(frozen=True)
class Verdict:
    mutant: Mutant
    equivalent: bool
    difference: Difference | None  # an input on which it differs from the reference
    points: float                  # on the hidden cases
    max_points: float
    public_failed: int             # public examples it fails (what `grade check` shows)
    kind: str                      # see finding_kind
    text: str                      # the report's words for it (first failed case)
    reason: str = ""               # why it is equivalent
    seconds: float = 0.0
    claim: str = ""                # what the report claims (a mistake, terms, a line), in short
    #: whether the claim is true of the mutant (grader/tutors/audit_claims.py); None: no claim
    claim_right: bool | None = None

    @property
    def killed(self) -> bool:
        return self.points < self.max_points - 1e-9

    @property
    def survived(self) -> bool:
        return not self.equivalent and not self.killed

    @property
    def named_or_located(self) -> bool:
        """The report names or locates the mutant's change, and says nothing untrue about it."""
        return self.kind in NAMED_KINDS and self.claim_right is True

    @property
    def wrong_claim(self) -> bool:
        """The report names a mistake, a term or a line that is not the mutant's change."""
        return self.claim_right is False


#: The kinds of finding that name or locate a wrong function (see finding_kind).
NAMED_KINDS = ("named", "setting", "layout", "located", "hedged", "contract", "raised_line", "raised_cause")

_LOCATED = re.compile(r"(?:it does not|differs from the reference): (.*?)(?:\.(?: |$))")


def finding_kind(results: Sequence[CaseResult]) -> tuple[str, str]:
    """What the report says about a failed function, as a kind and its words.

    named: a catalogued mistake for the whole function ("your output matches ...", or "consistent
    with A or B"); setting: one named for one setting; layout: a slice, transposition, reordering
    or multiple of the expected result; located: a term the probes pinned ("... is wrong");
    contract: a broken rule of contract §3 (an input changed, a second call differs); raised_cause:
    the function raised and the report traces it back to a line (grader/checks/causes.py);
    raised_line: it raised and the report shows the student's line that raised; error: the
    function raised (the report shows the exception); shape: a wrong structure, shape or dtype
    without a finding; nan: NaN or infinite values; hedged: "one of these is wrong"; unlocated:
    the values differ and the report says the wrong part could not be located; none: no case failed.
    """
    failed = [r for r in results if not r.passed]
    if not failed:
        return "none", ""
    first = failed[0]
    text = f"{first.message} | {first.diagnosis}".strip(" |")
    if any(r.message.startswith("in the ") and "your output matches" in r.message for r in failed):
        return "setting", text
    if any(r.mistakes or r.consistent_with for r in failed):
        return "named", text
    if any(r.structure for r in failed):
        return "layout", text
    m = _LOCATED.search(first.diagnosis)
    if m and "one of these is wrong" in m.group(1):
        return "hedged", text
    if m and "could not" not in m.group(1) and "how the terms combine" not in m.group(1) and \
            m.group(1).endswith("is wrong"):
        return "located", text
    if m and m.group(1).startswith("more than one term is wrong"):
        return "located", text
    if any("breaks the rule" in r.message for r in failed):
        return "contract", text
    if first.call_status == "raised" and first.cause_lines:
        return "raised_cause", text
    if first.call_status == "raised":
        return ("raised_line" if at_line(first.message) else "error"), text
    if first.call_status in ("timeout", "died"):
        return "error", text
    if "NaN or infinite" in first.message:
        return "nan", text
    if first.message.startswith(("returned", "the returned dict", "h_new: returned", "c_new: returned")) or \
            re.match(r"^\w+: returned", first.message):
        return "shape", text
    return "unlocated", text




@dataclass(frozen=True)
class AuditReport:
    verdicts: tuple[Verdict, ...]
    seconds: float

    @property
    def equivalent(self) -> tuple[Verdict, ...]:
        return tuple(v for v in self.verdicts if v.equivalent)

    @property
    def relevant(self) -> tuple[Verdict, ...]:
        """The non-equivalent mutants: each should be killed."""
        return tuple(v for v in self.verdicts if not v.equivalent)

    @property
    def survivors(self) -> tuple[Verdict, ...]:
        return tuple(v for v in self.verdicts if v.survived)

    @property
    def killed_rate(self) -> float:
        rel = self.relevant
        return sum(v.killed for v in rel) / len(rel) if rel else 1.0

    @property
    def named_rate(self) -> float:
        killed = [v for v in self.relevant if v.killed]
        return sum(v.named_or_located for v in killed) / len(killed) if killed else 1.0

    @property
    def refused(self) -> bool:
        return bool(self.survivors)

    def counts(self) -> dict[str, dict[str, int]]:
        """function -> {mutants, equivalent, killed, survived, named_or_located, <kind>...}."""
        out: dict[str, dict[str, int]] = {}
        for v in self.verdicts:
            row = out.setdefault(v.mutant.function, {"mutants": 0, "equivalent": 0, "killed": 0,
                                                     "survived": 0, "named_or_located": 0})
            row["mutants"] += 1
            row["equivalent"] += v.equivalent
            row["killed"] += v.killed and not v.equivalent
            row["survived"] += v.survived
            row["named_or_located"] += v.killed and not v.equivalent and v.named_or_located
            row["wrong"] = row.get("wrong", 0) + int(v.killed and not v.equivalent and v.wrong_claim)
            if v.killed and not v.equivalent:
                row[v.kind] = row.get(v.kind, 0) + 1
        return out

    @property
    def wrong_claims(self) -> tuple[Verdict, ...]:
        """The killed mutants whose report claims what is not their change."""
        return tuple(v for v in self.relevant if v.killed and v.wrong_claim)

    def refusals(self) -> list[str]:
        """One line per surviving mutant: what it is and a case that would catch it."""
        return [f"{v.mutant.ident} ({v.mutant.where}: {v.mutant.change}) keeps full points; a case that "
                f"catches it: {v.difference.describe(v.mutant.function) if v.difference else '(none found)'}"
                for v in self.survivors]

