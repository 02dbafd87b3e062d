"""The vanilla-RNN comparison in a second kernel (grader/checks/recall_side.py) and the spare slots
it waits for (grader/kernel/spare.py; handed out by grader/batch/run.py).

The fast tests force each order of events with a real token pipe and fake attempts: the attempt
that counts is made exactly once, a token is consumed only for a claim that is made, and ``-j 1``
never sees a token. The slow test grades the reference solution's recall experiment with a real
second kernel.
"""
from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import grader.batch.run as batch_run
import grader.batch.workers as workers
from grader.checks.recall_rule import Attempt
from grader.checks.recall_side import Claim, SecondKernel
from grader.grade import Context
from grader.kernel.sandbox import Sandbox
from grader.kernel.spare import AlwaysSpare, TokenPipe
from grader.result import SubmissionResult
from grader.rubric import load_rubric

RNN_HERE = Attempt("rnn", 0, "ok", 0.25, 20.0, 21.0)
RNN_THERE = Attempt("rnn", 0, "ok", 0.26, 19.0, 20.0, kernel_pid=4242)


@pytest.fixture
def pipe() -> Iterator[TokenPipe]:
    tokens = TokenPipe.create()
    yield tokens
    tokens.close()


class Counted:
    """An attempt function that counts its calls; ``gate`` (when given) holds it until set."""

    def __init__(self, value: Attempt | str, gate: threading.Event | None = None) -> None:
        self.value, self.gate, self.calls = value, gate, 0
        self.started = threading.Event()

    def __call__(self) -> Any:
        self.calls += 1
        self.started.set()
        if self.gate is not None:
            assert self.gate.wait(10)
        return self.value


def tokens_left(tokens: TokenPipe) -> int:
    n = 0
    while tokens.take():
        n += 1
    return n


def test_a_claim_has_one_owner_and_takes_a_token_only_when_it_is_made() -> None:
    claim = Claim()
    asked: list[str] = []
    assert not claim.take("second", lambda: asked.append("token") or False)  # no token: no claim
    assert claim.owner is None and asked == ["token"]
    assert claim.take("first")
    assert not claim.take("second", lambda: asked.append("again") or True)  # never asked: no token taken
    assert claim.owner == "first" and asked == ["token"]


def test_no_token_the_first_kernel_makes_the_attempt(pipe: TokenPipe) -> None:
    there, here = Counted(RNN_THERE), Counted(RNN_HERE)
    with SecondKernel(pipe, there, poll=0.01).start() as side:
        time.sleep(0.05)
        assert side.result(here) == RNN_HERE
    assert (here.calls, there.calls) == (1, 0) and side.notes == [] and side.attempt is None


def test_a_token_first_the_second_kernel_makes_it_and_gives_the_token_back(pipe: TokenPipe) -> None:
    there, here = Counted(RNN_THERE), Counted(RNN_HERE)
    with SecondKernel(pipe, there, poll=0.01).start() as side:
        pipe.hand_out()
        assert there.started.wait(5)
        assert side.result(here) == RNN_THERE
    assert (here.calls, there.calls) == (1 - 1, 1) and side.attempt == RNN_THERE
    assert tokens_left(pipe) == 1  # the slot is free again


def test_the_first_kernel_waits_for_a_second_kernel_at_work(pipe: TokenPipe) -> None:
    gate = threading.Event()
    there, here = Counted(RNN_THERE, gate), Counted(RNN_HERE)
    with SecondKernel(pipe, there, poll=0.01).start() as side:
        pipe.hand_out()
        assert there.started.wait(5)
        threading.Timer(0.2, gate.set).start()
        t0 = time.monotonic()
        assert side.result(here) == RNN_THERE
        assert time.monotonic() - t0 >= 0.15
    assert (here.calls, there.calls) == (0, 1)


def test_a_token_after_the_first_kernel_claimed_is_left_for_others(pipe: TokenPipe) -> None:
    there, here = Counted(RNN_THERE), Counted(RNN_HERE)
    side = SecondKernel(pipe, there, poll=0.01).start()
    assert side.result(here) == RNN_HERE
    pipe.hand_out()
    time.sleep(0.1)
    side.close()
    assert (here.calls, there.calls) == (1, 0)
    assert tokens_left(pipe) == 1  # not consumed


