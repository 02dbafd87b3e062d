"""Contract rules that look more than once (issue 20): every call's inputs are looked at again
after the next call and after the function's last call plus a settle, and a call that leaves
threads or processes running breaks a rule of its own.

Fast: the "kernel" is the in-process stand-in of tests/test_bridge.py, running the very code the
bridge sends; its process tree is this test process, counted from /proc like a kernel's. The
student code is the hostile fixtures' own (tests/make_hostile_fixtures.py), so what is tested
here is what the fixtures in tests/files/hostile/ do in a real kernel (tests/test_hostile.py).
"""
from __future__ import annotations

import dataclasses
import os
import threading
import time
from pathlib import Path
from typing import Any

from make_hostile_fixtures import LATE_WIPE, NEXT_CALL_WIPE, TBPTT_REFERENCE
from test_bridge import FakeSession

import reference
from grader.checks.bridge import Bridge
from grader.checks.contract import RULE_CLEAN, RULE_INPUTS, leftover_tasks
from grader.grade import Verified, _recheck_inputs, _run_check
from grader.kernel.tree import process_tree_tasks
from grader.result import CaseResult
from grader.rubric import load_rubric

SECRET = b"recheck-test-secret-0123456789abcdef"


class TreeSession(FakeSession):
    """The stand-in kernel, with this process as the kernel's process tree."""

    restarts = 0

    def kernel_pid(self) -> int:
        return os.getpid()


def _bridge(tmp_path: Path, source: str | None) -> Bridge:
    namespace: dict[str, Any] = {"__name__": "__main__", "tbptt_grads": reference.tbptt_grads}
    if source is not None:
        exec(compile(TBPTT_REFERENCE + "\n" + source, "<student>", "exec"), namespace)
    calls = tmp_path / "calls"
    calls.mkdir(exist_ok=True)
    return Bridge(TreeSession(calls, namespace))  # type: ignore[arg-type]


def _grade_tbptt(tmp_path: Path, source: str | None) -> list[CaseResult]:
    rubric = load_rubric()
    check = next(c for c in rubric.checks() if c.function == "tbptt_grads")
    bridge = _bridge(tmp_path, source)
    verified: list[Verified] = []
    cases = _run_check(bridge, check, True, rubric, False, "", SECRET, verified)
    by_question = {"11.4.d": list(cases)}
    _recheck_inputs(bridge, rubric, verified, by_question)
    return by_question["11.4.d"]


def _wait_for_threads(baseline: int, seconds: float = 5.0) -> None:
    end = time.monotonic() + seconds
    while threading.active_count() > baseline and time.monotonic() < end:
        time.sleep(0.05)


def test_a_correct_function_keeps_every_rule_on_every_look(tmp_path):
    cases = _grade_tbptt(tmp_path, None)
    assert cases and all(c.passed for c in cases), [c.message for c in cases]


def test_a_thread_that_zeroes_params_after_returning_loses_the_cases(tmp_path):
    """The issue's attack: right gradients, the caller's params zeroed 0.5 s later."""
    baseline = threading.active_count()
    try:
        cases = _grade_tbptt(tmp_path, LATE_WIPE)
    finally:
        _wait_for_threads(baseline)
    assert cases and all(not c.passed and c.points == 0.0 for c in cases)
    for case in cases:
        assert RULE_CLEAN in case.message  # the thread was still running when the call returned
        assert f'"{RULE_INPUTS}" after its last call and 0.5 s' in case.message
        assert "`params['W']` was changed in place (values)" in case.message


def test_wiping_the_previous_calls_params_at_the_next_call_loses_the_cases(tmp_path):
    cases = _grade_tbptt(tmp_path, NEXT_CALL_WIPE)
    assert cases and all(not c.passed and c.points == 0.0 for c in cases)
    # Seen at the first look already (after the second call), and again after the last call.
    assert all(f'"{RULE_INPUTS}"' in c.message and "values" in c.message for c in cases)
    assert any("after its last call" in c.message for c in cases)


def test_the_settle_follows_the_rubric(tmp_path, monkeypatch):
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    rubric = dataclasses.replace(load_rubric(), contract_settle=1.25)
    check = next(c for c in rubric.checks() if c.function == "tbptt_grads")
    bridge = _bridge(tmp_path, None)
    verified: list[Verified] = []
    cases = _run_check(bridge, check, True, rubric, False, "", SECRET, verified)
    _recheck_inputs(bridge, rubric, verified, {"11.4.d": cases})
    assert slept == [1.25] and len(verified) == len(cases)


def test_evidence_the_kernel_dropped_is_a_violation(tmp_path):
    """A kernel that deletes the kept inputs gains nothing: 'could not be verified' costs the case."""
    rubric = load_rubric()
    check = next(c for c in rubric.checks() if c.function == "tbptt_grads")
    bridge = _bridge(tmp_path, None)
    verified: list[Verified] = []
    cases = _run_check(bridge, check, True, rubric, False, "", SECRET, verified)
    bridge.session.namespace["__sheet11_tracks"].clear()  # type: ignore[attr-defined]
    by_question = {"11.4.d": list(cases)}
    _recheck_inputs(bridge, rubric, verified, by_question)
    assert all(not c.passed and "could not be verified" in c.message for c in by_question["11.4.d"])


def test_tasks_are_counted_from_proc(tmp_path):
    before = process_tree_tasks(os.getpid())
    assert before is not None and before >= 1
    stop = threading.Event()
    worker = threading.Thread(target=stop.wait)
    worker.start()
    try:
        assert process_tree_tasks(os.getpid()) == before + 1
    finally:
        stop.set()
        worker.join()
    assert process_tree_tasks(2 ** 22 + 12345) is None  # no such process
    assert leftover_tasks(None) == "" and leftover_tasks(0) == "" and "1 more thread" in leftover_tasks(1)
