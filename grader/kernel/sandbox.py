"""How a student's kernel is confined.

The kernel runs under bubblewrap with no network, a private ``/tmp``, its own PID namespace, a
read-only view of only the Python environment it needs (with this project's packages masked),
a scratch folder as its only writable place, a minimal environment, and resource limits set by
``prlimit``. When the grader runs as root, the kernel runs under an unprivileged uid of its own so
that the process limit counts only the kernel's own processes. A kernel dies with the grading
process that launched it, however that process dies; what an earlier death left behind is
killed when the next session starts (:func:`sweep_stale_cgroups`).

``none`` keeps the resource limits and the scratch folder but nothing else; it must be asked for.
"""
from __future__ import annotations

import errno
import functools
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

from grader import resources
from grader.errors import SandboxUnavailable
from grader.rubric import Limits

# Each kernel runs under its own unprivileged uid (when the grader is root), so the process
# limit counts only that kernel's processes: a fork bomb in one submission cannot starve a
# kernel graded beside it. The uid follows the grading process, which runs one kernel at a time.
UID_BASE = 100_000
# A grading process may hold a second kernel, started ahead for its next submission
# (grader/kernel/kernelpool.py), beside the one it grades: each slot is a uid of its own, so the two
# never share a process limit, signals or a reap. The stride is above Linux's largest pid.
UID_SLOT_STRIDE = 1 << 22
# The kernel's private /tmp lives in memory: cap it, or many files could fill the tutor's RAM.
TMP_BYTES = 512 * 1024 * 1024


def kernel_uid(slot: int = 0) -> int:
    return UID_BASE + slot * UID_SLOT_STRIDE + os.getpid()


def runs_as_kernel_uid() -> bool:
    """Whether confined kernels run under :func:`kernel_uid` (the grader is root) or, without
    root, under the grader's own uid (in a user namespace)."""
    return bool(_drop_privileges())


def give_to_kernel(path: Path | str, uid: int | None = None) -> None:
    """Hand a file or folder of the scratch space to the kernel's uid (root only).

    Never through a link: the kernel may have planted one where the grader looks.
    """
    if _drop_privileges():
        uid = kernel_uid() if uid is None else uid
        os.chown(path, uid, uid, follow_symlinks=False)


def reap_kernel_processes(timeout: float = 10.0, uid: int | None = None, *, mark: str) -> int:
    """Kill every process still running of one kernel session; wait for them.

    A kernel's forks, background processes and daemons end with its PID namespace, but not at
    once; a restarted kernel under the same uid would find the process limit still used up by
    them. A process is the session's when it runs under the session's kernel uid *and* carries
    the session's ``mark`` (the name of its run folder, ``sheet11-run-<pid>-...``): in the path
    of its cgroup (which no process can leave) or in its environment (HOME, MPLCONFIGDIR: the
    kernel's, inherited by all it starts). A uid alone is no proof: 100000 and up is also where
    /etc/subuid puts rootless containers' users, so an unrelated process of that uid is never
    touched. Returns how many were left when the time ran out (0: all gone). Does nothing unless
    the grader is root.
    """
    if not _drop_privileges():
        return 0
    if not mark.startswith("sheet11-run-"):
        raise ValueError(f"not a kernel session's mark: {mark!r}")
    uid = kernel_uid() if uid is None else uid

    def ours(pid: int) -> bool:
        return _real_uid(pid) == uid and _carries(pid, mark)
    return _kill_until_gone(lambda: [pid for pid in _pids() if ours(pid)], timeout, ours)


def _carries(pid: int, mark: str) -> bool:
    """Whether process ``pid`` is in a cgroup named with ``mark`` or has it in its environment."""
    return mark in _proc_text(pid, "cgroup") or mark in _proc_text(pid, "environ")


def _pids() -> list[int]:
    return [int(e.name) for e in os.scandir("/proc") if e.name.isdigit()]


