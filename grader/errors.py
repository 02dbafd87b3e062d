"""The grader's one exception hierarchy.

Library code raises these and never calls ``sys.exit``; the CLI catches :class:`GraderError`
once, prints its message and exits with its ``exit_code``.
"""
from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any


class GraderError(Exception):
    """Base of every error the grader reports to a user.

    The message says what happened and what to do next.
    """

    exit_code = 2


class RubricError(GraderError):
    """The rubric file is malformed: names the file, the key and what is allowed."""

    def __init__(self, path: str, key: str, problem: str) -> None:
        self.path, self.key, self.problem = path, key, problem
        super().__init__(f"{path}: {key}: {problem}")


class UsageError(GraderError):
    """The command line asked for something impossible (no inputs, bad option combination)."""


class SandboxUnavailable(GraderError):
    """`--sandbox bwrap` was asked for but bubblewrap cannot run here."""


class ClusterError(GraderError):
    """``--cluster``: the scheduler cannot be reached, it has no workers, or a worker's grading
    setup (project version, rubric, torch, sandbox) differs; the message names the worker."""
class SecretError(GraderError):
    """The course secret that hidden inputs are drawn from cannot be read, made or trusted."""


class OutputFolderError(GraderError):
    """A path in the output folder was refused (a link, or a name that would leave the folder),
    or result files in it cannot be read; the message names each."""


class ResultFormatError(GraderError, ValueError):
    """A ``result.json`` does not have the shape this grader writes; the message names the key."""


class SheetError(GraderError):
    """The scoring sheet has problems; nothing was imported. The message lists every one."""

    def __init__(self, sheet: str, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"{sheet}: nothing was imported; fix these rows and import the sheet again:\n  "
                         + "\n  ".join(problems))


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) or SIGTERM: the batch stops, keeps what finished and says so.

    A ``KeyboardInterrupt`` so that every ``except Exception`` lets it through; the CLI exits
    with ``128 + signum`` (130 for SIGINT, 143 for SIGTERM)."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(signum)


class PackRefused(GraderError):
    """`grade pack` would break a rule of contract §4; the message lists which."""

    exit_code = 1


class GroupCellError(GraderError):
    """The `group` cell cannot be read; the message tells the student what to fix."""


class PlatformError(GraderError):
    """The platform's file cannot be filled in; nothing was written. Lists every problem."""

    def __init__(self, path: str, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"{path}: nothing was written; fix these and run the export again:\n  "
                         + "\n  ".join(problems))


class ScoreRefused(GraderError):
    """A single score failed the sheet's checks; nothing was stored."""


class ScoreConflict(GraderError):
    """The answer's score changed since the tutor's form was loaded; nothing was stored."""

    def __init__(self, folder: str, question: str, change: Mapping[str, Any], version: int) -> None:
        self.change, self.version = dict(change), version
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(change["changed_at"]))
        super().__init__(f"{question} of {folder} was changed by {change['tutor']} at {when} "
                         f"(to {change['new_points']:g} points) after you opened it; your entry was not saved. "
                         "Look at the new score and save again if yours should replace it.")
