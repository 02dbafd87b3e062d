"""The grader's one exception hierarchy.

Library code raises these and never calls ``sys.exit``; the CLI catches :class:`GraderError`
once, prints its message and exits with its ``exit_code``.
"""
from __future__ import annotations


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