def _real_uid(pid: int) -> int | None:
    """The real uid of ``pid`` (from ``status``), or ``None`` when it is gone.

    Not the owner of ``/proc/<pid>``: a process that makes itself non-dumpable shows a root-owned
    entry there, and no kernel can change its real uid.
    """
    line = next((ln for ln in _proc_text(pid, "status", 4096).splitlines() if ln.startswith("Uid:")), "")
    try:
        return int(line.split()[1])
    except (IndexError, ValueError):
        return None


# -- no kernel outlives its grading process -------------------------------------------------------
# A grading process killed with SIGKILL can clean up nothing, so its kernels must die on their
# own. Each link of the chain has a parent-death signal: the batch's worker (grader/batch/run.py),
# bwrap (--die-with-parent, outside and as PID 1 of the kernel's namespace, whose end kills every
# process in it). The gap was the launch: bwrap sets its signal only once it runs, after the
# fork, `sh` (the cgroup join) and `prlimit`; a grading process that died in that window left a
# bwrap whose parent was already gone, and no signal ever came. The guard below closes it. What
# gets through anyway is swept by the next run (sweep_stale_cgroups, sweep_stale_kernels).
_LAUNCH_GUARD = (
    "import ctypes, os, sys\n"
    # SIGKILL (9) to this process when the thread that forked it ends; kept across the execs
    # that follow (sh, prlimit, bwrap, and with --sandbox none the kernel itself).
    "if ctypes.CDLL(None, use_errno=True).prctl(1, 9, 0, 0, 0) != 0:\n"
    "    sys.exit(96)\n"
    # The grading process may have died before the prctl: then no signal will ever come.
    "if os.getppid() != int(sys.argv[1]):\n"
    "    sys.exit(98)\n"
    "os.execvp(sys.argv[2], sys.argv[2:])\n"
)


def die_with_launcher_argv(parent: int | None = None) -> list[str]:
    """A prefix that makes the command after it die with ``parent`` (default: this process).

    Kernel-enforced (``PR_SET_PDEATHSIG``), set before anything else runs, and followed by a
    check that ``parent`` is still the parent, so no moment is left in which the grading
    process's death goes unnoticed. Linux ties the signal to the *thread* that forked: kernels
    are launched from the grading process's main thread (nbclient's ``run_sync`` runs in the
    calling thread), which lives as long as the process, or, a submission's second kernel, from
    the thread that also closes it (grader/checks/recall_side.py).
    """
    if not sys.platform.startswith("linux"):
        return []  # no PR_SET_PDEATHSIG; there is no bubblewrap there either
    parent = os.getpid() if parent is None else parent
    return [sys.executable, "-I", "-S", "-c", _LAUNCH_GUARD, str(parent)]


def _start_time(pid: int) -> float | None:
    """When ``pid`` started (seconds since the epoch), or ``None`` when it does not run."""
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def _owner_gone(owner: int, since: float) -> bool:
    """Whether grading process ``owner`` is gone for something that existed at ``since``: it does
    not run, or its pid now belongs to a process started later (pids are reused)."""
    started = _start_time(owner)
    # One second of slack: create_time is rounded to clock ticks, and a grading process always
    # starts well before the kernels and cgroups it makes.
    return started is None or started > since + 1.0


def _kill_until_gone(pids_now: Callable[[], list[int]], timeout: float,
                     ours: Callable[[int], bool]) -> int:
    """SIGKILL what ``pids_now`` lists until it lists nothing; how many are left at the timeout.

    Each process is held by a pidfd before ``ours`` checks it again and the signal goes through
    that pidfd: a listed process that ended and whose pid was given to another process in the
    meantime is never signalled (the check then sees the newcomer, which is not ours).
    """
    deadline = time.monotonic() + timeout
    while True:
        left = pids_now()
        if not left or time.monotonic() > deadline:
            return len(left)
        for pid in left:
            _kill_if(pid, ours)
        time.sleep(0.05)


