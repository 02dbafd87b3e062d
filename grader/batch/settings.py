"""What a batch is graded with, decided once and handed down: :class:`BatchSettings`.

The ``grade`` command makes the settings once (:meth:`BatchSettings.make`): the rubric is read and
checked, the sandbox chosen (one bubblewrap probe; ``auto`` decided here, so the summary's note
and every kernel agree), and the options kept as given. :func:`grader.batch.run.run_batch` takes
them as they are; its forked grading processes inherit the parent's already loaded
:class:`~grader.rubric.Rubric` and already chosen :class:`~grader.kernel.sandbox.Sandbox` objects,
so no worker reads the rubric again, probes for bubblewrap again or decides ``auto`` again.

Only another way to grade (:data:`GradeAll`, e.g. Dask workers on other machines:
grader/batch/cluster.py) gets the rubric's path and the sandbox mode as well, since a process on
another machine must load and choose on its own.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from grader.kernel.sandbox import Sandbox, choose_sandbox
from grader.result import SubmissionResult
from grader.rubric import Rubric, load_rubric

if TYPE_CHECKING:  # pragma: no cover - imports for the type checker only
    from grader.batch.job import Job

__all__ = ["BatchSettings", "Finished", "GradeAll"]

#: Called in the batch's process for each result graded now, with its pages (None: draw them).
Finished = Callable[[SubmissionResult, "dict[str, str] | None"], None]
#: Another way to grade the submissions that are not kept: (todo, rubric, rubric_path,
#: sandbox_mode, jobs, finished).
GradeAll = Callable[[list["Job"], Rubric, "str | None", str, int, Finished], None]


@dataclass(frozen=True)
class BatchSettings:
    """A batch's settings: the output folder, the rubric and sandbox objects, and the options."""

    out_dir: Path
    rubric: Rubric
    sandbox: Sandbox
    jobs: int = 1
    regrade: bool = False
    deadline: datetime | None = None   # the rubric's late policy applies against it
    manifest: Path | None = None       # submission times (CSV) for the late policy
    roster: Path | None = None         # the course's participants
    grade_all: GradeAll | None = None  # another way to grade (the cluster); None: local workers
    rubric_path: str | None = None     # where the rubric came from (None: the default)
    sandbox_mode: str = "auto"         # as asked for (the cluster's workers choose on their own)

    @classmethod
    def make(cls, out_dir: Path | str, rubric_path: str | None = None, jobs: int = 1, sandbox_mode: str = "auto",
             regrade: bool = False, deadline: datetime | None = None, manifest: Path | None = None,
             roster: Path | None = None, grade_all: GradeAll | None = None) -> BatchSettings:
        """Read the rubric and choose the sandbox, once (raises the grader's errors: a bad rubric,
        a missing sandbox with ``bwrap``)."""
        return cls(Path(out_dir), load_rubric(rubric_path), choose_sandbox(sandbox_mode), jobs, regrade, deadline,
                   manifest, roster, grade_all, rubric_path, sandbox_mode)
