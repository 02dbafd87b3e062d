"""The two Jupyter classes the grader extends: the client that caps output, the manager that pins.

nbclient and jupyter_client are not type-checked (pyproject.toml: their annotations describe
coroutines that run as blocking methods), so their classes are ``Any`` to mypy; this module is
the one place that subclasses them, hence the one setting below. Everything the rest of the
grader reads from a kernel comes through here:

- :class:`CappedClient` keeps at most so much output per cell, pictures apart, and so much for the
  whole notebook, as it arrives; a message over :data:`MAX_MESSAGE_BYTES` never arrives at all
  (ZeroMQ drops it, with at most :data:`MAX_QUEUED_MESSAGES` queued);
- :class:`PinningKernelManager` connects only to sockets pinned by grader/kernel/sockets.py;
- :func:`next_message` reads one message within a bound on the *whole* read;
- :data:`UNREADABLE` is what reading a malformed message can raise (that kernel is done with).
"""
# mypy: disallow-subclassing-any=False
from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from queue import Empty
from typing import Any

import nbformat
import zmq
import zmq.asyncio
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import run_sync
from nbclient import NotebookClient

from grader.kernel.sockets import SOCKET_CHANNELS, PinnedSockets
from grader.outputs import PICTURE_TYPES
from grader.rubric import Limits

# The largest message the grader takes from a kernel, and how many it queues: a kernel that
# prints gigabytes at once (ipykernel sends what was printed in 0.2 s as one message) or sends
# raw messages of its own cannot make the grader's memory grow. Larger messages are dropped.
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
MAX_QUEUED_MESSAGES = 64
# Seconds to wait, after a cell's reply, for the rest of its output. The kernel sends its output
# before the reply, so a kernel whose output channel works is far quicker; one that does not
# answer in this time is checked (grader/kernel/execute.py) and restarted when its output channel is dead.
IOPUB_TIMEOUT = 4


def _message_size(content: dict[str, Any]) -> int:
    """How many characters an output message would store: its text, data, metadata and all.

    Measured on the whole content, so a display with 2 MB of metadata counts 2 MB. A content
    that cannot be serialised (absurd nesting) counts as infinitely large: it is dropped.
    """
    try:
        return len(json.dumps(content, default=str, ensure_ascii=False))
    except (RecursionError, ValueError, TypeError, OverflowError):
        return 1 << 62


class CappedClient(NotebookClient):
    """A NotebookClient that keeps at most ``max_chars`` of output per cell, ``max_picture_chars``
    of pictures per cell besides, and ``max_total`` for the whole notebook (the grader's runs
    included), as it arrives.

    Pictures have a budget of their own: a plot's base64 PNG (typically 40-100 KB) is far larger
    than any text a cell is expected to print, and counted as text it would be cut from every
    report; counted apart, a print flood cannot crowd a plot out, nor a picture flood the text.
    """

    max_chars: int = 20000
    max_picture_chars: int = 512 * 1024
    max_total: int = 8_000_000

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._kept: dict[tuple[int, bool], int] = {}
        self._total = 0
        self._noted_total: set[int] = set()

    def output(self, outs: list[Any], msg: dict[str, Any], display_id: str | None, cell_index: int) -> Any:
        content = msg.get("content", {})
        size = _message_size(content)
        picture = _is_picture(content)
        budget = self.max_picture_chars if picture else self.max_chars
        kept = self._kept.get((cell_index, picture), 0)
        if self._total + size > self.max_total:
            # Notebook-wide: 3,000 cells of 20 KB each must not add up in the grader's memory.
            if cell_index not in self._noted_total:
                self._noted_total.add(cell_index)
                outs.append(nbformat.v4.new_output(
                    "stream", name="stderr",
                    text=f"\n[output dropped: the notebook's stored outputs passed "
                         f"{self.max_total / 1e6:g} MB]\n"))
            return None
        if kept + size > budget:
            if kept <= budget:
                self._kept[cell_index, picture] = budget + 1
                what = (f"this cell's pictures passed {budget // 1024} KB together" if picture
                        else f"this cell printed more than {budget} characters")
                outs.append(nbformat.v4.new_output("stream", name="stderr", text=f"\n[output cut: {what}]\n"))
            return None
        self._kept[cell_index, picture] = kept + size
        self._total += size
        return super().output(outs, msg, display_id, cell_index)