def _kill_if(pid: int, ours: Callable[[int], bool]) -> None:
    try:
        fd = os.pidfd_open(pid)
    except OSError as exc:
        if exc.errno == errno.ENOSYS and ours(pid):  # Linux < 5.3: no pidfds, the plain way
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        return  # otherwise gone already
    try:
        if ours(pid):
            signal.pidfd_send_signal(fd, signal.SIGKILL)
    except OSError:
        pass
    finally:
        os.close(fd)


def _kernel_owner(uid: int) -> int | None:
    """The grading process's pid encoded in a kernel uid (see :func:`kernel_uid`), or ``None``."""
    if uid < UID_BASE:
        return None
    slot, owner = divmod(uid - UID_BASE, UID_SLOT_STRIDE)
    # A pool holds a few slots at most; a uid far above is none of ours.
    return owner if 0 < owner and slot < MAX_SLOTS else None


# More than a grading process's pool ever holds at once (grader/kernel/kernelpool.py: AHEAD + 1 + ...).
MAX_SLOTS = 16


def _proc_text(pid: int, name: str, limit: int = 65536) -> str:
    try:
        with open(f"/proc/{pid}/{name}", "rb") as f:
            return f.read(limit).decode("utf-8", "replace")
    except OSError:
        return ""


def _is_sheet11_kernel(pid: int, owner: int) -> bool:
    """Whether process ``pid`` was started for a kernel of grading process ``owner``.

    A uid in the kernels' range is not proof enough: 100000 and up is also where /etc/subuid
    puts rootless containers' users. A kernel's process sits in its session's cgroup
    (``sheet11-run-<owner>-...``, which it cannot leave) or has the session's folders in its
    environment (HOME, MPLCONFIGDIR; inherited by everything it starts).
    """
    mark = f"sheet11-run-{owner}-"
    return mark in _proc_text(pid, "cgroup") or mark in _proc_text(pid, "environ")


def _is_stale_kernel(pid: int) -> bool:
    """Whether ``pid`` is a process of a kernel whose grading process is gone."""
    uid = _real_uid(pid)
    owner = None if uid is None else _kernel_owner(uid)
    if owner is None or owner == os.getpid():
        return False
    started = _start_time(pid)
    return started is not None and _owner_gone(owner, started) and _is_sheet11_kernel(pid, owner)


def _stale_kernel_pids() -> list[int]:
    """Processes of kernels whose grading process is gone (see :func:`sweep_stale_kernels`)."""
    return [pid for pid in _pids() if _is_stale_kernel(pid)]


def sweep_stale_kernels(timeout: float = 10.0) -> int:
    """Kill the processes of kernels whose grading process is gone (killed before it could stop
    them); returns how many were left at the timeout. Root only (only then do kernels have uids
    of their own).

    The second line of defence behind the death signals: each process runs under a kernel uid
    that names its grading process, and is killed only when that process no longer runs (or its
    pid now belongs to a younger process) and it carries a kernel's marks (:func:`_is_sheet11_kernel`),
    so the kernels of grading processes still running, this machine's other users and rootless
    containers are never touched.
    """
    if not _drop_privileges():
        return 0
    return _kill_until_gone(_stale_kernel_pids, timeout, _is_stale_kernel)


PROJECT_ROOT = resources.checkout_root()
_SYSTEM_DIRS = ("/usr", "/bin", "/lib", "/lib64", "/lib32", "/sbin")
_ETC_FILES = ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/nsswitch.conf",
              "/etc/localtime", "/etc/alternatives", "/etc/fonts")


