"""Hostile notebooks: every fault is contained, flagged, and costs nothing but its own points.

Each fixture in ``tests/files/hostile/`` (see ``tests/make_hostile_fixtures.py``) is the fast
reference solution (3.5 automatic points: 11.4.a-c full, tbptt_grads; train_recall is a stub)
with one hostile cell placed after the 11.4.b functions and before ``lstm_cell``: the functions
defined before *and* after the fault must still earn their points. Limits are short here
(cell_timeout 5 s); every test also bounds its own time.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from builders import ROOT, add_code, quick_context, set_group, slowness, solution, write_notebook
from make_hostile_fixtures import FIXTURES, fixture

from grader.grade import grade_submission
from grader.rubric import DEFAULT_RUBRIC

pytestmark = pytest.mark.slow

FULL = 3.5            # what the fast solution earns
AUTO = ("11.4.a", "11.4.b", "11.4.c", "11.4.d")


def auto_points(result) -> dict[str, float]:
    return {q: result.questions[q].points for q in AUTO}


SOLUTION_POINTS = {"11.4.a": 1.0, "11.4.b": 1.0, "11.4.c": 1.0, "11.4.d": 0.5}


def memory_kb(field: str = "VmHWM") -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


@pytest.fixture(autouse=True)
def private_tmp(tmp_path, monkeypatch):  # tmp_path first: pytest makes its basetemp lazily
    """Scratch folders go to a private temp dir, which must be empty again after each test.
    (Short: a kernel's IPC socket paths must stay under 107 bytes.)"""
    tmp = Path(tempfile.mkdtemp(prefix="hostile-", dir="/tmp"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    try:
        yield tmp
        assert sorted(p.name for p in tmp.iterdir()) == [], "a scratch folder was left behind"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def ctx():
    return quick_context(cell_timeout=5, notebook_timeout=60, memory_mb=3072, max_file_mb=64)


def grade(key: str, ctx, limit: float, path: Path | None = None):
    path = path or fixture(key)
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    t0 = time.monotonic()
    result = grade_submission(path, ctx)
    seconds = time.monotonic() - t0
    allowed = limit * slowness()
    assert seconds < allowed, f"{key} took {seconds:.1f} s (bound {allowed:.0f} s at this load)"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before, "the submission was changed"
    assert result.status == "graded", (result.message, result.tutor_detail)
    return result


def codes(result) -> list[str]:
    return [f.code for f in result.flags]


def fault_cell(result):
    """The outcome of the hostile cell (the first cell whose status is not ok, or the one named)."""
    return next(c for c in result.cells if c["status"] != "ok")


# -- kernel faults: flag, time, points ----------------------------------------------------------
@pytest.mark.parametrize("key, flag, limit", [
    ("infinite_loop", "cell.timeout", 30),
    ("long_sleep", "cell.timeout", 30),
    # print_flood, the third runaway cell: test_print_flood_... below (graded once for both).
])
def test_runaway_cell_is_stopped_and_the_next_cells_run(key, flag, limit, ctx):
    assert_runaway_stopped(grade(key, ctx, limit), flag)


def assert_runaway_stopped(result, flag: str) -> None:
    assert codes(result) == [flag]
    assert fault_cell(result)["status"] == "timeout"
    assert auto_points(result) == SOLUTION_POINTS
    assert all(c["status"] == "ok" for c in result.cells if c is not fault_cell(result))


def test_input_is_an_error_not_a_hang(ctx):
    result = grade("input", ctx, 20)
    assert codes(result) == []
    assert "StdinNotImplementedError" in fault_cell(result)["error"]
    assert auto_points(result) == SOLUTION_POINTS


def test_sys_exit_leaves_the_kernel_running(ctx):
    result = grade("sys_exit", ctx, 20)
    assert codes(result) == []
    assert fault_cell(result)["error"].startswith("SystemExit")
    assert auto_points(result) == SOLUTION_POINTS


@pytest.mark.parametrize("key", ["os_exit", "segfault"])
def test_dead_kernel_is_restarted_and_functions_before_and_after_are_graded(key, ctx):
    result = grade(key, ctx, 40)
    assert codes(result) == ["kernel.died"]
    assert "restarted" in result.flags[0].message
    assert fault_cell(result)["status"] == "died"
    assert auto_points(result) == SOLUTION_POINTS


def test_memory_bomb_is_stopped_by_the_address_space_limit(ctx):
    hwm = memory_kb()
    result = grade("memory_bomb", ctx, 40)
    bad = [c for c in result.cells if c["status"] != "ok"]
    assert len(bad) == 2
    assert bad[0]["error"].startswith("MemoryError")           # 50 GiB at once
    assert bad[1]["error"].startswith("MemoryError") or bad[1]["status"] == "died"
    assert set(codes(result)) <= {"kernel.died"}
    assert auto_points(result) == SOLUTION_POINTS
    assert memory_kb() - hwm < 300_000, "the grader's own memory grew"


def test_spawn_bomb_is_stopped_by_the_process_limit(ctx):
    # (os.fork() in a loop: test_parallel_batch_with_a_fork_bomb)
    result = grade("spawn_bomb", ctx, 60)
    cell = fault_cell(result)
    assert cell["status"] in ("timeout", "died") or "BlockingIOError" in cell["error"] \
        or "Resource temporarily unavailable" in cell["error"]
    assert set(codes(result)) <= {"cell.timeout", "kernel.died"}
    assert auto_points(result) == SOLUTION_POINTS


def test_file_bomb_is_stopped_by_the_file_size_limit(ctx):
    result = grade("file_bomb", ctx, 30)
    assert codes(result) == []
    assert "File too large" in fault_cell(result)["error"]
    assert auto_points(result) == SOLUTION_POINTS


def test_print_flood_is_stopped_and_keeps_grader_memory_and_report_small(ctx):
    """A runaway cell like those above, which also prints as fast as it can (one grading for both
    claims). The output is cut in the kernel, so its output channel keeps working (test_execute)."""
    from grader.pages.report import render_report
    hwm = memory_kb()
    result = grade("print_flood", ctx, 60)
    assert_runaway_stopped(result, "cell.timeout")
    assert memory_kb() - hwm < 300_000, "the grader's own memory grew"
    assert len(render_report(result)) < 400_000
    assert len(json.dumps(result.to_json())) < 100_000


def test_forged_comparisons_get_the_points_of_the_wrong_functions(ctx):
    result = grade("forged_checks", ctx, 40)
    # the JSON-forging cell broke the kernel's messages: reported as a crash, skipped on the re-run
    assert any(f.code == "kernel.died" for f in result.flags)
    assert result.points == 0.0
    assert auto_points(result) == {q: 0.0 for q in AUTO}
    assert not any(c.passed for q in AUTO for c in result.questions[q].cases)


def test_fake_grader_output_changes_nothing(ctx, capfd):
    from grader.pages.report import render_report
    result = grade("fake_output", ctx, 20)
    assert auto_points(result) == SOLUTION_POINTS and result.points == FULL
    captured = capfd.readouterr()
    assert "FAKE-FD" not in captured.out + captured.err       # nothing on the tutor's terminal
    html = render_report(result)
    assert '<div class="total">10 / 10' not in html and "<script>alert" not in html


def test_background_threads_and_atexit_change_only_their_own_kernel(ctx, tmp_path):
    (tmp_path / "bystander.txt").write_text("mine")
    before = tree_snapshot(tmp_path, tmp_path / "none")
    result = grade("background", ctx, 40)
    assert auto_points(result) == SOLUTION_POINTS
    assert tree_snapshot(tmp_path, tmp_path / "none") == before


def test_snooping_finds_nothing(ctx, tmp_path):
    # The stored notebook probes "__CHECKOUT__"; this checkout's own path is written in here, so the
    # probe looks where the grader is on this machine, wherever it was cloned.
    here = tmp_path / fixture("snoop").name
    here.write_text(fixture("snoop").read_text(encoding="utf-8").replace("__CHECKOUT__", str(ROOT)),
                    encoding="utf-8")
    assert str(ROOT) in here.read_text(encoding="utf-8")
    result = grade("snoop", ctx, 40, here)
    error = fault_cell(result)["error"]
    assert "SNOOP-DONE: nothing leaked" in error, error
    assert auto_points(result) == SOLUTION_POINTS


def test_planted_links_are_never_followed(ctx):
    watched = [Path("/etc/passwd"), Path("/root")]
    before = [(p.stat().st_uid, p.stat().st_mode, p.stat().st_mtime_ns) for p in watched]
    result = grade("symlinks", ctx, 30)
    assert auto_points(result) == SOLUTION_POINTS
    assert [(p.stat().st_uid, p.stat().st_mode, p.stat().st_mtime_ns) for p in watched] == before


def test_result_too_large_is_refused_not_loaded(ctx, tmp_path):
    nb = solution()
    add_code(nb, "import torch\n_huge = torch.zeros(1, dtype=torch.float64).expand(4_000_000)\n"
                 "def lstm_cell(x, h, c, W_ih, W_hh, b_ih, b_hh):\n    return tuple([_huge] * 16)\n")
    path = write_notebook(nb, tmp_path / "subs" / "Lovelace_2571234_Turing_2579876.ipynb")
    hwm = memory_kb()
    t0 = time.monotonic()
    result = grade_submission(path, ctx)
    assert time.monotonic() - t0 < 60 * slowness()
    assert result.status == "graded"
    assert result.questions["11.4.c"].points == 0.5          # tree_encode only
    assert memory_kb() - hwm < 300_000


# -- batches ---------------------------------------------------------------------------------------
def short_rubric(path: Path) -> Path:
    text = Path(DEFAULT_RUBRIC).read_text(encoding="utf-8")
    for key, value in (("cell_timeout", 5), ("notebook_timeout", 60), ("memory_mb", 3072), ("max_file_mb", 64)):
        text, n = re.subn(rf"(?m)^{key}\s*=\s*\d+", f"{key} = {value}", text)
        assert n == 1, key
    path.write_text(text, encoding="utf-8")
    return path


GOOD = ["GoodA", "GoodB", "GoodC", "GoodD", "GoodE"]


def good_submissions(folder: Path) -> list[Path]:
    """Five good submissions with their own groups and small differences."""
    paths = []
    for k, case in enumerate(GOOD):
        nb = solution()
        a, b = f"{2580000 + k}", f"{2590000 + k}"
        set_group(nb, [(f"Ada {case} Lovelace", a, f"ada{k}@uni.example"), ("Alan Turing", b, "alan@uni.example")])
        if k == 1:
            add_code(nb, "print('hello from B')")
        if k == 2:
            add_code(nb, "def tree_encode(tree, embed, W, b):\n    return b * 0\n")   # fewer points
        if k == 3:
            add_code(nb, "import numpy as np\nnp.random.seed(0)\n", 3)
        paths.append(write_notebook(nb, folder / f"{case}_{a}_Turing_{b}.ipynb"))
    return paths


def tree_snapshot(root: Path, skip: Path) -> dict[str, tuple[int, str]]:
    out = {}
    for p in sorted(root.rglob("*")):
        if p == skip or skip in p.parents or not p.is_file():
            continue
        out[str(p.relative_to(root))] = (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
    return out


def test_hostile_submissions_lose_nothing_for_the_good_ones(tmp_path, private_tmp, monkeypatch):
    from grader.batch.run import BatchSettings, run_batch
    rubric = short_rubric(tmp_path / "rubric.toml")
    subs = tmp_path / "subs"
    good = good_submissions(subs)
    hostile = []
    for key in ("os_exit", "infinite_loop", "print_flood", "snoop", "memory_bomb"):
        hostile.append(subs / FIXTURES[key].filename)
        hostile[-1].write_bytes(fixture(key).read_bytes())
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)

    alone = run_batch([str(p) for p in good], BatchSettings.make(tmp_path / "alone", str(rubric)))
    before = tree_snapshot(tmp_path, tmp_path / "mixed")
    t0 = time.monotonic()
    mixed = run_batch([str(subs)], BatchSettings.make(tmp_path / "mixed", str(rubric)))
    seconds = time.monotonic() - t0
    assert seconds < 180 * slowness()
    # The submissions, and everything outside the output folder, are unchanged.
    assert tree_snapshot(tmp_path, tmp_path / "mixed") == before
    assert list(cwd.iterdir()) == []
    by_name = {r["submission"]: r for r in mixed.results}
    assert len(by_name) == 10
    for r in alone.results:
        other = by_name[r["submission"]]
        assert other["status"] == r["status"] == "graded"
        assert other["points"] == r["points"]
        assert {q: v["points"] for q, v in other["questions"].items()} == \
               {q: v["points"] for q, v in r["questions"].items()}
        assert other["flags"] == r["flags"]
    assert [r["points"] for r in alone.results] == [FULL, FULL, FULL - 0.5, FULL, FULL]
    for key in ("os_exit", "infinite_loop", "print_flood", "snoop", "memory_bomb"):
        r = by_name[FIXTURES[key].filename]
        assert r["status"] == "graded" and r["points"] == FULL, (key, r["flags"])
        saved = json.loads((tmp_path / "mixed" / Path(r["submission"]).stem / "result.json").read_text())
        assert saved["points"] == FULL
    snoop = by_name[FIXTURES["snoop"].filename]
    assert snoop["flags"] == []
    csv = (tmp_path / "mixed" / "grades.csv").read_text()
    assert csv.count("\n") == 1 + 2 * 10


def cli(subs: Path, out: Path, rubric: Path, tmp: Path) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", TMPDIR=str(tmp))
    return subprocess.Popen([sys.executable, "-m", "grader.cli.main", "run", str(subs), "-o", str(out),
                             "--rubric", str(rubric)], cwd=str(ROOT), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def test_killed_batch_resumes_where_it_stopped(tmp_path):
    rubric = short_rubric(tmp_path / "rubric.toml")
    subs = tmp_path / "subs"
    good_submissions(subs)
    (subs / FIXTURES["os_exit"].filename).write_bytes(fixture("os_exit").read_bytes())
    hashes = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in subs.iterdir()}

    # The CLI's own temp dir: short (IPC socket paths are limited), private, checked at the end.
    tmp = Path(tempfile.mkdtemp(prefix="hk-", dir="/tmp"))
    try:
        _killed_batch(tmp_path, subs, rubric, hashes, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _killed_batch(tmp_path: Path, subs: Path, rubric: Path, hashes: dict, tmp: Path) -> None:
    reference_run = cli(subs, tmp_path / "whole", rubric, tmp)
    assert reference_run.wait(timeout=240) == 0

    out = tmp_path / "out"
    first = cli(subs, out, rubric, tmp)
    deadline = time.monotonic() + 120
    while not list(out.glob("*/result.json")):
        assert first.poll() is None, "the batch ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.1)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=30)
    done = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.glob("*/result.json")}
    assert 1 <= len(done) < 6

    left_by_kill = list(tmp.iterdir())
    second = cli(subs, out, rubric, tmp)
    assert second.wait(timeout=240) == 0
    # The killed run's scratch folder is swept up by the next run.
    assert not [p for p in left_by_kill if p.exists()]
    assert list(tmp.iterdir()) == []
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in done} == done, "finished ones were graded again"
    assert len(list(out.glob("*/result.json"))) == 6

    def rows(path: Path) -> list[str]:
        return sorted(path.read_text().splitlines())
    assert rows(out / "grades.csv") == rows(tmp_path / "whole" / "grades.csv")
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in subs.iterdir()} == hashes
    # Nothing was written beside the output folders.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "rubric.toml", "subs", "whole"]


def test_parallel_batch_with_a_fork_bomb(tmp_path):
    """os.fork() in a loop, graded beside a good submission (two kernels at once): the
    process limit stops it, the kernel is restarted, and the other kernel is not starved."""
    from grader.batch.run import BatchSettings, run_batch
    rubric = short_rubric(tmp_path / "rubric.toml")
    subs = tmp_path / "subs"
    good = good_submissions(subs)[:1]
    bomb = subs / FIXTURES["fork_bomb"].filename
    bomb.write_bytes(fixture("fork_bomb").read_bytes())
    t0 = time.monotonic()
    outcome = run_batch([str(bomb)] + [str(p) for p in good], BatchSettings.make(tmp_path / "out", str(rubric), jobs=2))
    assert time.monotonic() - t0 < 120 * slowness()
    by_name = {r["submission"]: r for r in outcome.results}
    assert by_name[good[0].name]["points"] == FULL and by_name[good[0].name]["flags"] == []
    fork = by_name[bomb.name]
    assert fork["status"] == "graded" and fork["points"] == FULL
    assert {f["code"] for f in fork["flags"]} <= {"cell.timeout", "kernel.died"} and fork["flags"]


# -- round 2 (issue 10): caps, budgets and the kernel's sockets ---------------------------------
def test_many_name_parts_is_a_group_finding_and_costs_no_time(ctx):
    result = grade("many_name_parts", ctx, 60)
    assert "group.missing" in codes(result)
    assert "characters long" in next(f.message for f in result.flags if f.code == "group.missing")
    assert auto_points(result) == SOLUTION_POINTS


def test_long_answers_are_read_in_bounded_time(ctx):
    result = grade("long_answer", ctx, 90)
    answer = result.questions["11.3.2"].answer
    assert any("only the first" in n for n in answer.notes)
    assert "citation.missing" in [f.code for f in result.flags if f.question == "11.2.1"]
    assert auto_points(result) == SOLUTION_POINTS


def test_one_attachment_referenced_100_times_is_inlined_once(ctx):
    from grader.pages.report import render_report
    hwm = memory_kb()
    result = grade("attachment_flood", ctx, 60)
    html = render_report(result)
    assert html.count("data:image/png;base64,") == 1
    assert len(html) < 3_000_000
    answer = result.to_json()["questions"]["11.3.2"]["answer"]
    assert "page.html" not in json.dumps(answer["attachments"])
    assert any("page.html" in n and "not a PNG" in n for n in answer["notes"])
    assert memory_kb() - hwm < 300_000, "the grader's own memory grew"


def test_metadata_counts_against_the_output_cap(ctx):
    hwm = memory_kb()
    result = grade("metadata_flood", ctx, 300)  # 1.2 GB pass through ZeroMQ: generous on a loaded machine
    assert memory_kb() - hwm < 400_000, "the grader's own memory grew"
    assert len(json.dumps(result.to_json())) < 200_000
    assert auto_points(result) == SOLUTION_POINTS


def test_outputs_of_many_cells_are_capped_for_the_whole_notebook(private_tmp):
    """600 cells printing 19 KB each: only max_outputs_mb is kept, then one note per cell."""
    from grader.kernel.execute import KernelSession
    from grader.submission.notebook import parse_notebook
    context = quick_context(cell_timeout=5, notebook_timeout=120, max_outputs_mb=1.0)
    nb = parse_notebook(fixture("output_flood").read_bytes(), context.rubric.limits)
    with KernelSession(context.sandbox, context.rubric.limits) as session:
        run = session.run_notebook(nb)
    assert sum(c.status == "ok" for c in run.cells) > 600
    stored = sum(len(json.dumps(out)) for c in nb.cells if c.cell_type == "code" for out in c.outputs)
    assert stored < 1_000_000 + 600 * 200
    assert any("[output dropped" in out.get("text", "") for c in nb.cells if c.cell_type == "code"
               for out in c.outputs)


def test_a_kernel_that_dies_on_every_call_ends_quickly(ctx):
    t0 = time.monotonic()
    result = grade("death_loop", ctx, 120)
    assert "kernel.died" in codes(result)
    died = [f.message for f in result.flags if f.code == "kernel.died"]
    assert any("could not be restarted" in m or "not started again" in m for m in died), died
    # Every call of the grader would die too: nothing can be called, nothing is restarted again.
    assert auto_points(result) == {q: 0.0 for q in AUTO}
    assert time.monotonic() - t0 < 120 * slowness()


def test_the_submission_budget_covers_restarts_and_calls():
    """A total budget smaller than the notebook's timeout ends a death loop of sleeping cells."""
    nb = solution(fast=True)
    add_code(nb, "import time\ntime.sleep(3)\n", 3)
    add_code(nb, "import os\nget_ipython().events.register('post_run_cell', lambda *a: os._exit(1))\n")
    context = quick_context(cell_timeout=10, notebook_timeout=600, submission_timeout=20, max_restarts=50)
    with tempfile.TemporaryDirectory(dir="/tmp") as d:
        path = write_notebook(nb, Path(d) / "Lovelace_2571234_Turing_2579876.ipynb")
        t0 = time.monotonic()
        result = grade_submission(path, context)
        seconds = time.monotonic() - t0
    assert seconds < 20 + 60, f"{seconds:.0f} s"
    assert {"kernel.died"} <= set(codes(result))


def test_planted_socket_links_are_never_connected(ctx):
    """The kernel replaces its ZeroMQ sockets with links to a host socket and exits (and plants
    again from a startup file after the restart): the grader must never connect there."""
    import socket
    import threading

    from make_hostile_fixtures import PLANTED_TARGET
    target = Path(PLANTED_TARGET)
    target.unlink(missing_ok=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(target))
    os.chmod(target, 0o777)
    listener.listen(64)
    listener.settimeout(0.2)
    connections: list[int] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
                connections.append(1)
                conn.close()
            except OSError:
                continue
    watcher = threading.Thread(target=accept, daemon=True)
    watcher.start()
    try:
        result = grade("socket_links", ctx, 120)
        time.sleep(1.0)  # ZeroMQ would reconnect within a fraction of a second
    finally:
        stop.set()
        watcher.join(5)
        listener.close()
        target.unlink(missing_ok=True)
    assert connections == [], "the grader connected to the planted host socket"
    assert "kernel.died" in codes(result)
    assert result.questions["11.4.a"].points == 1.0


def test_subnormal_gradient_norms_are_drawn(ctx):
    # On the public examples: a hidden case's report draws no curve of the student's (it could
    # carry the hidden inputs out, grader/checks/compare.py's redacted_hidden).
    import dataclasses

    from grader.pages.report import render_report
    result = grade("tiny_norms", dataclasses.replace(ctx, public=True, secret=None), 60)
    html = render_report(result)
    assert "could not be drawn" not in html
    assert "case 1: gradient norms" in html and "1e-324" in html


def test_a_raw_message_nested_100000_deep_stops_only_that_kernel(ctx):
    result = grade("raw_deep_message", ctx, 60)
    assert codes(result) == ["kernel.died"]
    assert fault_cell(result)["status"] == "died"
    assert auto_points(result) == SOLUTION_POINTS


# -- round 3 (issue 20): contract rules that look more than once ---------------------------------
@pytest.mark.parametrize("key", ["late_wipe", "next_call_wipe"])
def test_params_changed_later_cost_tbptt_grads_and_nothing_else(key, ctx):
    """Right gradients, the caller's params wiped later (a thread after 0.5 s, or the next call):
    tbptt_grads' cases fail on the re-check; every other function keeps its points."""
    start = memory_kb()
    result = grade(key, ctx, 240)
    cases = [c for c in result.questions["11.4.d"].cases if c.function == "tbptt_grads"]
    assert cases and all(not c.passed and c.points == 0.0 for c in cases), [c.message for c in cases]
    assert all("leaves its arguments as it found them" in c.message for c in cases)
    if key == "late_wipe":
        assert all("leaves no threads or processes running" in c.message for c in cases)
    assert auto_points(result) == {**SOLUTION_POINTS, "11.4.d": 0.0}
    assert "code.not_in_notebook" not in codes(result)  # every function that ran is a cell's
    print(f"{key}: graded in {result.seconds:.1f} s, grader peak memory {memory_kb() / 1024:.0f} MB "
          f"(+{(memory_kb() - start) / 1024:.0f} MB)")


# -- round 3 (issue 20): the recall verdict ------------------------------------------------------
def test_reading_the_relabelling_off_one_batch_earns_nothing_for_train_recall(ctx):
    """100 % held-out accuracy from a lookup read off one batch, an untrained LSTM as decoy:
    0 for train_recall (the grader runs the LSTM itself), nothing else lost."""
    start = memory_kb()
    result = grade("recall_peek", ctx, 300)
    case = next(c for c in result.questions["11.4.d"].cases if c.function == "train_recall")
    assert not case.passed and case.points == 0.0
    assert "not through what an LSTM learned" in case.message and "names the first token for only" in case.message
    assert result.recall is not None and result.recall.lstm_accuracy == 1.0
    assert auto_points(result) == SOLUTION_POINTS
    print(f"recall_peek: graded in {result.seconds:.1f} s, grader peak memory {memory_kb() / 1024:.0f} MB "
          f"(+{(memory_kb() - start) / 1024:.0f} MB)")


def test_a_cheat_bound_by_exec_after_an_honest_def_is_flagged_and_earns_nothing(ctx):
    """The honest `def train_recall` stays in the notebook; an encoded exec in a later cell binds
    the cheat. The tutor is told the code shown is not the code that ran; the cheat earns 0."""
    start = memory_kb()
    result = grade("recall_exec", ctx, 300)
    flagged = [f for f in result.flags if f.code == "code.not_in_notebook"]
    assert [f.question for f in flagged] == ["11.4.d"] and "`train_recall` that ran" in flagged[0].message
    case = next(c for c in result.questions["11.4.d"].cases if c.function == "train_recall")
    assert not case.passed and case.points == 0.0 and "not through what an LSTM learned" in case.message
    assert auto_points(result) == SOLUTION_POINTS
    print(f"recall_exec: graded in {result.seconds:.1f} s, grader peak memory {memory_kb() / 1024:.0f} MB "
          f"(+{(memory_kb() - start) / 1024:.0f} MB)")