def _is_picture(content: Any) -> bool:
    """A display whose data holds a raster image: what a report can show as a picture."""
    data = content.get("data") if isinstance(content, dict) else None
    return isinstance(data, dict) and any(m in data for m in PICTURE_TYPES)


def next_message(get_msg: Any, timeout: float) -> dict[str, Any]:
    """The next message of a channel within ``timeout`` seconds, else :class:`queue.Empty`.

    jupyter_client's ``get_msg(timeout)`` bounds only its wait for the socket to be readable; the
    read after that has no bound, and a message over MAX_MESSAGE_BYTES (which ZeroMQ drops, with
    the connection) leaves it waiting for ever. The whole read is bounded here.
    """
    async def within() -> dict[str, Any]:
        try:
            return await asyncio.wait_for(get_msg(timeout=timeout), timeout + 1.0)
        except TimeoutError:
            raise Empty from None
    return run_sync(within)()


# What reading a kernel's message can raise when the kernel sent something malformed.
UNREADABLE = (RecursionError, MemoryError, ValueError, TypeError, KeyError, UnicodeError)


def describe_error(cell: Any) -> str:
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            return f"{out.get('ename', 'Error')}: {out.get('evalue', '')}"[:500]
    return ""


class PinningKernelManager(AsyncKernelManager):
    """A kernel manager whose connections go only to sockets pinned by :class:`PinnedSockets`."""

    pinned: PinnedSockets | None = None
    pin_timeout: float = 60.0

    async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
        await super()._async_launch_kernel(kernel_cmd, **kw)
        # Before anything connects (the control socket connects right after this returns).
        assert self.pinned is not None
        await self.pinned.pin(self.is_alive, self.pin_timeout)

    def _make_url(self, channel: str) -> str:
        assert self.pinned is not None
        return self.pinned.url(channel)


def pinned_client(nb: Any, kernel_name: str, specs: Path, sockets: Path, connection_file: Path, owner: int,
                  limits: Limits, extra_arguments: list[str]
                  ) -> tuple[CappedClient, zmq.asyncio.Context, PinnedSockets]:
    """A client for ``nb`` whose kernel (``kernel_name`` of the spec folder ``specs``) binds its
    sockets in ``sockets``, owned by uid ``owner``, and is reached only through them, pinned.

    One ZeroMQ context for the manager and its client, with the size limits on every socket; the
    connection file is written afresh (a new socket folder per start) and made readable by the
    kernel. Nothing is started yet.
    """
    context = zmq.asyncio.Context()
    context.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
    context.setsockopt(zmq.RCVHWM, MAX_QUEUED_MESSAGES)
    connection_file.unlink(missing_ok=True)
    km = PinningKernelManager(context=context, kernel_name=kernel_name,
                              kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(specs)]),
                              transport="ipc", ip=str(sockets / "k"), connection_file=str(connection_file))
    km.write_connection_file()
    pinned = PinnedSockets(sockets, km.ip, {ch: getattr(km, f"{ch}_port") for ch in SOCKET_CHANNELS}, owner)
    km.pinned, km.pin_timeout = pinned, limits.kernel_start_timeout

    def make_client(**kw: Any) -> Any:
        kc = AsyncKernelManager.client(km, context=context, **kw)
        kc._make_url = pinned.url  # only the pinned sockets
        return kc
    km.client = make_client
    # Readable by the kernel's uid; the run folder itself is the grader's alone (0700).
    os.chmod(km.connection_file, 0o644)
    client = CappedClient(nb, km=km, timeout=int(limits.cell_timeout),
                          startup_timeout=int(limits.kernel_start_timeout),
                          allow_errors=True, interrupt_on_timeout=False,
                          iopub_timeout=IOPUB_TIMEOUT, raise_on_iopub_timeout=True,
                          kernel_name=kernel_name, record_timing=False, extra_arguments=extra_arguments)
    client.max_chars = limits.max_output_chars
    client.max_picture_chars = limits.max_picture_chars
    client.max_total = int(limits.max_outputs_mb * 1_000_000)
    return client, context, pinned


def write_kernel_spec(specs: Path, kernel_name: str, argv: list[str]) -> None:
    """The kernel spec ``kernel_name`` in the folder ``specs``: the command that starts the kernel."""
    spec_dir = specs / kernel_name
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec = {"argv": argv, "display_name": "Sheet 11 (sandboxed)", "language": "python",
            # bwrap starts the kernel in a new session, out of reach of a signal to the
            # launcher's group; an interrupt message reaches it.
            "interrupt_mode": "message"}
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