@dataclass(frozen=True)
class Sandbox:
    """A decided sandbox mode: ``bwrap`` or ``none``, and why where ``auto`` fell back."""

    mode: str
    note: str = ""

    @property
    def confined(self) -> bool:
        return self.mode == "bwrap"

    def kernel_argv(self, scratch: Path, limits: Limits, shared: tuple[Path, ...] = (),
                    cgroup: KernelCgroup | None = None, readonly: tuple[Path, ...] = (),
                    uid: int | None = None) -> list[str]:
        """The command that starts an IPython kernel confined to ``scratch``.

        ``shared`` are further folders of the grader's (the call channel's, the sockets') bound
        at the same path; the grader owns them, so the kernel cannot put links or other files
        in their place. ``readonly`` folders (the connection file's) are bound read-only.
        """
        kernel = [sys.executable, "-E", "-s", "-m", "ipykernel_launcher", "-f", "{connection_file}"]
        # -E: no PYTHON* variables; -s: no user site. Not -I: as in Jupyter, the kernel's folder
        # (its own scratch, which it may write anyway) is on sys.path, so a notebook imports the
        # files beside it, such as the course's sheet11_check.py (ipykernel 7 no longer adds it).
        # First of all the launch guard: from its first instruction on, the launched process dies
        # with the grading process (see die_with_launcher_argv).
        join = die_with_launcher_argv() + (cgroup.argv() if cgroup is not None else [])
        if self.mode == "none":
            return join + _prlimit(limits) + kernel
        # As root, bubblewrap sets up the mounts and `setpriv` inside it drops to the kernel's uid.
        return (join + _prlimit(limits) + _bwrap_args(scratch, shared, readonly) + _drop_privileges(uid)
                + kernel)

    def kernel_env(self, scratch: Path, threads: int = 1) -> dict[str, str]:
        """The kernel's whole environment: nothing of the tutor's is passed on."""
        n = str(threads)
        return {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": str(scratch),
            "TMPDIR": "/tmp" if self.confined else str(scratch / "tmp"),
            "LANG": "C.UTF-8",
            "OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n, "OPENBLAS_NUM_THREADS": n,
            # Jupyter's own: a figure a cell draws is sent as a PNG display, as in the notebook
            # the student ran (Agg would drop every plot, and warn at plt.show()).
            "MPLBACKEND": "module://matplotlib_inline.backend_inline",
            "MPLCONFIGDIR": str(scratch / ".mpl"),
            "IPYTHONDIR": str(scratch / ".ipython"),
            "JUPYTER_PLATFORM_DIRS": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYDEVD_DISABLE_FILE_VALIDATION": "1",
        }

    def prepare(self, scratch: Path, uid: int | None = None) -> None:
        """Make the scratch folder the kernel's own (it may run as ``nobody``)."""
        (scratch / "tmp").mkdir(exist_ok=True)
        if self.confined:
            for path in (scratch, scratch / "tmp"):
                give_to_kernel(path, uid)
            os.chmod(scratch, 0o700)


CGROUP_ROOT = Path("/sys/fs/cgroup")


