"""The sandbox, seen from inside a student's kernel and from the grader.

Kernel tests run small notebooks in a :class:`~grader.kernel.execute.KernelSession` (as grading does)
and read what the cells printed: a probe prints one JSON line, ``PROBE {...}``.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import nbformat
import pytest
from builders import GOOD_NAME, quick_context, solution, write_notebook

from grader.errors import SandboxUnavailable
from grader.kernel import cgroup as cgroup_mod
from grader.kernel import sandbox as sandbox_mod
from grader.kernel.execute import KernelSession
from grader.kernel.sandbox import PROJECT_ROOT, Sandbox, choose_sandbox
from grader.rubric import DEFAULT_RUBRIC

needs_bwrap = pytest.mark.skipif(sandbox_mod._bwrap_problem() != "", reason="bubblewrap cannot run here")


def run_cells(*sources: str, **limits) -> tuple[list[str], list[str], KernelSession]:
    """Run code cells in a fresh confined kernel; returns (stdout per cell, error per cell)."""
    ctx = quick_context(cell_timeout=limits.pop("cell_timeout", 10), notebook_timeout=60, **limits)
    assert ctx.sandbox.mode == "bwrap"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    with KernelSession(ctx.sandbox, ctx.rubric.limits) as session:
        run = session.run_notebook(nb)
    outs = ["".join(o.get("text", "") for o in c.outputs if o.get("output_type") == "stream") for c in nb.cells]
    errors = [c.error for c in run.cells]
    return outs, errors, session


def probe(source: str, **limits) -> dict:
    outs, errors, _ = run_cells(source, **limits)
    lines = [ln for ln in outs[0].splitlines() if ln.startswith("PROBE ")]
    assert lines, f"the probe printed nothing (error: {errors[0]!r})"
    return json.loads(lines[-1][len("PROBE "):])


ATTEMPT = '''
import json, os, importlib
def attempt(what, fn):
    try:
        fn()
        return what
    except BaseException as e:
        return None
def read(path):
    if os.path.isdir(path):
        return os.listdir(path)
    with open(path, "rb") as f:
        return f.read(10)
'''


@pytest.mark.slow
@needs_bwrap
def test_project_and_other_files_are_invisible(tmp_path):
    other = write_notebook(solution(), tmp_path / "batch" / "Other_2570001_Student_2570002.ipynb")
    other_bytes = other.read_bytes()
    out_dir = tmp_path / "graded"
    (out_dir / "Other_2570001_Student_2570002").mkdir(parents=True)
    (out_dir / "Other_2570001_Student_2570002" / "result.json").write_text('{"points": 3}')
    secrets = [PROJECT_ROOT / "reference" / "rnn.py", PROJECT_ROOT / "reference" / "solution.ipynb",
               Path(DEFAULT_RUBRIC), PROJECT_ROOT / "grader" / "sandbox.py", PROJECT_ROOT, other, other.parent,
               out_dir, out_dir / "Other_2570001_Student_2570002" / "result.json", Path("/root"),
               Path("/etc/shadow"), Path("/etc/passwd"), Path.home()]
    got = probe(ATTEMPT + f'''
paths = {[str(p) for p in secrets]!r}
leaks = [attempt("import " + m, lambda m=m: importlib.import_module(m)) for m in ("reference", "grader", "grader.kernel.sandbox")]
leaks += [attempt("read " + p, lambda p=p: read(p)) for p in paths]
print("PROBE " + json.dumps({{"leaks": [x for x in leaks if x], "cwd_writable": attempt("w", lambda: open("mine.txt", "w").write("ok")) is not None}}))
''')
    # A parent of the Python installation (here /root for /root/.pyenv) is a synthetic folder
    # holding only that path; nothing else of it is visible.
    allowed = {str(p) for root in sandbox_mod._python_roots() for p in [root, *root.parents]}
    shown = probe(ATTEMPT + f'''
print("PROBE " + json.dumps({{p: sorted(os.listdir(p)) for p in ("/root", str({str(Path.home())!r})) if os.path.isdir(p)}}))
''')
    for folder, names in shown.items():
        assert all(str(Path(folder) / n) in allowed for n in names), (folder, names)
    assert [x for x in got["leaks"] if x.removeprefix("read ") not in allowed] == []
    assert got["cwd_writable"]            # the probe did run, and the scratch folder is its own
    assert other.read_bytes() == other_bytes


@pytest.mark.slow
@needs_bwrap
def test_network_is_unreachable():
    got = probe(ATTEMPT + '''
import socket
leaks = [attempt("tcp 1.1.1.1:80", lambda: socket.create_connection(("1.1.1.1", 80), timeout=3).close()),
         attempt("dns pypi.org", lambda: socket.getaddrinfo("pypi.org", 443)),
         attempt("tcp pypi.org:443", lambda: socket.create_connection(("pypi.org", 443), timeout=3).close()),
         attempt("udp 8.8.8.8:53", lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", ("8.8.8.8", 53)))]
import urllib.request
leaks.append(attempt("http", lambda: urllib.request.urlopen("http://pypi.org/simple/", timeout=3)))
print("PROBE " + json.dumps([x for x in leaks if x]))
''')
    assert got == []


@pytest.mark.slow
@needs_bwrap
def test_kernel_is_unprivileged():
    got = probe(ATTEMPT + '''
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
writes = [attempt("write " + p, lambda p=p: open(p, "w").write("x")) for p in ("/usr/evil", "/etc/evil", "/evil")]
print("PROBE " + json.dumps({"uid": os.getuid(), "euid": os.geteuid(), "gid": os.getgid(),
                             "groups": os.getgroups(), "cap_eff": status["CapEff"].strip(),
                             "no_new_privs": status.get("NoNewPrivs", "").strip(),
                             "writes": [w for w in writes if w], "pids": len([p for p in os.listdir("/proc") if p.isdigit()])}))
''')
    if os.geteuid() == 0:
        assert got["uid"] != 0 and got["euid"] != 0 and got["gid"] != 0
        assert got["groups"] == []
        assert int(got["cap_eff"], 16) == 0
        assert got["no_new_privs"] == "1"
    assert got["writes"] == []
    assert got["pids"] < 10                 # its own PID namespace: the grader's processes are not there


@pytest.mark.slow
@needs_bwrap
def test_limits_apply_in_the_kernel():
    got = probe(ATTEMPT + '''
import resource
print("PROBE " + json.dumps({k: resource.getrlimit(getattr(resource, "RLIMIT_" + k))[0] for k in ("AS", "NPROC", "FSIZE", "CORE")}))
''', memory_mb=3000, max_processes=64, max_file_mb=10)
    assert got == {"AS": 3000 * 2**20, "NPROC": 64, "FSIZE": 10 * 2**20, "CORE": 0}


@pytest.mark.slow
@needs_bwrap
@pytest.mark.skipif(not sandbox_mod._cgroup_layout(), reason="no writable cgroup here")
def test_forks_share_one_memory_cap():
    """Each fork stays under the per-process limit, but together they pass the kernel's cap:
    the cgroup kills them, and the tutor's machine keeps its memory."""
    outs, errors, session = run_cells("""
import os, time
kids = []
for i in range(6):
    pid = os.fork()
    if pid == 0:
        x = bytearray(900 * 2**20)
        for j in range(0, len(x), 4096):
            x[j] = 1
        time.sleep(30)
        os._exit(0)
    kids.append(pid)
time.sleep(5)
killed = sum(1 for pid in kids if os.waitpid(pid, os.WNOHANG) == (pid, 9))
print('killed', killed)
""", memory_mb=2048, cell_timeout=40)
    assert session.cgroup is not None
    killed = int(outs[0].split()[-1]) if outs[0].strip().startswith("killed") else -1
    assert killed >= 3, (outs, errors)  # 6 x 900 MB cannot fit in 2 GB
    assert not any(d.exists() for d in session.cgroup.dirs)


