"""How a student's kernel is confined.

The kernel runs under bubblewrap with no network, a private ``/tmp``, its own PID namespace, a
read-only view of only the Python environment it needs (with this project's packages masked),
a scratch folder as its only writable place, a minimal environment, and resource limits set by
``prlimit``. When the grader runs as root, the kernel runs under an unprivileged uid of its own so
that the process limit counts only the kernel's own processes (grader/kernel/uids.py), and one
cgroup caps the kernel and everything it starts (grader/kernel/cgroup.py). A kernel dies with
the grading process that launched it, however that process dies; what an earlier death left
behind is killed when the next session starts (:func:`sweep_stale_cgroups`,
grader/kernel/leftovers.py).

``none`` keeps the resource limits and the scratch folder but nothing else; it must be asked for.
"""
from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from grader import resources
from grader.errors import SandboxUnavailable
from grader.kernel.cgroup import CGROUP_ROOT, KernelCgroup, cgroup_layout, cgroup_note, sweep_stale_cgroups
from grader.kernel.leftovers import die_with_launcher_argv, reap_kernel_processes, sweep_stale_kernels
from grader.kernel.uids import (
    UID_BASE,
    UID_SLOT_STRIDE,
    drop_privileges,
    give_to_kernel,
    kernel_uid,
    runs_as_kernel_uid,
)
from grader.rubric import Limits

# This module is the front door of the kernel's confinement: what other modules import from it
# lives in grader/kernel/uids.py (the kernel's uid), grader/kernel/leftovers.py (no kernel outlives
# its grading process) and grader/kernel/cgroup.py (one cap per kernel), and stays importable here.
__all__ = ["CGROUP_ROOT", "PROJECT_ROOT", "TMP_BYTES", "UID_BASE", "UID_SLOT_STRIDE", "KernelCgroup", "Sandbox",
           "cgroup_note", "choose_sandbox", "die_with_launcher_argv", "give_to_kernel", "kernel_uid",
           "reap_kernel_processes", "runs_as_kernel_uid", "sweep_stale_cgroups", "sweep_stale_kernels"]
#: The cgroup probe under the name the tests have used (grader/kernel/cgroup.py's ``cgroup_layout``).
_cgroup_layout = cgroup_layout

# The kernel's private /tmp lives in memory: cap it, or many files could fill the tutor's RAM.
TMP_BYTES = 512 * 1024 * 1024


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
        return (join + _prlimit(limits) + _bwrap_args(scratch, shared, readonly) + drop_privileges(uid)
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
    masked = set(resources.package_folders())
    if PROJECT_ROOT is not None:  # a wheel install has no checkout; site-packages stays visible
        masked.add(PROJECT_ROOT)
    shown = [Path(s) for s in _SYSTEM_DIRS] + visible
    return sorted(p for p in masked if p.is_dir() and any(p.is_relative_to(v) for v in shown))


def _bwrap_args(scratch: Path, shared: tuple[Path, ...] = (), readonly: tuple[Path, ...] = ()) -> list[str]:
    args = ["bwrap", "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
            "--unshare-cgroup-try", "--die-with-parent", "--new-session",
            "--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--size", str(TMP_BYTES), "--tmpfs", "/tmp"]
    if not drop_privileges():
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
             "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev"] + drop_privileges() + ["true"]
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