class KernelCgroup:
    """A cap on the memory and the processes of one kernel and everything it starts.

    ``prlimit`` limits each process; a kernel that forks ten memory-hungry children would still
    exhaust the machine. A cgroup (v2, or v1's memory and pids controllers) counts them all. The
    grader joins the kernel to it before exec, so nothing the kernel starts escapes it.
    """

    def __init__(self, dirs: list[Path]) -> None:
        self.dirs = dirs

    @classmethod
    def create(cls, name: str, limits: Limits) -> KernelCgroup | None:
        layout = _cgroup_layout()
        if not layout:
            return None
        memory = str(limits.memory_mb * 1024 * 1024)
        made: list[Path] = []
        try:
            if layout == "v2":
                d = CGROUP_ROOT / name
                d.mkdir()
                made.append(d)
                (d / "memory.max").write_text(memory)
                (d / "memory.swap.max").write_text("0") if (d / "memory.swap.max").exists() else None
                (d / "pids.max").write_text(str(limits.max_processes))
            else:
                mem, pids = CGROUP_ROOT / "memory" / name, CGROUP_ROOT / "pids" / name
                for d in (mem, pids):
                    d.mkdir()
                    made.append(d)
                (mem / "memory.limit_in_bytes").write_text(memory)
                if (mem / "memory.memsw.limit_in_bytes").exists():
                    (mem / "memory.memsw.limit_in_bytes").write_text(memory)
                (pids / "pids.max").write_text(str(limits.max_processes))
                # Optional: CPU accounting of the whole kernel (the recall time limit); without
                # it the grader falls back to /proc.
                acct = CGROUP_ROOT / "cpuacct" / name
                if (CGROUP_ROOT / "cpuacct" / "cpuacct.usage").exists():
                    try:
                        acct.mkdir()
                        made.append(acct)
                    except OSError:
                        pass
        except OSError:
            cls(made).remove()
            return None
        return cls(made)

    def argv(self) -> list[str]:
        """A prefix that moves the starting process into the cgroup, then execs the rest."""
        script = 'while [ "$1" != "--" ]; do echo $$ > "$1" || exit 97; shift; done; shift; exec "$@"'
        return ["sh", "-c", script, "sh", *[str(d / "cgroup.procs") for d in self.dirs], "--"]

    def cpu_seconds(self) -> float | None:
        """CPU seconds used by every process that ran in the cgroup (v2 ``cpu.stat``, v1 ``cpuacct``)."""
        for d in self.dirs:
            try:
                if (d / "cpu.stat").exists():
                    for line in (d / "cpu.stat").read_text().splitlines():
                        if line.startswith("usage_usec "):
                            return int(line.split()[1]) / 1e6
                if (d / "cpuacct.usage").exists():
                    return int((d / "cpuacct.usage").read_text().strip()) / 1e9
            except (OSError, ValueError):
                continue
        return None

    def procs(self) -> list[int]:
        """The processes in the cgroup now (every directory of it, v1 or v2)."""
        return _cgroup_procs(self.dirs)

    def remove(self) -> None:
        """Kill whatever still runs in the cgroup, then remove it.

        A cgroup with a process in it cannot be removed, and a process left in it would be a
        kernel's that outlived its session (a daemon the kernel started, a reap that timed out):
        the cgroup is the one list of a kernel's processes that none of them can leave.
        """
        _kill_until_gone(self.procs, 10.0, functools.partial(_in_cgroup, self.dirs))
        for d in self.dirs:
            for _ in range(50):  # the kernel's processes may take a moment to be reaped
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.05)


def _in_cgroup(dirs: list[Path], pid: int) -> bool:
    return pid in _cgroup_procs(dirs)


def _cgroup_procs(dirs: list[Path]) -> list[int]:
    pids: set[int] = set()
    for d in dirs:
        try:
            text = (d / "cgroup.procs").read_text()
        except OSError:
            continue
        pids.update(int(x) for x in text.split() if x.isdigit())
    return sorted(pids)


def sweep_stale_cgroups(prefix: str = "sheet11-run-") -> None:
    """Stop what grading processes that were killed (SIGKILL, power loss, a worker over its
    budget, a killed batch or cluster worker, a kernel started ahead for a submission that never
    came) could not stop themselves, then clean up after them; every session start calls this.

    - Their cgroups (names carry the dead process's pid): whatever still runs in one is killed
      first (a non-empty cgroup cannot be removed, and what runs there is a kernel's), then it
      is removed. A cgroup is stale only when its pid no longer runs or now belongs to a process
      younger than the cgroup, so the cgroups of grading processes still running are never
      touched.
    - Kernels outside any cgroup (none here, or a v1 machine without one): by uid slot,
      :func:`sweep_stale_kernels`.
    """
    if _cgroup_layout():
        for parent in (CGROUP_ROOT, CGROUP_ROOT / "memory", CGROUP_ROOT / "pids", CGROUP_ROOT / "cpuacct"):
            try:
                stale = [d for d in parent.glob(f"{prefix}*-*") if d.is_dir()]
            except OSError:
                continue
            for d in stale:
                pid = d.name[len(prefix):].split("-")[0]
                try:
                    made = d.stat().st_mtime
                except OSError:
                    continue
                if not pid.isdigit() or not _owner_gone(int(pid), made):
                    continue
                _kill_until_gone(functools.partial(_cgroup_procs, [d]), 10.0,
                                 functools.partial(_in_cgroup, [d]))
                try:
                    d.rmdir()
                except OSError:
                    pass
    sweep_stale_kernels()


