"""The kernel's ZeroMQ sockets, each pinned before the grader connects to it.

ipykernel binds its sockets in a folder it can write. Connecting by path would let a kernel that
replaced a socket with a link (or with a host socket hard-linked in) make the grader, as root,
connect wherever it pointed, and ZeroMQ reconnects by path again after every drop. Instead each
socket is opened once with ``O_PATH | O_NOFOLLOW`` through the folder's descriptor, checked (a
socket, owned by the kernel), and the grader connects to ``/proc/self/fd/N``: always that same
socket, whatever the folder holds later (:class:`PinnedSockets`; grader/kernel/jupyter.py's kernel
manager and client connect only through it).
"""
from __future__ import annotations

import asyncio
import os
import stat
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from grader.kernel.outcomes import KernelStartError

# The kernel's ZeroMQ sockets (ipykernel binds them, the grader connects).
SOCKET_CHANNELS = ("shell", "iopub", "stdin", "control", "hb")


class PinnedSockets:
    """The kernel's IPC sockets, each held by an O_PATH descriptor the grader opened itself.

    ipykernel binds its sockets in a folder it can write. Connecting by path would let a
    kernel that replaced a socket with a link (or with a host socket hard-linked in) make the
    grader, as root, connect wherever it pointed, and ZeroMQ reconnects by path again after
    every drop. Instead each socket is opened once with O_PATH | O_NOFOLLOW through the
    folder's descriptor, checked (a socket, owned by the kernel), and the grader connects to
    ``/proc/self/fd/N``: always that same socket, whatever the folder holds later.
    """

    def __init__(self, folder: Path, ip: str, ports: dict[str, int], owner: int) -> None:
        self.folder, self.ip, self.ports, self.owner = folder, ip, ports, owner
        self.fds: dict[str, int] = {}

    def names(self) -> dict[str, str]:
        prefix = os.path.basename(self.ip)
        return {ch: f"{prefix}-{port}" for ch, port in self.ports.items()}

    async def pin(self, alive: Callable[[], Awaitable[bool]], timeout: float) -> None:
        """Wait for the kernel to bind every socket, seal the folder, check and pin each one."""
        folder_fd = os.open(self.folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            names = self.names()
            deadline = time.monotonic() + timeout
            while True:
                missing = []
                for name in names.values():
                    try:
                        os.stat(name, dir_fd=folder_fd, follow_symlinks=False)
                    except FileNotFoundError:
                        missing.append(name)
                if not missing:
                    break
                if not await alive():
                    raise KernelStartError("the kernel ended before it opened its sockets")
                if time.monotonic() > deadline:
                    raise KernelStartError(f"the kernel did not open its sockets within {timeout:g} s")
                await asyncio.sleep(0.05)
            if os.geteuid() == 0 and self.owner != 0:
                # Sealed: the kernel's uid may no longer add, remove or rename anything here.
                os.fchown(folder_fd, 0, 0)
                os.fchmod(folder_fd, 0o755)
            for channel, name in names.items():
                fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=folder_fd)
                self.fds[channel] = fd
                info = os.fstat(fd)
                if not stat.S_ISSOCK(info.st_mode) or info.st_uid != self.owner:
                    what = "a link" if stat.S_ISLNK(info.st_mode) else (
                        "not a socket" if not stat.S_ISSOCK(info.st_mode) else f"owned by uid {info.st_uid}")
                    self.close()
                    raise KernelStartError(f"the kernel's {channel} socket is {what}; nothing was "
                                           "connected to it")
        finally:
            os.close(folder_fd)

    def url(self, channel: str) -> str:
        if channel not in self.fds:
            # Never a fallback to the path: no connection before the sockets are pinned.
            raise KernelStartError(f"the kernel's {channel} socket was not checked yet")
        return f"ipc:///proc/self/fd/{self.fds[channel]}"

    def close(self) -> None:
        """Release the descriptors; only after the ZeroMQ context is gone (no reconnects)."""
        for fd in self.fds.values():
            try:
                os.close(fd)
            except OSError:
                pass
        self.fds.clear()
