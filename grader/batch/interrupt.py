"""Ctrl-C (SIGINT) and SIGTERM for the ``grade`` command: stop at a point where the batch can
still write what finished.

The CLI calls :func:`install` first thing. Until the batch is ready to write its outputs (the
rubric loaded, the output folder open) a signal is only remembered; :func:`live` then raises it
as :class:`~grader.errors.Interrupted` and every later signal raises at once. While the batch
cleans up (:func:`shielded`) further signals are remembered, not raised, so a second Ctrl-C
cannot leave worker processes or half-written files behind; cleaning up takes seconds.
"""
from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from grader.errors import Interrupted

_state = {"installed": False, "raise": False, "pending": 0}


def _handler(signum: int, frame: FrameType | None) -> None:
    if _state["raise"]:
        _state["raise"] = False  # one exception; the cleanup that follows is not interrupted
        raise Interrupted(signum)
    _state["pending"] = _state["pending"] or signum


def install() -> None:
    """Handle SIGINT and SIGTERM (main thread only); signals are held until :func:`live`."""
    if threading.current_thread() is not threading.main_thread():
        return
    signal.signal(signal.SIGINT, _handler)
    signal.signal(signal.SIGTERM, _handler)
    _state["installed"] = True


@contextmanager
def installed() -> Iterator[None]:
    """:func:`install` for the duration, unless it was installed already (then it stays); the
    handlers before are restored, so a test that runs the CLI in-process leaves none behind."""
    if _state["installed"] or threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    install()
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before[0])
        signal.signal(signal.SIGTERM, before[1])
        _state.update(installed=False, pending=0)
        _state["raise"] = False


def live() -> None:
    """From now on a signal raises :class:`Interrupted`; one that came earlier raises now."""
    if not _state["installed"]:
        return
    pending, _state["pending"] = _state["pending"], 0
    if pending:
        raise Interrupted(pending)
    _state["raise"] = True


@contextmanager
def shielded() -> Iterator[None]:
    """Hold signals for the duration (cleaning up after an interrupt or at the end)."""
    was = _state["raise"]
    _state["raise"] = False
    try:
        yield
    finally:
        _state["raise"] = was
    if was and _state["pending"]:  # a signal held during a short step: raised now, after it
        signum, _state["pending"] = _state["pending"], 0
        _state["raise"] = False
        raise Interrupted(signum)


def hold() -> None:
    """From now on a signal is only remembered (see :func:`pending`): the work is done and what
    remains (printing, exiting) must not end in an uncaught exception."""
    _state["raise"] = False


def pending() -> int:
    """The signal that came while signals were held (0: none)."""
    return int(_state["pending"])


def fork() -> int:
    """:func:`os.fork` with SIGINT and SIGTERM held while it runs, in the parent and the child.

    A signal that arrives during a fork is otherwise handled inside an at-fork hook (logging's
    lock release), where Python prints the :class:`Interrupted` as ignored and the signal is lost;
    held, it is delivered right after, in the parent's own code, and raises as anywhere else."""
    if threading.current_thread() is not threading.main_thread():
        return os.fork()
    before = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        return os.fork()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)