@functools.lru_cache(maxsize=1)
def _cgroup_layout() -> str:
    """``v2`` or ``v1`` where this process may create cgroups with memory and pids limits, else ``''``."""
    if os.geteuid() != 0:
        return ""
    probe = f"sheet11-probe-{os.getpid()}"
    controllers = CGROUP_ROOT / "cgroup.subtree_control"
    candidates: list[tuple[str, list[Path]]] = []
    if controllers.exists():
        try:
            enabled = controllers.read_text().split()
        except OSError:
            enabled = []
        if "memory" in enabled and "pids" in enabled:
            candidates.append(("v2", [CGROUP_ROOT / probe]))
    if (CGROUP_ROOT / "memory" / "memory.limit_in_bytes").exists() and (CGROUP_ROOT / "pids").is_dir():
        candidates.append(("v1", [CGROUP_ROOT / "memory" / probe, CGROUP_ROOT / "pids" / probe]))
    for layout, dirs in candidates:
        made = []
        try:
            for d in dirs:
                d.mkdir()
                made.append(d)
            return layout
        except OSError:
            continue
        finally:
            for d in made:
                try:
                    d.rmdir()
                except OSError:
                    pass
    return ""


def cgroup_note() -> str:
    """What a tutor should know when kernels cannot be put into a cgroup here."""
    if _cgroup_layout():
        return ""
    return ("memory and process limits apply per process only (no writable cgroup here; run the "
            "grader as root on a machine with cgroups to cap each kernel as a whole)")


def _drop_privileges(uid: int | None = None) -> list[str]:
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        return []
    uid = kernel_uid() if uid is None else uid
    return ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
            "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]


def _prlimit(limits: Limits) -> list[str]:
    if shutil.which("prlimit") is None:
        return []
    mb = 1024 * 1024
    return ["prlimit",
            f"--as={limits.memory_mb * mb}",
            f"--cpu={limits.cpu_seconds}",
            f"--fsize={limits.max_file_mb * mb}",
            f"--nproc={limits.max_processes}",
            "--nofile=1024", "--core=0", "--"]


def _python_roots() -> list[Path]:
    """The folders of the running Python that the kernel needs, read-only."""
    roots = {Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve()}
    for entry in sys.path:
        p = Path(entry or ".").resolve()
        if p.is_dir() and "-packages" in p.name:
            roots.add(p)
    keep: list[Path] = []
    for root in sorted(roots, key=lambda p: len(p.parts)):
        if any(root.is_relative_to(k) for k in keep) or root == Path("/"):
            continue
        if any(root.is_relative_to(s) for s in _SYSTEM_DIRS):
            continue  # already visible through the system folders
        keep.append(root)
    return keep


def _masked_paths(visible: list[Path]) -> list[Path]:
    """This project's packages and source, wherever a visible folder would show them."""
    masked = set()
    for name in ("grader", "reference"):
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin:
            masked.add(Path(spec.origin).resolve().parent)
    if PROJECT_ROOT is not None:  # a wheel install has no checkout; site-packages stays visible
        masked.add(PROJECT_ROOT)
    shown = [Path(s) for s in _SYSTEM_DIRS] + visible
    return sorted(p for p in masked if p.is_dir() and any(p.is_relative_to(v) for v in shown))


