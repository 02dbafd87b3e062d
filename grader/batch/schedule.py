"""The order in which a batch grades its submissions: the longest expected first.

With ``-j N`` a batch that happens to start its longest submission last ends with one busy core
and N - 1 idle ones. Graded longest first (the LPT rule), the short ones fill the gaps at the end.

How long a submission takes is taken from the gradebook: the seconds of its latest result with
the same content (``sha256``), else of the same folder (a group that handed in again). A
submission never graded before is estimated from its file size relative to the ones that were:
``median seconds x size / median size``, the factor kept within [0.5, 2] since the size of a
notebook says little about its training time. With no history at all, the order is by size.
Ties keep the input order. Everything here is linear in the number of submissions (plus a sort).
"""
from __future__ import annotations

import math
import sqlite3
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

from grader.folder.gradebook import Gradebook

# How far a size ratio may move an estimate away from the median of the known durations.
SIZE_FACTOR_MIN, SIZE_FACTOR_MAX = 0.5, 2.0


class Schedulable(Protocol):
    @property
    def path(self) -> Path: ...
    @property
    def folder(self) -> str: ...
    @property
    def sha256(self) -> str: ...


J = TypeVar("J", bound=Schedulable)


@dataclass(frozen=True)
class History:
    """Seconds of earlier gradings, by content hash and by folder (the latest of each)."""

    by_sha256: Mapping[str, float]
    by_folder: Mapping[str, float]

    @classmethod
    def empty(cls) -> History:
        return cls({}, {})


def read_history(book: Gradebook) -> History:
    """The latest grading time of every submission in a gradebook (its ``results`` table).

    Results without a usable ``seconds`` (an old gradebook, a result stopped before grading)
    are left out rather than counted as instant."""
    by_sha: dict[str, float] = {}
    by_folder: dict[str, float] = {}
    try:
        for folder, sha, seconds in book.durations():
            if isinstance(seconds, (int, float)) and math.isfinite(seconds) and seconds > 0:
                by_sha[str(sha)] = by_folder[str(folder)] = float(seconds)
    except sqlite3.Error:
        return History.empty()  # no history (e.g. SQLite without JSON): order by size
    return History(by_sha, by_folder)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def expected_seconds(jobs: Sequence[J], history: History) -> list[float | None]:
    """Seconds each job is expected to take, ``None`` where there is nothing to go by."""
    return [history.by_sha256.get(j.sha256, history.by_folder.get(j.folder)) for j in jobs]


def longest_first(jobs: Sequence[J], history: History | None = None) -> list[J]:
    """``jobs`` ordered by expected duration, longest first (see the module docstring)."""
    history = history or History.empty()
    sizes = [_size(j.path) for j in jobs]
    known = expected_seconds(jobs, history)
    seen = [(s, size) for s, size in zip(known, sizes) if s is not None]
    if seen:
        median_seconds = statistics.median(s for s, _ in seen)
        median_size = statistics.median(size for _, size in seen) or 1

        def estimate(seconds: float | None, size: int) -> float:
            if seconds is not None:
                return seconds
            factor = min(SIZE_FACTOR_MAX, max(SIZE_FACTOR_MIN, size / median_size))
            return median_seconds * factor

        keys = [estimate(s, size) for s, size in zip(known, sizes)]
    else:
        keys = [float(size) for size in sizes]
    order = sorted(range(len(jobs)), key=lambda i: (-keys[i], i))
    return [jobs[i] for i in order]
