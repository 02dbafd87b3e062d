"""`grade --cluster` on Dask distributed (grader/batch/cluster.py): the same results as -j 2, a worker
killed mid-task, a worker whose setup differs, a scheduler that cannot be reached."""
from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from builders import GOOD_NAME, ROOT, BatchOfThree, set_group, solution, write_notebook

from grader.batch.cluster import (
    Fingerprint,
    check_scheduler,
    connect,
    data_only_client,
    differences,
    executor,
    fingerprint,
    grade_remote,
    grade_task,
    local_cluster,
    no_unpickling,
    task_mac,
)
from grader.batch.cluster_tls import course_security, credentials_dir, make_credentials
from grader.batch.daskproc import DASK_SETTINGS, dask_env, local_env, parse_address
from grader.batch.run import BatchSettings, run_batch
from grader.errors import ClusterError, UsageError
from grader.rubric import load_rubric


@pytest.fixture(autouse=True, scope="module")
def _no_resource_tracker_left() -> Iterator[None]:
    """A LocalCluster starts multiprocessing's resource tracker in this (the test) process; it
    is stopped after this module, so later tests that count this process's children find none
    of these tests' processes."""
    yield
    from multiprocessing import resource_tracker
    resource_tracker._resource_tracker._stop()


@pytest.fixture
def course_credentials() -> Path:
    """The course's cluster credentials beside the tests' course secret (conftest.py), made once."""
    folder = credentials_dir()
    if not (folder / "ca.pem").exists():
        make_credentials()
    return folder


def strip(r: dict[str, Any]) -> dict[str, Any]:
    """A result without its timings, which differ from run to run."""
    r = {k: v for k, v in r.items() if k != "seconds"}
    r["cells"] = [{k: v for k, v in c.items() if k != "seconds"} for c in r.get("cells", [])]
    if "recall" in r:
        r["recall"] = {k: v for k, v in r["recall"].items() if not k.endswith("seconds")}
    return r


# -- without a cluster ----------------------------------------------------------------------------
def test_addresses_are_local_n_or_a_scheduler_and_nothing_else() -> None:
    assert parse_address("local:2") == ("local", 2)
    assert parse_address("tls://scheduler.example:8786") == ("remote", 0)
    assert parse_address("tls://10.0.0.5:8786") == ("remote", 0)
    for bad in ("local:0", "local:x", "8786", "http://h:8786", "tls://h", "local:2; rm -rf /"):
        with pytest.raises(UsageError, match="--cluster"):
            parse_address(bad)


def test_every_difference_is_named_with_both_sides() -> None:
    mine = Fingerprint("0.1.0", "a" * 64, "2.13.0", True)
    assert differences(mine, mine) == []
    theirs = Fingerprint("0.2.0", "b" * 64, "2.12.1", False)
    found = differences(mine, theirs)
    assert len(found) == 4
    assert "project version: coordinator 0.1.0, worker 0.2.0" in found
    assert any("rubric sha256" in d and "aaaa" in d and "bbbb" in d for d in found)
    assert "torch version: coordinator 2.13.0, worker 2.12.1" in found
    keyed = Fingerprint("0.1.0", "a" * 64, "2.13.0", True, "1234abcd5678ef90")
    assert differences(keyed, Fingerprint("0.1.0", "a" * 64, "2.13.0", True, "")) == [
        "course secret: the worker has none (copy the coordinator's secret file there, see grader/checks/secret.py)"]
    other = differences(keyed, Fingerprint("0.1.0", "a" * 64, "2.13.0", True, "ffff0000ffff0000"))
    assert len(other) == 1 and other[0].startswith("course secret: coordinator 1234abcd, worker ffff0000")
    # a sandboxed worker under an unsandboxed coordinator is no difference that matters
    assert differences(Fingerprint("0.1.0", "a" * 64, "2.13.0", False), mine) == []


