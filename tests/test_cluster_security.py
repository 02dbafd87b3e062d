"""The cluster mode's defences (grader/batch/cluster.py, grader/batch/cluster_tls.py, grader/cli/cluster.py):
mutual TLS under the course CA, tls:// only, loopback by default, per-run credentials for
local:N, results as MAC-signed JSON only, nothing from the cluster unpickled on the coordinator.
Loopback only."""
from __future__ import annotations

import hashlib
import json
import os
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from builders import ROOT

from grader.batch.cluster import (
    UNVERIFIED,
    PickleRefused,
    _collect,
    answer_mac,
    data_only_client,
    executor,
    fingerprint,
    grade_remote,
    local_cluster,
    no_unpickling,
    task_mac,
)
from grader.batch.cluster_tls import course_security, credentials_dir, make_credentials
from grader.batch.daskproc import parse_address
from grader.batch.run import Job, stopped_result
from grader.checks.secret import load_secret
from grader.errors import ClusterError, UsageError
from grader.result import SubmissionResult
from grader.rubric import load_rubric

PAYLOADS = ROOT / "tests" / "files" / "cluster"  # beside, not in, the generated hostile fixtures
sys.path.insert(0, str(PAYLOADS))
import cluster_payloads  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def _no_resource_tracker_left() -> Iterator[None]:
    yield
    from multiprocessing import resource_tracker
    resource_tracker._resource_tracker._stop()


@pytest.fixture
def course_credentials() -> Path:
    folder = credentials_dir()
    if not (folder / "ca.pem").exists():
        make_credentials()
    return folder