@pytest.mark.slow
@needs_bwrap
def test_scratch_and_processes_are_gone_after_the_session():
    outs, errors, session = run_cells("import subprocess\np = subprocess.Popen(['sleep', '1000'])\nprint('started')")
    assert outs[0].strip() == "started"
    assert not session.base.exists()
    uid = sandbox_mod.kernel_uid()
    if os.geteuid() == 0:
        left = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            if any(line.startswith("Uid:") and int(line.split()[1]) == uid for line in status.splitlines()):
                left.append(pid)
        assert left == []


@pytest.mark.slow
@needs_bwrap
def test_kernel_output_never_reaches_the_graders_terminal(capfd):
    outs, errors, _ = run_cells("import os\nos.write(1, b'RAW-FD1-LINE\\n')\nos.write(2, b'RAW-FD2-LINE\\n')\nprint('ok')")
    captured = capfd.readouterr()
    assert "RAW-FD1-LINE" not in captured.out + captured.err
    assert "RAW-FD2-LINE" not in captured.out + captured.err
    assert "ok" in outs[0]        # (ipykernel shows fd output in the cell instead)


# -- choosing the sandbox -----------------------------------------------------------------------
@needs_bwrap
def test_auto_picks_bwrap_here():
    assert choose_sandbox("auto") == Sandbox("bwrap")
    assert choose_sandbox("bwrap") == Sandbox("bwrap")


def test_none_must_be_asked_for_and_says_so():
    box = choose_sandbox("none")
    assert box.mode == "none" and not box.confined
    assert "switched off" in box.note
    with pytest.raises(SandboxUnavailable):
        choose_sandbox("off")


