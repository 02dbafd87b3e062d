"""What running a notebook, or a piece of the grader's code, in a kernel came to.

Plain records the grader's process builds from what it saw (never from what the kernel says about
itself): each code cell's :class:`CellOutcome`, the :class:`RunFlag` findings of a run (a cell
stopped, a kernel that died and was restarted, the notebook's time used up), the whole
:class:`ExecutionResult`, and a grader call's :class:`CodeResult`. :class:`KernelStartError` is
the one error of a kernel that did not start or did not answer.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class CellOutcome:
    """What happened to one code cell."""

    index: int
    status: str  # ok | error | timeout | died | skipped | not_run
    seconds: float = 0.0
    error: str = ""


@dataclass(frozen=True)
class RunFlag:
    """A finding of the run, by its rubric code (``cell.timeout``, ``kernel.died``, ``notebook.timeout``)."""

    code: str
    message: str
    cell: int | None = None


@dataclass(frozen=True)
class CodeResult:
    """The outcome of code the grader ran in the kernel."""

    status: str  # ok | error | timeout | died
    seconds: float
    error: str = ""


@dataclass
class ExecutionResult:
    """A notebook's run: every code cell's outcome, the findings, the seconds, and whether it started."""

    cells: list[CellOutcome] = field(default_factory=list)
    flags: list[RunFlag] = field(default_factory=list)
    seconds: float = 0.0
    started: bool = True


class KernelStartError(Exception):
    """The kernel did not start or did not answer."""


#: A cell's status after it ran (grader/kernel/execute.py) that ends its kernel: the kernel is
#: restarted and the cell skipped.
FATAL = ("died", "timeout-dead", "mute", "timeout-mute")


def cell_outcome(status: str, index: int, seconds: float, cell_timeout: float,
                 error: str = "") -> tuple[CellOutcome, RunFlag | None]:
    """How cell ``index`` is recorded after it ran with ``status`` (ok | error | timeout | died |
    timeout-dead | mute | timeout-mute), and the finding it raises, if any. ``error`` is the
    cell's own error (ok and error only)."""
    stopped = f"this cell ran longer than {cell_timeout:g} s and was stopped"
    mute = "the kernel no longer sent its output (a flood of output can do that)"
    if status in ("ok", "error"):
        return CellOutcome(index, status, seconds, error), None
    if status == "timeout":
        return CellOutcome(index, "timeout", seconds), RunFlag("cell.timeout", stopped, index)
    if status == "mute":
        return CellOutcome(index, "died", seconds), RunFlag(
            "kernel.died", f"after this cell {mute}; it was restarted and this cell skipped", index)
    if status == "timeout-mute":
        return CellOutcome(index, "timeout", seconds), RunFlag(
            "cell.timeout", f"{stopped}; after that {mute}, so it was restarted and this cell skipped", index)
    if status == "died":
        return CellOutcome(index, "died", seconds), RunFlag(
            "kernel.died", "the kernel died while running this cell (a crash, os._exit, the memory limit, "
            "or a message the grader could not read); it was restarted and this cell skipped", index)
    return CellOutcome(index, "timeout", seconds), RunFlag(
        "cell.timeout", f"{stopped}; the kernel did not respond and was restarted", index)


def not_run(left: list[int], notebook_timeout: float) -> tuple[list[CellOutcome], RunFlag]:
    """The cells ``left`` when the notebook's time ran out, and the finding that says so."""
    return [CellOutcome(i, "not_run") for i in left], RunFlag(
        "notebook.timeout", f"the notebook ran longer than {notebook_timeout:g} s; {len(left)} cell(s) were "
        "not run", left[0])