def _listening(pids: list[int]) -> list[str]:
    """The addresses the processes ``pids`` (and their children) listen on."""
    import psutil
    found = []
    for pid in pids:
        try:
            procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        for proc in procs:
            try:
                found += [c.laddr.ip for c in proc.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
            except psutil.NoSuchProcess:
                pass
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _refused_without_the_course_certificate(address: str) -> None:
    """A Dask client with a certificate of another CA, and one without TLS, cannot connect."""
    from distributed import Client
    from distributed.security import Security
    with pytest.raises((OSError, TimeoutError)):
        Client(address, security=Security.temporary(), timeout=4)
    with pytest.raises((OSError, TimeoutError)):
        Client(address.replace("tls://", "tcp://"), timeout=4)


# -- credentials ----------------------------------------------------------------------------------
def test_cluster_credentials_are_private_refuse_to_be_overwritten_and_say_what_to_copy(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from grader.cli.main import main
    secret = tmp_path / "course" / "secret"
    monkeypatch.setenv("SHEET11_SECRET_FILE", str(secret))
    made = CliRunner().invoke(main, ["cluster-credentials"])
    assert made.exit_code == 0, made.output
    folder = tmp_path / "course" / "cluster"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted(["ca.pem", "ca-key.pem", "scheduler.pem", "scheduler-key.pem", "worker.pem",
                            "worker-key.pem", "client.pem", "client-key.pem"])
    assert all(stat.S_IMODE((folder / n).stat().st_mode) == 0o600 for n in names)
    out = " ".join(made.output.split())
    assert f"Copy to every worker machine, into the same folder (beside its course secret), mode 0600: " \
           f"{folder / 'ca.pem'} {folder / 'worker.pem'} {folder / 'worker-key.pem'}" in out
    assert f"Never copy {folder / 'ca-key.pem'}" in out
    # the certificates chain to the course CA
    from cryptography import x509
    ca = x509.load_pem_x509_certificate((folder / "ca.pem").read_bytes())
    worker = x509.load_pem_x509_certificate((folder / "worker.pem").read_bytes())
    worker.verify_directly_issued_by(ca)
    before = (folder / "ca.pem").read_bytes()
    again = CliRunner().invoke(main, ["cluster-credentials"])
    assert again.exit_code == 2 and "--force" in again.output
    assert (folder / "ca.pem").read_bytes() == before
    forced = CliRunner().invoke(main, ["cluster-credentials", "--force"])
    assert forced.exit_code == 0 and (folder / "ca.pem").read_bytes() != before


def test_missing_or_readable_credentials_name_the_command_to_run(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="grade cluster-credentials"):
        course_security("client", tmp_path / "none")
    folder = make_credentials(tmp_path / "c")
    assert course_security("worker", folder).require_encryption is True
    os.chmod(folder / "worker-key.pem", 0o644)
    with pytest.raises(UsageError, match="chmod 600"):
        course_security("worker", folder)


def test_a_tcp_address_is_refused_with_what_to_do(tmp_path: Path) -> None:
    for address in ("tcp://127.0.0.1:8786", "tcp://scheduler.example:8786"):
        with pytest.raises(UsageError, match=r"use tls://HOST:PORT \(run `grade cluster-credentials`"):
            parse_address(address)
        with pytest.raises(UsageError, match="tls://"):
            executor(address)
    from click.testing import CliRunner

    from grader.cli.main import EXIT_USAGE, main
    sub = tmp_path / "A_1_B_2.ipynb"
    sub.write_text("{}")
    run = CliRunner().invoke(main, [str(sub), "--cluster", "tcp://127.0.0.1:8786", "-o", str(tmp_path / "o")])
    assert run.exit_code == EXIT_USAGE and "tls://" in run.output


# -- the scheduler and local:N on the network -----------------------------------------------------
@pytest.mark.slow
def test_grade_scheduler_binds_loopback_and_accepts_only_the_course_certificate(course_credentials: Path) -> None:
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-m", "grader.cli.main", "scheduler", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        address = f"tls://127.0.0.1:{port}"
        with no_unpickling():
            client = data_only_client(address, course_security("client"), 120)  # waits for it to start
            client.close()
        listening = _listening([proc.pid])
        assert port and listening and set(listening) == {"127.0.0.1"}, listening
        _refused_without_the_course_certificate(address)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        assert proc.stderr is not None
        proc.stderr.close()


@pytest.mark.slow
def test_local_n_joins_only_with_its_own_run_credentials_on_loopback(course_credentials: Path) -> None:
    from distributed import Client
    with local_cluster(1, None, "none") as (address, credentials):
        assert address.startswith("tls://127.0.0.1:")
        folder = credentials.parent
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700 and folder.stat().st_uid == os.getuid()
        assert stat.S_IMODE(credentials.stat().st_mode) == 0o700
        with no_unpickling():
            client = data_only_client(address, course_security("client", credentials), 60)
            try:
                client.wait_for_workers(1, timeout=180)
                import psutil
                pids = [p.pid for p in psutil.Process().children()]
                listening = _listening(pids)
                assert len(listening) >= 3 and set(listening) == {"127.0.0.1"}, listening  # scheduler, nanny, worker
            finally:
                client.close()
        _refused_without_the_course_certificate(address)
        # the course's own certificates are of another CA: not accepted by this run's cluster
        with pytest.raises((OSError, TimeoutError)):
            Client(address, security=course_security("client", course_credentials), timeout=4)
    assert not folder.exists()


# -- results as data only -------------------------------------------------------------------------
class _Future:
    def __init__(self, key: str, value: Any = None, error: BaseException | None = None) -> None:
        self.key, self.value, self.error = key, value, error

    def result(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.value


def _job(tmp_path: Path) -> Job:
    path = tmp_path / "Lovelace_2571234_Turing_2579876.ipynb"
    path.write_bytes(b"{}")
    return Job(path, path.stem, hashlib.sha256(b"{}").hexdigest(), None, None, "", {})


def _signed(secret: bytes, kind: str, key: str, sha256: str, rubric_sha256: str, body: dict[str, Any]) -> str:
    text = json.dumps(body)
    return json.dumps({"kind": kind, "key": key, "sha256": sha256, "rubric_sha256": rubric_sha256, "body": text,
                       "mac": answer_mac(secret, kind, key, sha256, rubric_sha256, text)})


def test_a_forged_answer_gives_an_error_result_not_the_forged_grade(tmp_path: Path) -> None:
    rubric = load_rubric()
    job = _job(tmp_path)
    secret = load_secret()
    honest = stopped_result(rubric, job, "x")
    from dataclasses import replace
    forged = replace(honest, status="graded", message="",
                     questions={k: replace(q, points=q.max_points) for k, q in honest.questions.items()})
    body = forged.to_json()

    def failed(j: Any, message: str, detail: str) -> SubmissionResult:
        return stopped_result(rubric, j, message, detail)

    def collect(value: Any = None, error: BaseException | None = None, key: str = "k1") -> SubmissionResult:
        return _collect(_Future(key, value, error), job, failed, secret, rubric.sha256)

    # the genuine answer is accepted (so the refusals below are for what was forged)
    good = collect(_signed(secret, "result", "k1", job.sha256, rubric.sha256, body))
    assert good.status == "graded" and good.points == rubric.max_points
    attempts = {
        "wrong MAC": _signed(b"not the course secret at all", "result", "k1", job.sha256, rubric.sha256, body),
        "other sha256": _signed(secret, "result", "k1", "f" * 64, rubric.sha256, body),
        "other rubric": _signed(secret, "result", "k1", job.sha256, "e" * 64, body),
        "other task": _signed(secret, "result", "k0", job.sha256, rubric.sha256, body),
        "MAC stripped": json.dumps({**json.loads(_signed(secret, "result", "k1", job.sha256, rubric.sha256, body)),
                                    "mac": ""}),
        "plain result JSON": json.dumps(body),
        "pickled payload": __import__("pickle").dumps(body),
        "an object": forged,
    }
    for what, answer in attempts.items():
        got = collect(answer)
        assert got.status == "error" and got.points == 0, what
        assert got.message == UNVERIFIED, what
    # a task that failed in Dask (its exception never read) is an error, and the batch goes on
    failed_task = collect(error=PickleRefused("x"))
    assert failed_task.status == "error" and "failed" in failed_task.message
    # a `refused` record stops the batch with the worker's words
    with pytest.raises(ClusterError, match="w1 refused"):
        collect(json.dumps({"kind": "refused", "worker": "w1", "differences": ["rubric sha256: a, b"]}))


def test_a_worker_grades_only_tasks_that_carry_the_course_mac(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHEET11_SANDBOX", "none")
    expected = fingerprint(load_rubric(), False).to_json()
    data = b"{}"
    sha = hashlib.sha256(data).hexdigest()
    job = {"folder": "A_1_B_2"}
    for mac in ("", "0" * 64, task_mac(b"another secret of some length", "k", "A_1_B_2.ipynb", sha, job, expected),
                task_mac(load_secret(), "k", "A_1_B_2.ipynb", sha, {"folder": "elsewhere"}, expected)):
        record = json.loads(grade_remote("k", "A_1_B_2.ipynb", data, sha, job, expected, mac))
        assert record["kind"] == "refused" and "MAC" in record["differences"][0]


def test_no_unpickling_closes_every_path_dask_unpickles_by_in_a_client(tmp_path: Path) -> None:
    import distributed.client
    from distributed.core import clean_exception
    from distributed.protocol import ToPickle, dumps, loads
    from distributed.protocol import pickle as dask_pickle
    message = dumps({"op": "key-in-memory", "x": ToPickle(cluster_payloads.Bomb(str(tmp_path)))})
    pickled = dask_pickle.dumps(cluster_payloads.Bomb(str(tmp_path)))
    with no_unpickling():
        # the __Pickled__ frames Dask decodes whatever the deserializers say
        assert isinstance(loads(message)["x"], PickleRefused)
        assert isinstance(distributed.client.loads(pickled), PickleRefused)  # key-in-memory's result type
        assert isinstance(distributed.client.pickle.loads(pickled), PickleRefused)  # warn events
        _, exc, _ = clean_exception(pickled)  # task errors, client.run errors
        assert isinstance(exc, PickleRefused)
        assert list(tmp_path.iterdir()) == []
        assert distributed.client.pickle.HIGHEST_PROTOCOL >= 5  # the rest of pickle is still there
    # outside it, Dask would have run the payload in this process: the guard is what stops it
    assert loads(message)["x"] == "marked"
    assert (tmp_path / str(os.getpid())).exists()


@pytest.mark.slow
def test_what_a_worker_sends_that_needs_pickle_is_not_unpickled_on_the_coordinator(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(PAYLOADS), os.environ.get("PYTHONPATH", "")]))
    folder = tmp_path / "marks"
    folder.mkdir()
    os.chmod(folder, 0o777)
    with local_cluster(1, None, "none") as (address, credentials), no_unpickling():
        client = data_only_client(address, course_security("client", credentials), 60)
        try:
            ok = client.submit(str.upper, "plain data", pure=False)
            assert ok.result(timeout=120) == "PLAIN DATA"  # plain data does arrive
            for task in (cluster_payloads.returns_a_bomb, cluster_payloads.raises_a_bomb):
                future = client.submit(task, str(folder), pure=False)
                with pytest.raises(Exception) as refused:
                    future.result(timeout=120)
                assert not isinstance(refused.value, cluster_payloads.BombError)
            assert client.submit(str.upper, "still there", pure=False).result(timeout=120) == "STILL THERE"
        finally:
            client.close()
    marks = {p.name for p in folder.iterdir()}
    assert marks, "the tasks did not run (the worker itself unpickles a raised exception once)"
    assert str(os.getpid()) not in marks  # nothing of theirs ran in this process


@pytest.mark.skipif(os.geteuid() != 0, reason="the refusal is for root")
def test_grade_worker_as_root_refuses_to_run_student_code_unconfined(course_credentials: Path) -> None:
    from click.testing import CliRunner

    from grader.cli.main import EXIT_USAGE, main
    run = CliRunner().invoke(main, ["worker", "tls://127.0.0.1:8786", "--sandbox", "none"])
    assert run.exit_code == EXIT_USAGE and "as root" in run.output
