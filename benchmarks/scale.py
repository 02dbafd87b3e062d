"""Course scale on one machine: thousands of submissions on tens of Dask workers, with the real
scheduler, the real coordinator and real worker processes, and a stand-in for the grading itself.

    python benchmarks/scale.py --submissions 2000 --workers 80 --kill-fraction 0.1

What is real: the Dask scheduler and the worker processes are started with the commands
``grade scheduler`` and ``grade worker`` use (grader/batch/daskproc.py: ``scheduler_argv``,
``worker_argv``; mutual TLS under a course CA and a course secret made for this run in a 0700
temporary folder, as ``--cluster local:N`` does); the coordinator is the ``grade`` command itself
(``grade run SUBMISSIONS -o OUT --cluster tls://...``, a process of its own: ``run_batch`` with the
cluster executor, its output folder, gradebook, progress lines, ``grades.csv``, ``summary.html``
and similarity). Each task is sent, MAC'd, checked, answered, signed and verified as in a real
batch.

What is simulated: each worker process loads benchmarks/scale_standin.py with Dask's
``--preload``; it replaces the worker-side grading function with one that sleeps for the
submission's duration and returns a valid graded result. The durations are drawn (seeded) from
the seconds of a real run's results: ``--gradebook PATH`` (the ``seconds`` of its graded results)
or benchmarks/scale_durations.json (12 submissions measured at ``-j 1``, source in the file),
divided by ``--time-compression``. The submissions are small generated notebooks (distinct bytes,
so distinct sha256) named ``Name_id.ipynb``.

Faults: once half of the submissions are done, the benchmark SIGKILLs ``--kill-fraction`` of the
worker processes (those busy with a submission first); their nannies start them again, as a
``grade worker`` does.

It ends with one line ``scale: {json}``: ``submissions``, ``workers``, ``makespan_s`` (from the
first submission's start on a worker to the coordinator's exit, its final writes included),
``ideal_s`` (the simulated work over the workers, or the longest submission, whichever is
larger), ``ratio``, ``lost`` (submissions without a graded result.json), ``graded_twice``
(submissions the coordinator recorded more than once: in its log, hence in the gradebook and
``grades.csv``), ``coordinator_peak_mb`` (peak RSS of the coordinator process),
``time_compression``; and more: ``startup_s`` (coordinator start to first submission),
``coordinator_cpu_s``, ``coordinator_cpu_ms_per_result``, ``killed``, ``restarted``,
``started_twice`` and ``finished_twice`` (stand-ins run again because their worker was killed,
before or after it finished but before its answer arrived: work redone, recorded once),
``error_results``, ``load_before``/``load_after`` (the machine's 1-minute load average).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
STANDIN = ROOT / "benchmarks" / "scale_standin.py"
DURATIONS = ROOT / "benchmarks" / "scale_durations.json"


def durations_from(gradebook: Path | None) -> tuple[list[float], str]:
    """Seconds per submission of a real run, and where they come from."""
    if gradebook is None:
        data = json.loads(DURATIONS.read_text())
        return [float(s) for s in data["seconds"]], f"{DURATIONS.name}: {data['source']}"
    db = sqlite3.connect(f"file:{gradebook}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT json_extract(result_json, '$.seconds') FROM results WHERE status='graded'").fetchall()
    finally:
        db.close()
    seconds = [float(s) for (s,) in rows if isinstance(s, (int, float)) and s > 0]
    if not seconds:
        sys.exit(f"{gradebook}: no graded result with its seconds; give a gradebook of a real run")
    return seconds, f"{gradebook}: {len(seconds)} graded results"


def _name(i: int) -> str:
    letters = ""
    n = i
    for _ in range(3):
        letters += "abcdefghijklmnopqrstuvwxyz"[n % 26]
        n //= 26
    return f"Stud{letters}_{1000000 + i}.ipynb"


def make_submissions(folder: Path, n: int) -> list[Path]:
    """``n`` small notebooks, distinct bytes each."""
    folder.mkdir(parents=True)
    paths = []
    for i in range(n):
        nb = {"nbformat": 4, "nbformat_minor": 5, "metadata": {},
              "cells": [{"cell_type": "code", "id": f"c{i}", "metadata": {}, "execution_count": None,
                         "outputs": [], "source": f"# submission {i}\nx = {i}\n"}]}
        path = folder / _name(i)
        path.write_text(json.dumps(nb))
        paths.append(path)
    return paths


def _sha256(path: Path) -> str:
    import hashlib
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_logs(log_dir: Path) -> tuple[dict[str, int], dict[str, int], dict[int, str], float | None]:
    """starts and dones per sha256, the submission each pid is busy with, the first start."""
    starts: dict[str, int] = {}
    dones: dict[str, int] = {}
    busy: dict[int, str] = {}
    first: float | None = None
    for path in log_dir.glob("log-*.jsonl"):
        for line in path.read_text().splitlines():
            try:
                e = json.loads(line)
            except ValueError:
                continue  # a line cut by a kill
            counter = starts if e["event"] == "start" else dones
            counter[e["sha256"]] = counter.get(e["sha256"], 0) + 1
            if e["event"] == "start":
                busy[e["pid"]] = e["sha256"]
                first = e["t"] if first is None else min(first, e["t"])
            else:
                busy.pop(e["pid"], None)
    return starts, dones, busy, first


def worker_pids(log_dir: Path) -> list[int]:
    return sorted(int(p.name[4:]) for p in log_dir.glob("pid-*"))


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    from grader.batch.cluster_local import stop_process_group
    stop_process_group(proc, timeout=30)


def _start_scheduler(work: Path, credentials: Any, cluster_log: Any, procs: list[subprocess.Popen[bytes]]) -> str:
    """The real Dask scheduler on loopback with the run's credentials; its address once it is up."""
    from grader.batch.daskproc import scheduler_argv, scheduler_env
    address_file = work / "scheduler.json"
    procs.append(subprocess.Popen(scheduler_argv(0, "127.0.0.1", credentials)
                                  + ["--scheduler-file", str(address_file)], env=scheduler_env(),
                                  stdin=subprocess.DEVNULL, stdout=cluster_log, stderr=subprocess.STDOUT,
                                  start_new_session=True))
    t0 = time.monotonic()
    address = ""
    while not address:
        if time.monotonic() - t0 > 120 or procs[0].poll() is not None:
            sys.exit("the scheduler did not start: " + (work / "cluster.log").read_text()[-2000:])
        try:
            address = str(json.loads(address_file.read_text())["address"])
        except (OSError, ValueError, KeyError):
            time.sleep(0.2)
    return address