def test_without_bwrap_auto_falls_back_loudly_and_bwrap_refuses(monkeypatch):
    monkeypatch.setattr(sandbox_mod, "_bwrap_problem", lambda: "bubblewrap cannot create namespaces here (test)")
    box = choose_sandbox("auto")
    assert box.mode == "none"
    assert "NOT SANDBOXED" in box.note and "bubblewrap cannot create namespaces" in box.note
    with pytest.raises(SandboxUnavailable, match="--sandbox none"):
        choose_sandbox("bwrap")


def test_bwrap_not_installed_is_named(monkeypatch):
    real_which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None if name == "bwrap" else real_which(name, *a, **k))
    problem = sandbox_mod._bwrap_problem.__wrapped__()
    assert "not installed" in problem and "apt-get install bubblewrap" in problem


def test_sandbox_note_reaches_every_result(monkeypatch, tmp_path):
    monkeypatch.setattr(sandbox_mod, "_bwrap_problem", lambda: "bwrap missing (test)")
    from grader.grade import grade_submission
    ctx = quick_context()
    bad = tmp_path / f"{GOOD_NAME}.ipynb"
    bad.write_text("not json")
    data = grade_submission(bad, ctx).to_json()
    assert "NOT SANDBOXED" in data["sandbox"]


@needs_bwrap
def test_kernel_argv_confines_and_masks_the_project(tmp_path):
    ctx = quick_context()
    argv = ctx.sandbox.kernel_argv(tmp_path, ctx.rubric.limits)
    # The launch guard first (the kernel dies with the grader from its first instruction on),
    # then the limits and the sandbox.
    guard = sandbox_mod.die_with_launcher_argv()
    assert argv[:len(guard)] == guard and argv[len(guard)] == "prlimit" and "bwrap" in argv
    assert "--unshare-net" in argv and "--unshare-pid" in argv and "--die-with-parent" in argv
    bound = {argv[i + 1] for i, a in enumerate(argv) if a in ("--bind", "--ro-bind")}
    assert str(tmp_path) in bound
    assert not any(Path(b) == PROJECT_ROOT or PROJECT_ROOT.is_relative_to(b) and b != "/" and
                   Path(b) != Path(b).anchor and False for b in bound)
    assert not any(PROJECT_ROOT.is_relative_to(Path(b)) for b in bound if Path(b) != tmp_path)
    if os.geteuid() == 0:
        assert "setpriv" in argv


# -- a kernel that never starts -----------------------------------------------------------------
@pytest.mark.slow
def test_kernel_that_never_starts_is_an_error_and_the_batch_goes_on(monkeypatch, tmp_path):
    from grader.batch.run import BatchSettings, run_batch
    real_argv = Sandbox.kernel_argv
    broken: list = []

    def first_broken(self, scratch, *args, **kwargs):
        # The first kernel session never gets a kernel, however often it tries (started ahead
        # by the batch's pool, then again at its submission's turn); every other one does.
        if not broken:
            broken.append(scratch)
        return ["false"] if scratch == broken[0] else real_argv(self, scratch, *args, **kwargs)

    monkeypatch.setattr(Sandbox, "kernel_argv", first_broken)
    subs = tmp_path / "subs"
    write_notebook(solution(), subs / "Lovelace_2571234_Turing_2579876.ipynb")
    write_notebook(solution(), subs / "Lovelace_2571234_Turing_2579876_Hopper_2571111.ipynb")
    t0 = time.monotonic()
    outcome = run_batch([str(subs)], BatchSettings.make(tmp_path / "out"))
    assert time.monotonic() - t0 < 90
    first, second = outcome.results
    assert first["status"] == "error"
    assert "kernel did not start" in first["message"]
    assert any(f["code"] == "kernel.died" for f in first["flags"])
    assert second["status"] == "graded" and second["points"] > 0
    assert (tmp_path / "out" / "grades.csv").exists()


@pytest.mark.slow
@needs_bwrap
def test_long_temp_dir_still_starts_kernels(tmp_path, monkeypatch):
    """IPC socket names are limited to 107 bytes; a long TMPDIR must not break every kernel."""
    import tempfile
    long_dir = tmp_path / ("x" * 60) / ("y" * 60)
    long_dir.mkdir(parents=True)
    monkeypatch.setattr(tempfile, "tempdir", str(long_dir))
    outs, errors, session = run_cells("print('alive')")
    assert outs[0] == "alive\n", errors
    assert not session.base.exists()


# -- the kernel's sockets (issue 10): pinned, never reached through a link -----------------------
def _pin(folder: Path, ports: dict[str, int]):
    import asyncio

    from grader.kernel.execute import PinnedSockets

    async def alive() -> bool:
        return True
    pinned = PinnedSockets(folder, str(folder / "k"), ports, os.geteuid())
    asyncio.run(pinned.pin(alive, 5))
    return pinned


