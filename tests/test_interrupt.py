"""Ctrl-C (SIGINT) and SIGTERM at random moments of a batch: the command ends within 10 s with
130 (SIGINT) or 143 (SIGTERM), prints no traceback, leaves no process behind (workers, kernels),
writes grades.csv and summary.html for what finished (marked incomplete), and the same command
then completes the batch.

The batch is small on purpose so that 20 + 5 interrupted runs stay within a few minutes: one
notebook that runs in a kernel (the stage where kernels could be left behind) and two broken ones
(graded without a kernel). A moment is drawn from when the command's signal handling is in place
(the first lines of grader/cli/main.py; before that, about 0.1 s, Python's default applies) to a little
past a typical run.
"""
from __future__ import annotations

import csv
import io
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from builders import FILES, slowness

ROOT = Path(__file__).resolve().parent.parent
NAMES = ["Lovelace_2571234_Turing_2579876.ipynb", "Hopper_2570001_Dijkstra_2570002.ipynb",
         "Noether_2570003_Goedel_2570004.ipynb"]


def _inputs(tmp_path: Path) -> Path:
    src = tmp_path / "in"
    src.mkdir()
    shutil.copyfile(FILES / "flags" / "missing_function.ipynb", src / NAMES[0])
    for name in NAMES[1:]:
        shutil.copyfile(FILES / "outdir" / "Lovelace_2571234_Turing_2579876.ipynb", src / name)
    return src


def _start(src: Path, out: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "grader.cli.main", str(src), "-o", str(out), "-j", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT)


def _descendants(proc: subprocess.Popen, seen: dict[int, float]) -> None:
    try:
        for p in psutil.Process(proc.pid).children(recursive=True):
            try:
                seen.setdefault(p.pid, p.create_time())
            except psutil.Error:
                pass
    except psutil.Error:
        pass


def _left_behind(seen: dict[int, float]) -> list[str]:
    alive = []
    for pid, created in seen.items():
        try:
            p = psutil.Process(pid)
            if p.create_time() == created and p.status() != psutil.STATUS_ZOMBIE:
                alive.append(f"{pid} {' '.join(p.cmdline())[:120]}")
        except psutil.Error:
            pass
    return alive


def _handles_sigterm(pid: int) -> bool:
    """The command has put its handlers in place (Python itself catches only SIGINT at start)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    caught = next(int(line.split()[1], 16) for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(caught & (1 << (signal.SIGTERM - 1)))


def _interrupt_once(src: Path, out: Path, signum: int, moment: float) -> bool:
    """One run stopped ``moment`` seconds after its handlers are in place; True if the signal came
    before the run had ended."""
    proc = _start(src, out)
    seen: dict[int, float] = {}
    ready = time.monotonic() + 60
    while not _handles_sigterm(proc.pid) and proc.poll() is None:
        assert time.monotonic() < ready, "the command did not start within 60 s"
        time.sleep(0.01)
    t0 = time.monotonic()
    while time.monotonic() - t0 < moment and proc.poll() is None:
        _descendants(proc, seen)  # every worker and kernel the run starts, to check they end
        time.sleep(0.05)
    _descendants(proc, seen)
    if proc.poll() is not None:  # finished before the moment: nothing to interrupt
        proc.communicate()
        return False
    proc.send_signal(signum)
    sent = time.monotonic()
    try:
        _, stderr = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired as exc:
        proc.kill()
        raise AssertionError(f"no exit 60 s after {signal.Signals(signum).name} at {moment:.2f} s") from exc
    took = time.monotonic() - sent
    text = stderr.decode(errors="replace")
    where = f"{signal.Signals(signum).name} at {moment:.2f} s"
    assert took < 10 * slowness(), f"{where}: exit took {took:.1f} s"
    # -signum: the signal's own default action ended the process as its handlers were being put
    # back at the very end; a shell reports that as 128 + signum too.
    assert proc.returncode in (128 + signum, -signum, 0, 1), f"{where}: exit code {proc.returncode}\n{text}"
    interrupted = proc.returncode == 128 + signum
    assert "Traceback" not in text and "exception was never retrieved" not in text, f"{where}:\n{text}"
    deadline = time.monotonic() + 5
    while _left_behind(seen) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _left_behind(seen), f"{where}: left behind {_left_behind(seen)}"
    grades = (out / "grades.csv").read_text(encoding="utf-8")
    summary = (out / "summary.html").read_text(encoding="utf-8")
    rows = list(csv.DictReader(io.StringIO(grades)))
    assert {r["submission"] for r in rows} == set(NAMES), f"{where}: {rows}"
    waiting = [r for r in rows if r["status"] == "not graded"]
    if waiting:  # what did not finish is listed as such, and the page says the batch is incomplete
        assert interrupted and "Incomplete" in summary, where
    for r in rows:
        if r["status"] != "not graded":
            assert (out / r["submission"].rsplit(".", 1)[0] / "result.json").exists(), where
    return interrupted


def _interrupts(tmp_path: Path, signum: int, count: int, seed: int) -> None:
    src = _inputs(tmp_path)
    out = tmp_path / "out"
    rng = random.Random(seed)
    stopped = 0
    for i in range(count):
        if i % 4 == 0:  # from scratch, else resuming what the runs before kept
            shutil.rmtree(out, ignore_errors=True)
        stopped += _interrupt_once(src, out, signum, rng.uniform(0.0, 6.0))
    # How many moments fall inside a run depends on the machine's speed; a quarter of them is
    # enough to show the interrupt path is exercised, on a quiet machine as on a busy one.
    assert stopped >= count // 4, f"only {stopped} of {count} runs were still going when the signal came"
    done = _start(src, out)  # the same command completes the batch
    _, stderr = done.communicate(timeout=600)
    assert done.returncode == 1, stderr.decode()  # two broken notebooks: not everything graded
    rows = list(csv.DictReader(io.StringIO((out / "grades.csv").read_text())))
    assert {r["submission"] for r in rows} == set(NAMES) and "not graded" not in {r["status"] for r in rows}
    assert "Incomplete" not in (out / "summary.html").read_text()


@pytest.mark.slow
def test_ctrl_c_at_twenty_random_moments(tmp_path: Path) -> None:
    _interrupts(tmp_path, signal.SIGINT, 20, seed=11)


@pytest.mark.slow
def test_sigterm_at_random_moments(tmp_path: Path) -> None:
    _interrupts(tmp_path, signal.SIGTERM, 5, seed=143)