def test_cluster_and_jobs_together_are_a_usage_error(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from grader.cli.main import EXIT_USAGE, main
    sub = tmp_path / f"{GOOD_NAME}.ipynb"
    sub.write_text("{}")
    result = CliRunner().invoke(main, [str(sub), "--cluster", "local:2", "-j", "2", "-o", str(tmp_path / "o")])
    assert result.exit_code == EXIT_USAGE
    assert "-j does not apply with --cluster" in result.output


def test_a_task_refuses_a_file_name_that_is_a_path_and_bytes_that_do_not_match(monkeypatch: pytest.MonkeyPatch,
                                                                                tmp_path: Path) -> None:
    monkeypatch.setenv("SHEET11_SANDBOX", "none")
    import hashlib
    data = b"{}"
    with pytest.raises(ValueError, match="sha256"):
        grade_task("A_1_B_2.ipynb", data, "0" * 64, {"folder": "A_1_B_2"})
    for name in ("../../etc/x.ipynb", "..", "a/b.ipynb"):
        with pytest.raises(ValueError, match="plain file name"):
            grade_task(name, data, hashlib.sha256(data).hexdigest(), {"folder": "x"})
    # as a task, it never raises: the coordinator gets a signed error record
    from grader.checks.secret import load_secret
    expected = fingerprint(load_rubric(), False).to_json()
    job = {"folder": "x"}
    mac = task_mac(load_secret(), "k", "a/b.ipynb", "0" * 64, job, expected)
    record = json.loads(grade_remote("k", "a/b.ipynb", data, "0" * 64, job, expected, mac))
    assert record["kind"] == "error" and "sha256" in json.loads(record["body"])["detail"]


def test_dask_settings_become_the_environment_variables_dask_reads() -> None:
    import dask
    env = dask_env({"distributed.admin.tick.interval": "1s", "distributed.worker.profile.enabled": False})
    assert env == {"DASK_DISTRIBUTED__ADMIN__TICK__INTERVAL": "1s",
                   "DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED": "False"}
    # Read back by Dask itself, as a worker process does when it starts.
    collected = dask.config.collect_env(dask_env())
    for key, value in DASK_SETTINGS.items():
        assert dask.config.get(key, config=collected) == value, key
    assert set(dask_env()) <= set(local_env(None, "auto"))


class _Scheduler:
    def __init__(self, saturation: float) -> None:
        self.saturation = saturation

    def run_on_scheduler(self, function: Any) -> float:
        return self.saturation


def test_a_scheduler_that_binds_tasks_to_busy_workers_is_named_with_what_to_do(
        caplog: pytest.LogCaptureFixture) -> None:
    assert check_scheduler(_Scheduler(1.0)) is True
    assert not caplog.records
    assert check_scheduler(_Scheduler(1.1)) is False
    assert "start it with `grade scheduler`" in caplog.text


def test_grade_scheduler_is_dask_scheduler_with_the_grading_settings(course_credentials: Path) -> None:
    from grader.batch.daskproc import scheduler_argv, scheduler_env
    assert scheduler_argv(8786)[1:] == [
        "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "8786", "--protocol", "tls",
        "--no-dashboard", "--dashboard-address", "127.0.0.1:0", "--tls-ca-file", str(course_credentials / "ca.pem"),
        "--tls-cert", str(course_credentials / "scheduler.pem"), "--tls-key",
        str(course_credentials / "scheduler-key.pem")]
    assert scheduler_env()["DASK_DISTRIBUTED__SCHEDULER__WORKER_SATURATION"] == "1.0"
    assert scheduler_env()["DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION"] == "True"


# -- with a cluster -------------------------------------------------------------------------------
@pytest.fixture
def cluster_of_two() -> Any:
    """A scheduler with two single-threaded grading workers (as `grade scheduler` and `grade
    worker` start them, with a CA of their own) and a data-only client of it."""
    with local_cluster(2, None, "auto") as (address, credentials), no_unpickling():
        client = data_only_client(address, course_security("client", credentials), 30)
        try:
            yield address, credentials, client
        finally:
            client.close()


@pytest.mark.slow
def test_a_local_cluster_runs_with_the_grading_settings_in_scheduler_and_workers() -> None:
    import dask

    def settings() -> dict[str, Any]:
        return {key: dask.config.get(key) for key in DASK_SETTINGS}

    def tick(dask_scheduler: Any) -> float:
        return float(dask_scheduler._tick_interval)

    with connect("local:2", None, "none") as client:
        assert check_scheduler(client) is True  # worker-saturation 1.0
        assert client.run_on_scheduler(tick) == 1.0
        on_workers = client.run(settings)
        assert len(on_workers) == 2
        assert all(got == DASK_SETTINGS for got in on_workers.values())


@pytest.mark.slow
@pytest.mark.xdist_group("batch_of_three")
def test_a_local_cluster_grades_exactly_as_two_local_jobs(tmp_path: Path, batch_of_three: BatchOfThree) -> None:
    # -j 2 is the shared run (conftest.py), which test_batch.py compares with -j 1.
    inputs, local, j2 = batch_of_three.inputs, batch_of_three.two, batch_of_three.two_dir
    remote = run_batch(inputs, BatchSettings.make(tmp_path / "cluster", grade_all=executor("local:2")))
    assert remote.graded_now == 3
    assert [strip(r) for r in remote.results] == [strip(r) for r in local.results]
    for r in remote.results:  # the files on the coordinator say the same
        written = json.loads((tmp_path / "cluster" / r["folder"] / "result.json").read_text())
        assert strip(written) == strip(r)
        assert (tmp_path / "cluster" / r["folder"] / "report.html").stat().st_size > 0
    assert (j2 / "grades.csv").read_text() == (tmp_path / "cluster" / "grades.csv").read_text()
    # resumed like -j N: nothing is graded again, so no cluster is even needed
    again = run_batch(inputs, BatchSettings.make(tmp_path / "cluster", grade_all=executor("local:2")))
    assert again.graded_now == 0 and again.skipped == 3


def _slow_submissions(tmp_path: Path, n: int, sleep: float) -> list[Path]:
    paths = []
    for i in range(n):
        a, b = f"{2_600_000 + 2 * i}", f"{2_600_001 + 2 * i}"
        nb = set_group(solution(fast=True), [(f"Kim{i} Alpha", a, f"a{i}@uni.example"),
                                             (f"Lee{i} Beta", b, f"b{i}@uni.example")])
        nb.cells.append(nbformat.v4.new_code_cell(f"import time\ntime.sleep({sleep})"))
        paths.append(write_notebook(nb, tmp_path / "in" / f"Alpha_{a}_Beta_{b}.ipynb"))
    return paths


@pytest.mark.slow
def test_a_worker_killed_mid_task_costs_nothing_and_each_submission_is_graded_once(
        tmp_path: Path, cluster_of_two: Any) -> None:
    address, credentials, client = cluster_of_two
    paths = _slow_submissions(tmp_path, 3, sleep=20)
    killed: list[int] = []

    def kill_a_busy_worker() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not killed:
            busy = [w for w, keys in client.processing().items() if keys]
            if busy:
                time.sleep(8)  # well inside the task: its kernel runs the notebook
                pid = client.run(os.getpid, workers=[busy[0]])[busy[0]]
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return
            time.sleep(0.5)

    killer = threading.Thread(target=kill_a_busy_worker)
    killer.start()
    out = tmp_path / "out"
    try:
        outcome = run_batch([str(p) for p in paths], BatchSettings.make(out, grade_all=executor(address, credentials=credentials)))
    finally:
        killer.join()
    assert killed, "no worker was busy to be killed"
    assert sorted(r["submission"] for r in outcome.results) == sorted(p.name for p in paths)
    assert all(r["status"] == "graded" for r in outcome.results), [r.get("message") for r in outcome.results]
    db = sqlite3.connect(out / "gradebook.sqlite")
    rows = db.execute("SELECT folder, COUNT(*) FROM results GROUP BY folder").fetchall()
    run_rows = db.execute("SELECT folder, COUNT(*) FROM run_results GROUP BY folder").fetchall()
    db.close()
    assert sorted(rows) == sorted(run_rows) == sorted((p.stem, 1) for p in paths)
    # the killed worker's grading process and kernel ended with it
    time.sleep(2)
    left = subprocess.run(["pgrep", "-P", str(killed[0])], capture_output=True, text=True).stdout.split()
    assert left == []


@pytest.mark.slow
def test_a_worker_with_another_rubric_is_refused_with_its_name_and_what_differs(tmp_path: Path) -> None:
    other = tmp_path / "other.toml"
    text = (ROOT / "rubrics" / "sheet11.toml").read_text()
    other.write_text(text.replace("threshold = 0.9", "threshold = 0.8", 1))
    assert other.read_text() != text
    with local_cluster(1, str(other), "auto") as (address, credentials):
        paths = _slow_submissions(tmp_path, 1, sleep=0)
        with pytest.raises(ClusterError) as refused:
            run_batch([str(p) for p in paths], BatchSettings.make(tmp_path / "out", grade_all=executor(address, credentials=credentials)))
        message = str(refused.value)
        assert "rubric sha256" in message and ": rubric sha256" in message
        worker = message.split("\n")[1].strip().split(": rubric")[0]
        assert worker.startswith("tls://127.0.0.1:")
        assert "torch version:" not in message and "project version:" not in message
        # a worker that joins later refuses the task itself, with a `refused` record
        from grader.checks.secret import load_secret
        expected = fingerprint(load_rubric(), True).to_json()
        data = paths[0].read_bytes()
        import hashlib
        sha = hashlib.sha256(data).hexdigest()
        job = {"folder": paths[0].stem}
        with no_unpickling():
            client = data_only_client(address, course_security("client", credentials), 30)
            try:
                future = client.submit(grade_remote, "late-1", paths[0].name, data, sha, job, expected,
                                       task_mac(load_secret(), "late-1", paths[0].name, sha, job, expected),
                                       key="late-1", pure=False)
                record = json.loads(future.result())
            finally:
                client.close()
        assert record["kind"] == "refused" and record["worker"] == worker
        assert any("rubric sha256" in d for d in record["differences"])


@pytest.mark.slow
def test_an_unreachable_scheduler_exits_2_with_a_clear_message(tmp_path: Path, course_credentials: Path) -> None:
    sub = tmp_path / f"{GOOD_NAME}.ipynb"
    shutil.copyfile(ROOT / "tests" / "files" / "outdir" / f"{GOOD_NAME}.ipynb", sub)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run([sys.executable, "-m", "grader.cli.main", str(sub), "-o", str(tmp_path / "o"),
                          "--cluster", "tls://127.0.0.1:9", "--connect-timeout", "3"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 2, run.stderr
    assert "could not be reached within 3 s" in run.stderr
    assert "Traceback" not in run.stderr


def test_grade_worker_is_dask_worker_with_one_thread_and_refuses_without_a_sandbox(
        monkeypatch: pytest.MonkeyPatch, course_credentials: Path) -> None:
    import grader.kernel.sandbox
    from grader.batch.daskproc import worker_argv, worker_env
    from grader.errors import SandboxUnavailable
    argv = worker_argv("tls://sched.example:8786", 4, None, "none", host="10.1.2.3")
    assert argv[1:] == ["-m", "distributed.cli.dask_worker", "tls://sched.example:8786", "--nthreads", "1",
                        "--nworkers", "4", "--host", "10.1.2.3", "--protocol", "tls", "--no-dashboard",
                        "--dashboard-address", "127.0.0.1:0", "--tls-ca-file", str(course_credentials / "ca.pem"),
                        "--tls-cert", str(course_credentials / "worker.pem"), "--tls-key",
                        str(course_credentials / "worker-key.pem")]
    # by default it listens where the route to the scheduler leaves this machine, not everywhere
    assert worker_argv("tls://127.0.0.1:8786", 1, None, "none")[8:10] == ["--host", "127.0.0.1"]
    env = worker_env(None, "none")
    assert env["OMP_NUM_THREADS"] == "1" and env["SHEET11_SANDBOX"] == "none"
    assert env["DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION"] == "True"
    with pytest.raises(UsageError, match="scheduler's address"):
        worker_argv("local:2", 1, None, "none")
    monkeypatch.setattr(grader.kernel.sandbox, "_bwrap_problem", lambda: "bubblewrap (bwrap) is not installed")
    with pytest.raises(SandboxUnavailable, match="bubblewrap"):
        worker_argv("tls://sched.example:8786", 1, None, "bwrap")