def _bwrap_args(scratch: Path, shared: tuple[Path, ...] = (), readonly: tuple[Path, ...] = ()) -> list[str]:
    args = ["bwrap", "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
            "--unshare-cgroup-try", "--die-with-parent", "--new-session",
            "--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--size", str(TMP_BYTES), "--tmpfs", "/tmp"]
    if not _drop_privileges():
        # Without root there is no setpriv step; a user namespace and no capabilities instead.
        args[1:1] = ["--unshare-user", "--cap-drop", "ALL"]
    for d in _SYSTEM_DIRS:
        p = Path(d)
        if p.is_symlink():
            args += ["--symlink", os.readlink(p), d]
        elif p.is_dir():
            args += ["--ro-bind", d, d]
    # /etc made first and traversable: bwrap would create it for the first file bound inside with
    # mode 0700, and the kernel's uid could then read none of them (fontconfig's fonts.conf for
    # matplotlib among them, whose error would land in the student's report).
    args += ["--perms", "0755", "--dir", "/etc"]
    for f in _ETC_FILES:
        if os.path.exists(f):
            args += ["--ro-bind", f, f]
    visible = _python_roots()
    made: set[Path] = set()

    def parents(path: Path) -> list[str]:
        # bwrap copies a parent's mode (e.g. /root is 0700), which would lock `nobody` out.
        out: list[str] = []
        for parent in reversed(path.parents[:-1]):
            if parent not in made and parent != Path("/tmp"):
                made.add(parent)
                out += ["--perms", "0755", "--dir", str(parent)]
        return out

    for root in visible:
        args += parents(root) + ["--ro-bind", str(root), str(root)]
    for hidden in _masked_paths(visible):
        args += ["--tmpfs", str(hidden)]
    # The same path inside and out, so the IPC sockets named in the connection file work both ways.
    args += parents(scratch) + ["--bind", str(scratch), str(scratch), "--chdir", str(scratch)]
    for extra in shared:
        args += parents(extra) + ["--bind", str(extra), str(extra)]
    for extra in readonly:
        args += parents(extra) + ["--ro-bind", str(extra), str(extra)]
    # Inside the PID namespace the kernel's parent is PID 1, which ipykernel would read as
    # "orphaned"; --die-with-parent already ends the kernel with the grader.
    args += ["--hostname", "sandbox", "--setenv", "JPY_PARENT_PID", "1", "--"]
    return args


@functools.lru_cache(maxsize=1)
def _bwrap_problem() -> str:
    """Why bubblewrap cannot confine a kernel here, or ``''`` when it can."""
    if shutil.which("bwrap") is None:
        return "bubblewrap (bwrap) is not installed; on Debian/Ubuntu: apt-get install bubblewrap"
    probe = ["bwrap", "--unshare-net", "--unshare-pid", "--die-with-parent",
             "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev"] + _drop_privileges() + ["true"]
    try:
        run = subprocess.run(probe, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bubblewrap could not start ({exc})"
    if run.returncode != 0:
        return f"bubblewrap cannot create namespaces here ({run.stderr.strip()[:200]})"
    return ""


def choose_sandbox(mode: str = "auto") -> Sandbox:
    """Decide how kernels are confined.

    ``auto`` uses bubblewrap where it runs and otherwise returns ``none`` with a note that the
    CLI prints and every report shows; ``bwrap`` fails where bubblewrap cannot run.
    """
    if mode == "none":
        return Sandbox("none", "the sandbox was switched off (--sandbox none): student code ran "
                               "with the grader's file system view and network")
    problem = _bwrap_problem()
    if mode == "bwrap":
        if problem:
            raise SandboxUnavailable(f"--sandbox bwrap was asked for, but {problem}. Install "
                                     "bubblewrap or run with --sandbox none knowingly.")
        return Sandbox("bwrap", cgroup_note())
    if mode != "auto":
        raise SandboxUnavailable(f"unknown sandbox mode {mode!r}; allowed: auto, bwrap, none")
    if problem:
        return Sandbox("none", f"NOT SANDBOXED: {problem}. Student code ran without isolation.")
    return Sandbox("bwrap", cgroup_note())