def test_pinned_socket_is_reached_even_after_it_is_replaced_by_a_link(tmp_path):
    import zmq
    ctx = zmq.Context()
    try:
        kernel = ctx.socket(zmq.REP)
        kernel.bind(f"ipc://{tmp_path}/k-1")
        planted = ctx.socket(zmq.REP)
        planted.bind(f"ipc://{tmp_path}/host.sock")
        pinned = _pin(tmp_path, {"shell": 1})
        # The kernel swaps its socket for a link to a host socket: the grader still reaches its own.
        os.rename(tmp_path / "k-1", tmp_path / "k-1.old")
        os.symlink(tmp_path / "host.sock", tmp_path / "k-1")
        client = ctx.socket(zmq.REQ)
        client.connect(pinned.url("shell"))
        client.send(b"ping")
        poller = zmq.Poller()
        poller.register(kernel, zmq.POLLIN)
        poller.register(planted, zmq.POLLIN)
        ready = dict(poller.poll(5000))
        assert kernel in ready and planted not in ready
        pinned.close()
    finally:
        ctx.destroy(linger=0)


@pytest.mark.parametrize("plant", ["symlink", "file", "fifo"])
def test_a_planted_link_or_file_is_refused_before_any_connection(tmp_path, plant):
    from grader.kernel.execute import KernelStartError
    target = tmp_path / "k-1"
    if plant == "symlink":
        os.symlink("/run/some-host.sock", target)
    elif plant == "file":
        target.write_text("x")
    else:
        os.mkfifo(target)
    with pytest.raises(KernelStartError, match="a link|not a socket"):
        _pin(tmp_path, {"shell": 1})


def test_a_url_is_never_made_for_an_unchecked_socket(tmp_path):
    from grader.kernel.execute import KernelStartError, PinnedSockets
    with pytest.raises(KernelStartError):
        PinnedSockets(tmp_path, str(tmp_path / "k"), {"shell": 1}, os.geteuid()).url("shell")


# The cgroup code paths on any machine: a fake cgroup tree in a temporary folder stands in for
# /sys/fs/cgroup, so what is written (and the fallback's note) is checked where no real cgroup
# can be made too; the kernel-level test above adds the real kill where one can.
@pytest.fixture
def fake_cgroups(tmp_path, monkeypatch):
    def use(layout: str) -> Path:
        root = tmp_path / layout
        if layout == "v2":
            root.mkdir()
            (root / "cgroup.subtree_control").write_text("cpu memory pids\n")
        elif layout == "v1":
            (root / "memory").mkdir(parents=True)
            (root / "memory" / "memory.limit_in_bytes").write_text("max\n")
            (root / "pids").mkdir()
        else:
            root.mkdir()
        monkeypatch.setattr(cgroup_mod, "CGROUP_ROOT", root)
        monkeypatch.setattr(sandbox_mod.os, "geteuid", lambda: 0)
        sandbox_mod._cgroup_layout.cache_clear()
        return root
    yield use
    sandbox_mod._cgroup_layout.cache_clear()


@pytest.mark.parametrize("layout", ["v2", "v1"])
def test_a_kernel_cgroup_caps_memory_and_processes(fake_cgroups, layout):
    root = fake_cgroups(layout)
    from grader.rubric import load_rubric
    limits = load_rubric().limits
    group = sandbox_mod.KernelCgroup.create("sheet11-test", limits)
    assert group is not None and sandbox_mod.cgroup_note() == ""
    if layout == "v2":
        (d,) = group.dirs
        assert (d / "memory.max").read_text() == str(limits.memory_mb * 2**20)
        assert (d / "pids.max").read_text() == str(limits.max_processes)
    else:
        mem, pids = group.dirs
        assert mem.parent == root / "memory" and pids.parent == root / "pids"
        assert (mem / "memory.limit_in_bytes").read_text() == str(limits.memory_mb * 2**20)
        assert (pids / "pids.max").read_text() == str(limits.max_processes)
    argv = group.argv()
    assert argv[-1] == "--" and all(str(d / "cgroup.procs") in argv for d in group.dirs)
    for d in group.dirs:  # remove() must be able to delete what create() made
        for f in d.iterdir():
            f.unlink()
    group.remove()
    assert not any(d.exists() for d in group.dirs)


def test_without_a_cgroup_the_tutor_is_told(fake_cgroups):
    fake_cgroups("none")
    from grader.rubric import load_rubric
    assert sandbox_mod.KernelCgroup.create("sheet11-test", load_rubric().limits) is None
    assert "per process only" in sandbox_mod.cgroup_note()
