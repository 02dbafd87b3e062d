"""How a student's kernel is confined.

The kernel runs under bubblewrap with no network, a private ``/tmp``, its own PID namespace, a
read-only view of only the Python environment it needs (with this project's packages masked),
a scratch folder as its only writable place, a minimal environment, and resource limits set by
``prlimit``. When the grader runs as root, the kernel runs under an unprivileged uid of its own so
that the process limit counts only the kernel's own processes.

``none`` keeps the resource limits and the scratch folder but nothing else; it must be asked for.
"""
from __future__ import annotations

import functools
import importlib.util
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from grader import resources
from grader.errors import SandboxUnavailable
from grader.rubric import Limits

# Each kernel runs under its own unprivileged uid (when the grader is root), so the process
# limit counts only that kernel's processes: a fork bomb in one submission cannot starve a
# kernel graded beside it. The uid follows the grading process, which runs one kernel at a time.
UID_BASE = 100_000
# A grading process may hold a second kernel, started ahead for its next submission
# (grader/kernelpool.py), beside the one it grades: each slot is a uid of its own, so the two
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


def reap_kernel_processes(timeout: float = 10.0, uid: int | None = None) -> int:
    """Kill every process still running under this grading process's kernel uid; wait for them.

    A kernel's forks, background processes and daemons end with its PID namespace, but not at
    once; a restarted kernel under the same uid would find the process limit still used up by
    them. The uid is this grading process's own, so nothing else is touched. Returns how many
    were left when the time ran out (0: all gone). Does nothing unless the grader is root.
    """
    if not _drop_privileges():
        return 0
    import signal
    import time
    uid = kernel_uid() if uid is None else uid
    deadline = time.monotonic() + timeout
    while True:
        left = []
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/status", encoding="utf-8", errors="replace") as f:
                    line = next((ln for ln in f if ln.startswith("Uid:")), "")
                if line and int(line.split()[1]) == uid:
                    left.append(int(entry.name))
            except (OSError, ValueError, IndexError):
                continue
        if not left or time.monotonic() > deadline:
            return len(left)
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.05)


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
        join = cgroup.argv() if cgroup is not None else []
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
            "MPLBACKEND": "Agg",
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

    def remove(self) -> None:
        for d in self.dirs:
            for _ in range(50):  # the kernel's processes may take a moment to be reaped
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.05)


def sweep_stale_cgroups(prefix: str = "sheet11-run-") -> None:
    """Remove the (empty) cgroups of grading processes that were killed before they could remove
    them (a worker stopped over budget, a killed batch or cluster worker, a kernel started ahead
    for a submission that never came): their names carry the dead pid. ``rmdir`` only removes an
    empty cgroup, so a cgroup with a process still in it is never touched."""
    if not _cgroup_layout():
        return
    for parent in (CGROUP_ROOT, CGROUP_ROOT / "memory", CGROUP_ROOT / "pids"):
        try:
            stale = [d for d in parent.glob(f"{prefix}*-*") if d.is_dir()]
        except OSError:
            continue
        for d in stale:
            pid = d.name[len(prefix):].split("-")[0]
            if pid.isdigit() and not Path(f"/proc/{pid}").exists():
                try:
                    d.rmdir()
                except OSError:
                    pass


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