def _start_workers(args: argparse.Namespace, address: str, credentials: Any, cluster_log: Any,
                   procs: list[subprocess.Popen[bytes]], log_dir: Path, work: Path, t0: float) -> None:
    """The workers, K per `dask worker` command (a machine of K cores), the commands started one
    after the other once the previous one's processes are up (80 imports of Dask and torch at
    once on two cores take longer than one after the other)."""
    from grader.batch.daskproc import worker_argv, worker_env
    left = args.workers
    started = 0
    while left:
        k = min(args.per_command, left)
        argv = worker_argv(address, k, None, "auto", host="127.0.0.1", credentials=credentials)
        procs.append(subprocess.Popen(argv + ["--preload", str(STANDIN)], env=worker_env(None, "auto"),
                                      stdin=subprocess.DEVNULL, stdout=cluster_log, stderr=subprocess.STDOUT,
                                      start_new_session=True))
        started += k
        left -= k
        while len(worker_pids(log_dir)) < started:
            if time.monotonic() - t0 > 900 or any(p.poll() is not None for p in procs):
                sys.exit("the workers did not start: " + (work / "cluster.log").read_text()[-3000:])
            time.sleep(0.5)


def _watch(coordinator: subprocess.Popen[bytes], args: argparse.Namespace,
           log_dir: Path) -> tuple[int, Any, int, list[int]]:
    """Wait for the coordinator, sampling its memory; SIGKILL ``--kill-fraction`` of the worker
    processes (busy ones first) once half the submissions are done. Returns the wait status, the
    coordinator's resource usage, its peak sampled RSS and the killed pids."""
    import psutil
    watched = psutil.Process(coordinator.pid)
    peak_sampled = 0
    killed: list[int] = []
    kill_n = round(args.kill_fraction * args.workers)
    while True:
        pid, status, usage = os.wait4(coordinator.pid, os.WNOHANG)
        if pid:
            return status, usage, peak_sampled, killed
        try:
            peak_sampled = max(peak_sampled, watched.memory_info().rss)
        except psutil.Error:
            pass
        if kill_n and not killed:
            _, dones, busy, _ = read_logs(log_dir)
            if len(dones) >= args.submissions // 2:
                pids = [p for p in worker_pids(log_dir) if alive(p)]
                chosen = [p for p in pids if p in busy][:kill_n]
                chosen += [p for p in pids if p not in chosen][:kill_n - len(chosen)]
                for p in chosen:
                    os.kill(p, signal.SIGKILL)
                killed = chosen
                print(f"scale: SIGKILLed {len(chosen)} worker processes "
                      f"({sum(p in busy for p in chosen)} busy) at {len(dones)} done", file=sys.stderr)
        time.sleep(0.2)


