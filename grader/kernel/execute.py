"""Run a notebook in a fresh, confined kernel and keep that kernel for the grader's calls.

One failing cell never stops the rest (``allow_errors``). A cell over the rubric's time is
interrupted (``cell.timeout``) and the next cell runs; a kernel that dies (``kernel.died``) is
started again, the cells before the fatal one are run again, the fatal one is skipped, and
execution goes on, so that functions defined before a crash can still be graded. Input requests
fail at once (``allow_stdin`` is off). Outputs are capped while they arrive, not afterwards.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from queue import Empty
from typing import Any, NoReturn

import nbformat
import zmq
import zmq.asyncio
from jupyter_core.utils import run_sync
from nbclient.exceptions import CellTimeoutError, DeadKernelError

from grader.kernel.jupyter import (
    MAX_MESSAGE_BYTES,
    UNREADABLE,
    CappedClient,
    describe_error,
    next_message,
    pinned_client,
    write_kernel_spec,
)
from grader.kernel.kernelcode import fresh_call
from grader.kernel.outcomes import (
    FATAL,
    CellOutcome,
    CodeResult,
    ExecutionResult,
    KernelStartError,
    RunFlag,
    cell_outcome,
    not_run,
)
from grader.kernel.runfolder import new_run_folder
from grader.kernel.sandbox import (
    KernelCgroup,
    Sandbox,
    give_to_kernel,
    kernel_uid,
    reap_kernel_processes,
    runs_as_kernel_uid,
)
from grader.kernel.sockets import PinnedSockets
from grader.rubric import Limits

# This module is the front door of running a notebook: the records it returns
# (grader/kernel/outcomes.py), the Jupyter classes it drives (grader/kernel/jupyter.py) and the
# pinned sockets (grader/kernel/sockets.py) stay importable from here.
__all__ = ["KERNEL_NAME", "MAX_MESSAGE_BYTES", "PREIMPORT", "CellOutcome", "CodeResult", "ExecutionResult",
           "KernelSession", "KernelStartError", "PinnedSockets", "RunFlag"]

KERNEL_NAME = "sheet11-sandbox"
# Seconds a check of the output channel waits for its answer on a working kernel (after an
# interrupt, the queued output of the stopped cell is read and dropped first).
OUTPUT_CHECK_SECONDS = 10


# Runs in the kernel after it starts, in two requests of its own: what one execution prints is
# cut in the kernel already (grader/kernel/output_cap_kernel.py, sent as source).
OUTPUT_CAP_MODULE = ("grader.kernel", "output_cap_kernel.py")


# What a kernel of the batch's pool (grader/kernel/kernelpool.py) runs while it boots, before any cell:
# numpy and torch are imported (IPython's exec_lines; the names are deleted again, so a notebook
# that forgets `import torch` still fails), so a kernel started ahead has done that work while
# the grader was busy with the submission before. The sheet's notebooks import both in their
# first cells anyway. Kernels started on demand (`grade check`, tests) do not preload.
PREIMPORT = "import numpy as _sheet11_np, torch as _sheet11_torch; del _sheet11_np, _sheet11_torch"


class KernelSession:
    """A confined kernel that runs a notebook and then the grader's own calls.

    Use as a context manager; the scratch folder (the kernel's only writable place, and the
    channel for plain-data files between kernel and grader) is removed on exit.
    """

    def __init__(self, sandbox: Sandbox, limits: Limits, threads: int = 1, slot: int = 0,
                 preimport: bool = False) -> None:
        self.sandbox, self.limits, self.threads = sandbox, limits, threads
        # The kernel's uid: one per slot, so a kernel started ahead in the same grading process
        # (grader/kernel/kernelpool.py) never shares a uid with the one being graded.
        self.uid = kernel_uid(slot)
        self._launched = False  # True: started ahead by launch(), not yet connected
        self.preimport = preimport  # every start of this session (restarts too) preloads PREIMPORT
        self.base = new_run_folder()
        # One cgroup per session caps the kernel and all it starts, across restarts.
        self.cgroup = KernelCgroup.create(self.base.name, limits) if sandbox.confined else None
        self.scratch = self.base / "kernel"
        self.scratch.mkdir()
        self.sandbox.prepare(self.scratch, self.uid)
        # The grader's own folders beside the scratch, bound into the sandbox at the same path:
        # the kernel can neither replace them nor plant links in them (the grader writes and
        # reads there as root). `conn` holds the connection file, `calls` the bridge's calls.
        self.conn = self.base / "conn"
        self.calls = self.base / "calls"
        for shared in (self.conn, self.calls):
            shared.mkdir(mode=0o755)
            os.chmod(shared, 0o755)
        # The kernel's own stdout/stderr (os.write(1, ...), C libraries) never reach the
        # tutor's terminal; stderr is kept, under the kernel's file size limit, for start errors.
        self._stderr_path = self.base / "kernel-stderr.log"
        self._stderr: Any = None
        self._context: zmq.asyncio.Context | None = None
        self._specs = self.base / "kernels"
        self.client: CappedClient | None = None
        self.nb: Any = None
        self.good_cells: list[int] = []  # cells to run again after a restart
        self.skip: set[int] = set()
        self.restarts = 0
        self._starts = 0
        self._pinned: PinnedSockets | None = None
        # One time budget for everything this submission's kernels do: the notebook, re-runs
        # after restarts and the grader's calls. A kernel that dies on every call cannot turn
        # restarts into hours.
        self.budget_end = time.monotonic() + limits.submission_timeout
        self._deadline = self.budget_end  # the notebook's deadline while it runs
        self.call_flags: list[RunFlag] = []  # budget or restart trouble during the grader's calls
        self._stored_total = 0  # outputs kept so far, carried across restarts

    # -- kernel lifetime -------------------------------------------------------------------
    def __enter__(self) -> KernelSession:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self._stop()
        if self.cgroup is not None:
            self.cgroup.remove()
        shutil.rmtree(self.base, ignore_errors=True)

    def _stderr_tail(self) -> str:
        try:
            with open(self._stderr_path, "rb") as f:
                f.seek(max(0, self._stderr_path.stat().st_size - 600))
                tail = f.read().decode("utf-8", "replace").strip()
        except OSError:
            return ""
        return f"; kernel stderr: ...{tail[-300:]}" if tail else ""

    def _stop(self) -> None:
        self._launched = False
        client, self.client = self.client, None
        if client is not None:
            self._stored_total = client._total
        if client is None:
            if self._context is not None:
                self._context.destroy(linger=0)
                self._context = None
            self._release_sockets()
            return
        try:
            if client.kc is not None:
                client.kc.stop_channels()
        except Exception:  # noqa: BLE001 - a dead kernel's channels may already be gone
            pass
        try:
            if client.km is not None and client.km.has_kernel:
                run_sync(client.km.shutdown_kernel)(now=True)
        except Exception:  # noqa: BLE001
            pass
        context, self._context = self._context, None
        if context is not None:
            context.destroy(linger=0)
        self._release_sockets()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        if self.sandbox.confined:
            # Forks and background processes of the old kernel must be gone before a new one
            # starts under the same uid and process limit.
            reap_kernel_processes(uid=self.uid, mark=self.base.name)

    def _release_sockets(self) -> None:
        pinned, self._pinned = self._pinned, None
        if pinned is not None:
            pinned.close()

    def _socket_folder(self) -> Path:
        """A fresh folder for this start's sockets, the only one the kernel may bind in."""
        self._starts += 1
        folder = self.base / f"s{self._starts}"
        folder.mkdir(mode=0o700)
        if self.sandbox.confined:
            give_to_kernel(folder, self.uid)
        return folder

    def _socket_owner(self) -> int:
        return self.uid if self.sandbox.confined and runs_as_kernel_uid() else os.geteuid()

    def launch(self) -> None:
        """Start the kernel process now, without waiting for it to be ready: it boots and imports
        numpy and torch while the grader works on something else; :meth:`start` then only
        connects.

        Used by grader/kernel/kernelpool.py for the next submission's kernel. The kernel is the same as
        one started by :meth:`start` (same command, sandbox, uid slot, limits, cgroup); it has run
        no code but its own start-up.
        """
        self._launch(nbformat.v4.new_notebook())
        self._launched = True

    def start(self, nb: Any) -> None:
        """Start a fresh kernel for ``nb`` (the notebook object nbclient fills with outputs).

        A kernel this session launched ahead and never used is connected to instead; should it
        not answer, a fresh one is started as if there had been none."""
        if self._launched:
            self._launched = False
            assert self.client is not None
            self.nb = self.client.nb = nb
            try:
                self._connect()
                return
            except KernelStartError:
                pass  # nothing of the student's ran in it: start afresh, as without a pool
        self._launch(nb)
        self._connect()

    def _launch(self, nb: Any) -> None:
        """Spawn the kernel process; returns once its sockets are pinned (before it is ready)."""
        self._stop()
        self.nb = nb
        sockets = self._socket_folder()
        write_kernel_spec(self._specs, KERNEL_NAME, self.sandbox.kernel_argv(
            self.scratch, self.limits, (self.calls, sockets), self.cgroup, readonly=(self.conn,), uid=self.uid))
        extra = [f"--IPKernelApp.exec_lines={PREIMPORT}"] if self.preimport else []
        client, self._context, self._pinned = pinned_client(
            nb, KERNEL_NAME, self._specs, sockets, self.conn / "connection.json", self._socket_owner(), self.limits,
            extra)
        client._total = self._stored_total  # the notebook-wide cap holds across restarts
        self.client = client
        try:
            self._stderr = open(self._stderr_path, "ab")
            client.start_new_kernel(env=self.sandbox.kernel_env(self.scratch, self.threads),
                                    cwd=str(self.scratch), stdout=subprocess.DEVNULL,
                                    stderr=self._stderr)
        except Exception as exc:  # noqa: BLE001 - any start failure is the same outcome
            self._start_failed(exc)

    def _connect(self) -> None:
        """Wait for the launched kernel to answer, then cap its output."""
        assert self.client is not None
        try:
            self.client.start_new_kernel_client()
            cap = fresh_call(*OUTPUT_CAP_MODULE, "cap_output", self.limits.max_output_chars + 200,
                             10 * self.limits.max_output_chars + self.limits.max_picture_chars)
            if not (self._call(cap, 20)[0] == "ok"
                    and self._call(fresh_call(*OUTPUT_CAP_MODULE, "settle"), 20)[0] == "ok"):
                raise RuntimeError("the kernel did not answer its first request")
        except Exception as exc:  # noqa: BLE001 - any start failure is the same outcome
            self._start_failed(exc)

    def _start_failed(self, exc: Exception) -> NoReturn:
        detail = f"{type(exc).__name__}: {exc}"[:300] + self._stderr_tail()
        self._stop()
        raise KernelStartError(detail) from None

    def _execute(self, cell: Any, index: int, timeout: float) -> tuple[str, float]:
        """Run one notebook cell: returns (status, seconds) with status ok | error | timeout |
        died | timeout-dead (stopped, and the kernel did not answer again) | mute (the kernel
        answers, but its output channel no longer works) | timeout-mute (both: stopped, and
        mute after that)."""
        assert self.client is not None
        self.client.timeout = max(1, int(timeout))
        t0 = time.monotonic()
        try:
            self.client.execute_cell(cell, index, store_history=True)
        except DeadKernelError:
            return "died", time.monotonic() - t0
        except UNREADABLE:
            # A message the grader cannot read (a kernel can write raw ZeroMQ messages, e.g.
            # JSON nested 100,000 deep): that kernel is done with; it is stopped like a dead one.
            self._stop()
            return "died", time.monotonic() - t0
        except CellTimeoutError:
            # The cell's time ran out, or its reply came but not the rest of its output within
            # IOPUB_TIMEOUT. Either way the kernel is interrupted (harmless when it is idle) and its
            # output channel checked: a kernel whose output is dead (a print flood can leave it
            # so) would cost every later cell IOPUB_TIMEOUT seconds, so it is restarted.
            seconds = time.monotonic() - t0
            if not self._alive():
                return "died", seconds  # no interrupt to wait for
            answered, output_works = self._interrupt()
            if not answered:
                return "timeout-dead", seconds
            if not output_works:
                return ("mute" if seconds < timeout else "timeout-mute"), seconds
            if seconds < timeout:  # only the output was late, and the channel works: the cell ran
                return ("error" if describe_error(cell) else "ok"), seconds
            return "timeout", seconds
        seconds = time.monotonic() - t0
        return ("error" if describe_error(cell) else "ok"), seconds

    def _call(self, source: str, timeout: float) -> tuple[str, float, str]:
        """Run grader code and wait for its reply on the shell channel only.

        The grader's calls answer through files (grader/checks/bridge.py), so their output is not read:
        a kernel whose output channel is slow, flooded or dead costs the calls nothing. Returns
        (status, seconds, error) with status ok | error | timeout | died | timeout-dead.
        """
        assert self.client is not None and self.client.kc is not None
        kc = self.client.kc
        t0 = time.monotonic()
        deadline = t0 + timeout
        try:
            msg_id = kc.execute(source, store_history=False, silent=True, stop_on_error=False)
            while (left := deadline - time.monotonic()) > 0:
                try:
                    msg = next_message(kc.get_shell_msg, min(1.0, left))
                except Empty:
                    if not self._alive():
                        return "died", time.monotonic() - t0, ""
                    continue
                if msg["parent_header"].get("msg_id") != msg_id:
                    continue  # an answer to an earlier, interrupted request
                content = msg["content"]
                if content.get("status") == "ok":
                    return "ok", time.monotonic() - t0, ""
                error = f"{content.get('ename', 'Error')}: {content.get('evalue', '')}"[:500]
                return "error", time.monotonic() - t0, error
        except UNREADABLE:
            self._stop()  # as in _execute: a kernel that sends what cannot be read is done with
            return "died", time.monotonic() - t0, ""
        seconds = time.monotonic() - t0
        if not self._alive():
            return "died", seconds, ""
        answered, _ = self._interrupt()
        return ("timeout" if answered else "timeout-dead"), seconds, ""

    def _alive(self) -> bool:
        try:
            return bool(self.client is not None and self.client.km is not None
                        and run_sync(self.client.km.is_alive)())
        except Exception:  # noqa: BLE001 - a manager that cannot tell is treated as dead
            return False

    def _interrupt(self) -> tuple[bool, bool]:
        """Interrupt the running cell (harmless when the kernel is idle).

        Returns (answered, output_works): whether the kernel answers a request again within a
        few seconds, and whether that request's output reached the grader too (its "idle"
        status on the output channel; what the stopped cell still had queued is read and dropped
        on the way, within OUTPUT_CHECK_SECONDS).
        """
        assert self.client is not None and self.client.km is not None
        try:
            run_sync(self.client.km.interrupt_kernel)()
            kc = self.client.kc
            msg_id = kc.execute("pass", store_history=False, silent=True)
            deadline = time.monotonic() + 10
            answered = False
            while not answered and time.monotonic() < deadline:
                msg = next_message(kc.get_shell_msg, max(0.1, deadline - time.monotonic()))
                answered = msg["parent_header"].get("msg_id") == msg_id
            if not answered:
                return False, False
        except Exception:  # noqa: BLE001 - no answer means the kernel is stuck or gone
            return False, False
        deadline = time.monotonic() + OUTPUT_CHECK_SECONDS
        try:
            while time.monotonic() < deadline:
                msg = next_message(kc.get_iopub_msg, max(0.1, deadline - time.monotonic()))
                if (msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "status"
                        and msg["content"].get("execution_state") == "idle"):
                    return True, True
        except Exception:  # noqa: BLE001 - nothing more came (Empty), or it could not be read
            pass
        return True, False

    def remaining(self) -> float:
        """Seconds left before the notebook's deadline or the submission's budget."""
        return min(self._deadline, self.budget_end) - time.monotonic()

    def _restart(self) -> None:
        """A fresh kernel with the good cells run again (quietly, outputs kept from before).

        Counted against ``max_restarts``; the re-runs share the notebook's deadline and the
        submission's budget. A kernel that dies again while re-running is not restarted again
        from here (:class:`KernelStartError`): a kernel that dies on every call ends quickly.
        """
        if self.restarts >= self.limits.max_restarts:
            raise KernelStartError(f"the kernel died {self.restarts + 1} times; it is restarted at "
                                   f"most {self.limits.max_restarts} times per submission")
        if self.remaining() <= 0:
            raise KernelStartError("no time was left in the submission's budget of "
                                   f"{self.limits.submission_timeout:g} s to restart it")
        self.restarts += 1
        # Re-runs get at most one notebook_timeout, also when a grader call killed the kernel.
        rerun_end = time.monotonic() + self.limits.notebook_timeout
        self.start(self.nb)
        for index in self.good_cells:
            left = min(self.remaining(), rerun_end - time.monotonic())
            if left <= 0:
                raise KernelStartError("the time ran out while the cells before the crash were "
                                       "run again")
            cell = nbformat.from_dict(self.nb.cells[index])
            status, _ = self._execute(cell, index, min(self.limits.cell_timeout, left))
            if status in FATAL:
                self._stop()
                raise KernelStartError(f"the kernel died again while cell {index + 1} was run again "
                                       "after a restart")

    # -- the notebook ----------------------------------------------------------------------
    def run_notebook(self, nb: Any) -> ExecutionResult:
        """Run every code cell of ``nb`` in order, within the rubric's limits."""
        result = ExecutionResult()
        t_start = time.monotonic()
        self._deadline = deadline = min(t_start + self.limits.notebook_timeout, self.budget_end)
        try:
            self.start(nb)
        except KernelStartError as exc:
            result.started = False
            result.flags.append(RunFlag("kernel.died", f"the kernel did not start: {exc}"))
            return result
        code_cells = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.source.strip()]
        for pos, index in enumerate(code_cells):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                cells, flag = not_run(code_cells[pos:], self.limits.notebook_timeout)
                result.cells += cells
                result.flags.append(flag)
                break
            cell = nb.cells[index]
            status, seconds = self._execute(cell, index, min(self.limits.cell_timeout, remaining))
            outcome, found = cell_outcome(status, index, seconds, self.limits.cell_timeout, describe_error(cell))
            result.cells.append(outcome)
            result.flags += [found] if found is not None else []
            if status not in FATAL:
                # ok, error or timeout: interrupted, but what it defined before stays
                self.good_cells.append(index)
                continue
            # died, a timeout the kernel did not come back from, or an output channel gone dead
            self.skip.add(index)
            try:
                self._restart()
            except KernelStartError as exc:
                left = code_cells[pos + 1:]
                if left and self.remaining() <= 0:
                    # The restart found the notebook's time used up: that is why the rest is not run.
                    cells, flag = not_run(left, self.limits.notebook_timeout)
                else:
                    cells, flag = [CellOutcome(i, "not_run") for i in left], RunFlag(
                        "kernel.died", f"the kernel could not be restarted: {exc}")
                result.cells += cells
                result.flags.append(flag)
                break
        result.seconds = time.monotonic() - t_start
        # The grader's calls get what is left of the submission's budget (not the notebook's).
        self._deadline = self.budget_end
        return result

    def kernel_pid(self) -> int | None:
        """The pid of the process the grader started for the kernel (the sandbox's outermost)."""
        km = self.client.km if self.client is not None else None
        pid = getattr(getattr(km, "provisioner", None), "pid", None)
        return pid if isinstance(pid, int) else None

    # -- the grader's calls ----------------------------------------------------------------
    def run_code(self, source: str, timeout: float) -> CodeResult:
        """Run grader code in the kernel; a dead kernel is restarted for the next call."""
        if self.client is None:
            return CodeResult("died", 0.0, "the kernel is not running")
        left = self.remaining()
        if left <= 0:
            self._note_call_flag("notebook.timeout", "the submission used up its time budget of "
                                 f"{self.limits.submission_timeout:g} s (notebook, restarts and the "
                                 "grader's calls together); the remaining checks were not run")
            return CodeResult("timeout", 0.0, "the submission's time budget is used up")
        timeout = min(timeout, left)
        status, seconds, error = self._call(source, timeout)
        if status in ("died", "timeout-dead"):
            try:
                self._restart()
            except KernelStartError as exc:
                self._stop()
                self._note_call_flag("kernel.died", f"the kernel died during the grader's calls and "
                                     f"was not started again: {exc}; the remaining checks were not run")
            return CodeResult("died" if status == "died" else "timeout", seconds)
        return CodeResult(status, seconds, error)


    def _note_call_flag(self, code: str, message: str) -> None:
        if not any(f.code == code for f in self.call_flags):
            self.call_flags.append(RunFlag(code, message))