@pytest.mark.parametrize("failure", ["it did not start", RuntimeError("boom")])
def test_a_second_kernel_that_fails_leaves_the_attempt_to_the_first_and_says_so(
        pipe: TokenPipe, failure: str | Exception) -> None:
    if isinstance(failure, Exception):
        def there() -> Attempt:
            raise failure
        counted: Counted | None = None
    else:
        counted = Counted(failure)
        there = counted  # type: ignore[assignment]
    here = Counted(RNN_HERE)
    with SecondKernel(pipe, there, poll=0.01).start() as side:
        pipe.hand_out()
        time.sleep(0.1)
        assert side.claim.owner == "second"
        assert side.result(here) == RNN_HERE
    assert here.calls == 1 and side.attempt is None
    assert len(side.notes) == 1 and "second kernel" in side.notes[0] and "LSTM" in side.notes[0]
    assert ("boom" if isinstance(failure, Exception) else "did not start") in side.notes[0]
    assert tokens_left(pipe) == 1


def test_closed_before_the_comparison_nothing_runs_after_and_a_kernel_at_work_is_waited_for(
        pipe: TokenPipe) -> None:
    gate = threading.Event()
    there = Counted(RNN_THERE, gate)
    side = SecondKernel(pipe, there, poll=0.01).start()
    pipe.hand_out()
    assert there.started.wait(5)
    threading.Timer(0.2, gate.set).start()
    side.close()  # e.g. train_recall was not defined: run_recall returned early
    assert gate.is_set() and there.calls == 1
    assert tokens_left(pipe) == 1  # the slot the second kernel gave back when it was done
    quiet = SecondKernel(pipe, Counted(RNN_THERE), poll=0.01).start()
    quiet.close()
    pipe.hand_out()
    time.sleep(0.05)
    assert quiet.claim.owner == "nobody"


def test_racing_a_token_against_the_comparison_the_attempt_counts_once(pipe: TokenPipe) -> None:
    """The token and the first kernel's claim at (nearly) the same moment, many times over."""
    owners = set()
    for i in range(60):
        there, here = Counted(RNN_THERE), Counted(RNN_HERE)
        with SecondKernel(pipe, there, poll=0.001).start() as side:
            go = threading.Barrier(2)

            def give(go: threading.Barrier = go, delay: float = (i % 6) * 0.0005) -> None:
                go.wait()
                time.sleep(delay)
                pipe.hand_out()
            giver = threading.Thread(target=give)
            giver.start()
            go.wait()
            time.sleep((i % 5) * 0.0005)
            got = side.result(here)
            giver.join()
        assert here.calls + there.calls == 1, i
        assert got == (RNN_HERE if here.calls else RNN_THERE)
        owners.add(side.claim.owner)
        tokens_left(pipe)
    assert owners <= {"first", "second"}


def test_always_spare_starts_the_second_kernel_at_once() -> None:
    there, here = Counted(RNN_THERE), Counted(RNN_HERE)
    with SecondKernel(AlwaysSpare(), there, poll=0.01).start() as side:
        assert there.started.wait(5)
        assert side.result(here) == RNN_THERE
    assert here.calls == 0


def test_one_token_goes_to_one_of_two_waiting_graders(pipe: TokenPipe) -> None:
    """Two submissions waiting on the same pipe (two grading processes): one token, one second kernel."""
    gate = threading.Event()
    a, b = Counted(RNN_THERE, gate), Counted(RNN_THERE, gate)
    sides = [SecondKernel(pipe, a, poll=0.01).start(), SecondKernel(pipe, b, poll=0.01).start()]
    pipe.hand_out()
    time.sleep(0.2)
    assert a.calls + b.calls == 1
    gate.set()
    for side in sides:
        side.close()


# ------------------------------------------------------------------ the batch hands out the tokens
class FakeWorker:
    """Stands in for a forked grading process: replies with an error result; ``waits_for_token``
    makes the reply wait until a spare slot was handed out (it records whether one came)."""

    made: list[FakeWorker] = []

    def __init__(self, rubric_path: Any, sandbox_mode: str, memory_mb: int, close: list[int],
                 spare: TokenPipe | None = None, *, ctx: Any = None) -> None:
        self.spare = spare
        self.replies, self._w = os.pipe()
        self.pid, self.ready, self.job, self.reaped = 0, True, None, True
        self.deadline, self.started, self.buffer = float("inf"), time.monotonic(), b""
        self.got_token: bool | None = None
        self.index = len(FakeWorker.made)
        FakeWorker.made.append(self)

    def fds(self) -> list[int]:
        return [self.replies, self._w]

    def send(self, job: Any, seconds: float, more: bool = True) -> None:
        self.job = job

        def reply() -> None:
            if self.index == 1:  # the second worker still grades when the first runs out of work
                self.got_token = self.spare is not None and self.spare.wait(5) and self.spare.take()
            result = batch_run.stopped_result(load_rubric(), job, "fake")
            os.write(self._w, json.dumps({"result": result.to_json(), "pages": {}}).encode() + b"\n")
        threading.Thread(target=reply).start()

    def read(self) -> dict[str, Any] | None:
        chunk = os.read(self.replies, 1 << 20)
        self.buffer += chunk
        if b"\n" not in self.buffer:
            return None
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)

    def close_jobs(self) -> None:
        pass

    def exited(self) -> bool:
        return True

    def kill(self) -> None:
        for fd in self.fds():
            os.close(fd)