def _outcome(text: str, subs: list[Path], out: Path, dones: dict[str, int], work: Path) -> tuple[int, int, set[str]]:
    """From the coordinator's log, the results and the stand-in's logs: submissions lost (no
    graded result), error results, and the sha256s graded more than once."""
    recorded: dict[str, int] = {}
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 3 and words[0] in ("graded", "error", "rejected") and words[2].endswith(".ipynb"):
            recorded[words[2]] = recorded.get(words[2], 0) + 1
    lost, errors = 0, 0
    for path in subs:
        try:
            data = json.loads((out / path.stem / "result.json").read_text())
        except (OSError, ValueError):
            lost += 1
            continue
        if data.get("status") != "graded":
            lost += 1
            errors += 1
    # Graded twice: the coordinator recorded a submission more than once (its log, hence the
    # gradebook and grades.csv). A stand-in that finished twice because its worker was killed
    # after finishing but before its answer reached the coordinator is work redone, not a
    # second grade: Dask runs a lost worker's task again, and only one answer is recorded.
    twice = {_sha256(work / "submissions" / n) for n, c in recorded.items() if c > 1}
    return lost, errors, twice


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--submissions", type=int, default=200)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--kill-fraction", type=float, default=0.0)
    ap.add_argument("--time-compression", type=float, default=5.0,
                    help="real seconds per simulated second (default 5)")
    ap.add_argument("--per-command", type=int, default=8,
                    help="worker processes per `dask worker --nworkers K` command, like one machine's cores (default 8)")
    ap.add_argument("--gradebook", type=Path, default=None, help="draw the durations from this run's gradebook")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--keep", type=Path, default=None, help="copy the output folder and logs here")
    ap.add_argument("--profile", type=Path, default=None, help="run the coordinator under cProfile, stats to this file")
    args = ap.parse_args(argv)
    # Stopped (Ctrl-C, SIGTERM, also when started in the background): the finally below stops
    # the scheduler and the workers.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    from grader.batch.cluster_tls import make_credentials

    load_before = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="sheet11-scale-"))  # 0700
    procs: list[subprocess.Popen[bytes]] = []
    try:
        course = work / "course"
        course.mkdir(mode=0o700)
        os.environ["SHEET11_SECRET_FILE"] = str(course / "secret")
        os.environ["OMP_NUM_THREADS"] = "1"
        from grader.checks.secret import load_secret
        load_secret(create=True)
        credentials = make_credentials(course / "cluster", days=1, name=f"sheet11 scale {os.getpid()}")

        seconds, source = durations_from(args.gradebook)
        rng = random.Random(args.seed)
        subs = make_submissions(work / "submissions", args.submissions)
        plan: dict[str, list[float]] = {}
        for path in subs:
            real = rng.choice(seconds)
            plan[_sha256(path)] = [real / args.time_compression, real]
        (work / "plan.json").write_text(json.dumps(plan))
        log_dir = work / "log"
        log_dir.mkdir()
        os.environ["SHEET11_SCALE_PLAN"] = str(work / "plan.json")
        os.environ["SHEET11_SCALE_LOG"] = str(log_dir)
        print(f"scale: {args.submissions} submissions, {args.workers} workers, durations from {source}, "
              f"compressed {args.time_compression:g}x; load {load_before:.2f}", file=sys.stderr)

        cluster_log = open(work / "cluster.log", "wb")
        t0 = time.monotonic()
        address = _start_scheduler(work, credentials, cluster_log, procs)
        _start_workers(args, address, credentials, cluster_log, procs, log_dir, work, t0)
        startup_workers = time.monotonic() - t0
        print(f"scale: {args.workers} workers up in {startup_workers:.0f} s", file=sys.stderr)

        # The coordinator: the grade command, in a process of its own.
        out = work / "out"
        env = {**os.environ, "COLUMNS": "240"}
        coordinator_out = open(work / "coordinator.log", "wb")
        c_start = time.time()
        profile = ["-m", "cProfile", "-o", str(args.profile.resolve())] if args.profile else []
        coordinator = subprocess.Popen([sys.executable, *profile, "-m", "grader.cli", "run", str(work / "submissions"),
                                        "-o", str(out), "--cluster", address, "--connect-timeout", "120"],
                                       env=env, stdin=subprocess.DEVNULL, stdout=coordinator_out,
                                       stderr=subprocess.STDOUT)
        status, usage, peak_sampled, killed = _watch(coordinator, args, log_dir)
        c_end = time.time()
        coordinator.returncode = os.waitstatus_to_exitcode(status)
        coordinator_out.close()
        load_after = os.getloadavg()[0]

        starts, dones, _, first = read_logs(log_dir)
        text = (work / "coordinator.log").read_text(errors="replace")
        lost, errors, twice = _outcome(text, subs, out, dones, work)
        work_s = sum(s for s, _ in plan.values())
        ideal = max(work_s / args.workers, max(s for s, _ in plan.values()))
        makespan = c_end - (first if first is not None else c_start)
        cpu = usage.ru_utime + usage.ru_stime
        peak_mb = max(usage.ru_maxrss / 1024, peak_sampled / 2**20)
        if coordinator.returncode != 0:
            print(text[-3000:], file=sys.stderr)
        report = {
            "submissions": args.submissions, "workers": args.workers, "makespan_s": round(makespan, 1),
            "ideal_s": round(ideal, 1), "ratio": round(makespan / ideal, 3), "lost": lost,
            "graded_twice": len(twice), "coordinator_peak_mb": round(peak_mb, 1),
            "time_compression": args.time_compression,
            "coordinator_rss_sampled_mb": round(peak_sampled / 2**20, 1),
            "coordinator_maxrss_mb": round(usage.ru_maxrss / 1024, 1),
            "startup_s": round((first or c_end) - c_start, 1), "workers_up_s": round(startup_workers, 1),
            "coordinator_exit": coordinator.returncode, "coordinator_cpu_s": round(cpu, 1),
            "coordinator_cpu_ms_per_result": round(1000 * cpu / max(1, args.submissions), 1),
            "killed": len(killed), "restarted": len(worker_pids(log_dir)) - args.workers,
            "started_twice": sum(1 for n in starts.values() if n > 1),
            "finished_twice": sum(1 for n in dones.values() if n > 1), "error_results": errors,
            "simulated_work_s": round(work_s, 1), "real_work_s": round(work_s * args.time_compression, 1),
            "load_before": round(load_before, 2), "load_after": round(load_after, 2),
            "durations": source[:120],
        }
        if args.keep:
            shutil.copytree(work, args.keep / "scale-run", ignore=shutil.ignore_patterns("course"),
                            dirs_exist_ok=True)
        cluster_log.close()
    finally:
        for proc in reversed(procs):
            stop_group(proc)
        shutil.rmtree(work, ignore_errors=True)
    print("scale: " + json.dumps(report))
    return report


if __name__ == "__main__":
    main()