@pytest.mark.parametrize("jobs", [1, 2])
def test_the_batch_hands_out_a_spare_slot_only_with_more_than_one_worker(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, jobs: int) -> None:
    FakeWorker.made = []
    monkeypatch.setattr(workers, "Worker", FakeWorker)
    made: list[TokenPipe] = []
    create = TokenPipe.create
    monkeypatch.setattr(workers.TokenPipe, "create", classmethod(lambda cls: made.append(create()) or made[-1]))
    todo = [batch_run.Job(tmp_path / f"s{i}.ipynb", f"s{i}", "") for i in range(2)]
    done: list[SubmissionResult] = []
    workers.grade_locally(todo, Context(load_rubric(), Sandbox("none")), jobs, lambda r, p: done.append(r))
    assert sorted(r.folder for r in done) == ["s0", "s1"]
    if jobs == 1:
        assert made == [] and all(w.spare is None for w in FakeWorker.made)
    else:
        assert len(made) == 1 and FakeWorker.made[1].got_token is True


# ------------------------------------------------------------------------------- a real second kernel
@pytest.mark.slow
def test_the_rnn_comparison_runs_in_a_second_kernel_with_the_same_result_shape(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The reference solution graded twice at a short length (seq_len 15): with a spare slot from
    the start, the RNN's attempt is made in a kernel of another pid than the LSTM's, and the result
    has the same shape, verdict and points as without one."""
    import dataclasses

    from builders import GOOD_NAME, SOLUTION, quick_context, write_zip

    import grader.grade as grade
    path = write_zip(tmp_path / f"{GOOD_NAME}.zip", {"sheet11.ipynb": SOLUTION.read_bytes()})
    ctx = quick_context()
    short = dataclasses.replace(ctx.rubric, recall=dataclasses.replace(ctx.rubric.recall, seq_len=15))
    ctx = dataclasses.replace(ctx, rubric=short)
    sides: list[SecondKernel] = []
    first_pids: list[int | None] = []
    make, run = grade.second_kernel, grade.run_recall
    monkeypatch.setattr(grade, "second_kernel", lambda *a, **k: sides.append(make(*a, **k)) or sides[-1])
    monkeypatch.setattr(grade, "run_recall",
                        lambda bridge, *a, **k: first_pids.append(bridge.session.kernel_pid()) or run(bridge, *a, **k))
    beside = grade.grade_submission(path, dataclasses.replace(ctx, spare=AlwaysSpare())).to_json()
    alone = grade.grade_submission(path, ctx).to_json()
    assert len(sides) == 1 and sides[0].notes == [] and sides[0].claim.owner == "second"
    attempt = sides[0].attempt
    assert attempt is not None and attempt.status == "ok"
    assert attempt.kernel_pid is not None and attempt.kernel_pid != first_pids[0]
    assert beside["recall"]["rnn_accuracy"] == attempt.accuracy
    for data in (beside, alone):
        assert data["status"] == "graded" and data["flags"] == [] and "tutor_detail" not in data
        assert data["recall"]["rnn_run"] is True and 0.0 <= data["recall"]["rnn_accuracy"] <= 1.0
    assert set(beside) == set(alone) and set(beside["recall"]) == set(alone["recall"])
    assert beside["points"] == alone["points"] and beside["recall"]["lstm_accuracy"] == alone["recall"]["lstm_accuracy"]
    case = [c for q in beside["questions"].values() for c in q.get("checks", []) if "train_recall" in c["name"]]
    assert len(case) == 1 and "vanilla RNN: " in case[0]["message"] and "CPU s" in case[0]["message"]
