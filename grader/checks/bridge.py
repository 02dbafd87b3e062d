"""The channel between the grader and a student's kernel: plain arrays and JSON, never pickles.

The grader writes a call's inputs as ``.npy`` files and a JSON description into a fresh folder of
its own, bound into the kernel's sandbox, then runs the bridge's kernel side there
(grader/checks/bridge_kernel.py, sent as source and executed afresh with every call), which loads
them, calls the student's function and writes what came back the same way. The grader then reads
the files with ``allow_pickle=False``, without following links, under a size cap. Whatever the
kernel does to this channel can only change the values it reports for itself.
"""
from __future__ import annotations

import io
import itertools
import json
import os
import stat
import tempfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from grader.checks.cases import LossSpec
from grader.checks.raised import Frame, frames_from
from grader.cleantext import strip_controls
from grader.kernel.execute import CodeResult, KernelSession
from grader.kernel.kernelcode import fresh_call
from grader.kernel.sandbox import give_to_kernel
from grader.kernel.tree import kernel_tasks

#: The kernel side of every call (its source is sent, never a path): grader/checks/bridge_kernel.py.
KERNEL_MODULE = ("grader.checks", "bridge_kernel.py")
MAX_JSON_BYTES = 1_000_000
MAX_ARRAY_BYTES = 200_000_000
# All arrays of one answer together: the largest real answer (held-out logits) is well under 1 MB;
# a kernel returning many huge arrays must not fill the grader's memory.
MAX_RESULT_BYTES = 64_000_000
# Inputs (and a dict's keys) reported after a verified call; the kernel side uses the same number
# (bridge_kernel.MAX_INPUT_ENTRIES). Far above any rubric's inputs (tree_encode's vocabulary is the
# largest), and a bound on what the grader reads.
MAX_INPUT_ENTRIES = 4096

@dataclass(frozen=True)
class Returned:
    """What a call gave back: a value in plain data, or the error it raised, or why nothing came."""

    status: str  # ok | raised | timeout | died | garbled
    value: Any = None  # numpy arrays, tuples, dicts, floats, or a TypeInfo
    error: str = ""
    #: The raised exception's class name, as the kernel says (student feedback only: "not
    #: implemented yet" for NotImplementedError; never a score).
    error_type: str = ""
    seconds: float = 0.0
    trace: str = ""  # with "raised": the traceback's frames as text (grader/checks/raised.py reads it)
    #: With "raised": the frames, with their array locals' shapes (grader/checks/causes.py reads them).
    frames: tuple[Frame, ...] = ()
    #: With ``verify``: the second call on fresh copies of the inputs (``None`` when it was not
    #: reported), and the first call's inputs as the kernel saw them after the call.
    second: Returned | None = None
    inputs_after: tuple[InputState, ...] | None = None
    #: With ``verify``: the name under which the kernel keeps both calls' inputs for
    #: :meth:`Bridge.recheck`, and how many threads and processes the kernel held after the
    #: calls beyond those before (counted from outside, grader/kernel/tree.py; ``None``: unknown).
    call_id: str = ""
    tasks_left: int | None = None


@dataclass(frozen=True)
class InputState:
    """One input after the call, as the kernel reported it: evidence the grader checks."""

    path: str
    same: bool = True        # still the object the caller passed
    present: bool = True     # still in its dict (or argument list)
    value: Any = None        # ArrayInfo / TypeInfo of a tensor input
    requires_grad: bool = False
    grad: Any = None         # ArrayInfo (or TypeInfo) of .grad, None when there is none
    keys: tuple[str, ...] | None = None  # a dict input's keys


#: One verified call's inputs looked at again: the first and the second call's (grader/checks/contract.py).
Rechecked = tuple[tuple[InputState, ...] | None, ...]


class SeqInfo(tuple[Any, ...]):
    """A returned list or tuple: its first items (the kernel sends at most 16) and what it was,
    so a report says "a list of 30", not "a tuple of 16"."""

    kind: str
    length: int

    def __new__(cls, items: Any = (), kind: str = "tuple", length: int | None = None) -> SeqInfo:
        self = super().__new__(cls, items)
        self.kind = kind
        self.length = len(self) if length is None else length
        return self


@dataclass(frozen=True)
class TypeInfo:
    """A returned object that is not data: only its kind is known."""

    kind: str


@dataclass(frozen=True)
class ArrayInfo:
    array: np.ndarray
    kind: str   # tensor | ndarray
    dtype: str  # as the kernel named it, e.g. torch.float32


class Bridge:
    """Calls functions in a :class:`KernelSession` with plain-data inputs and outputs."""

    def __init__(self, session: KernelSession) -> None:
        self.session = session
        self._ids = itertools.count(1)

    def _folder(self) -> Path:
        # In the session's own `calls` folder, which the kernel cannot change (not in its
        # scratch space, where it could have put a link in the way), under a name it cannot guess.
        return Path(tempfile.mkdtemp(prefix=f"{next(self._ids)}-", dir=self.session.calls))

    def call(self, expr: str, args: dict[str, Any], timeout: float, verify: bool = False) -> Returned:
        """Evaluate ``expr`` (e.g. ``rnn_forward(**__args)``) in the kernel with ``args``.

        With ``verify`` the kernel calls twice, on fresh copies of ``args`` each time, within
        ``2 * timeout``, and reports the first call's inputs as it left them
        (:attr:`Returned.inputs_after`) and the second result (:attr:`Returned.second`).
        """
        folder = self._folder()
        spec = {"args": {k: _encode(v, folder, k) for k, v in args.items()}}
        _write_new(folder / "call.json", json.dumps(spec).encode())
        if self.session.sandbox.confined:
            give_to_kernel(folder, self.session.uid)  # only now may the kernel write (its result) there
        # The kernel side is executed afresh with every call, so a student cannot have replaced it.
        code = fresh_call(*KERNEL_MODULE, "call", str(folder), expr, bool(verify), MAX_RESULT_BYTES, notebook=True)
        before = kernel_tasks(self.session) if verify else None
        ran: CodeResult = self.session.run_code(code, 2 * timeout if verify else timeout)
        after = kernel_tasks(self.session) if verify and ran.status == "ok" else None
        if ran.status in ("timeout", "died"):
            return Returned(ran.status, seconds=ran.seconds)
        try:
            result = json.loads(_read_plain(folder / "result.json", MAX_JSON_BYTES))
            if not result.get("ok"):
                return Returned("raised", error=plain_text(result.get("error", "")), seconds=ran.seconds,
                                error_type=_identifier(result.get("type")),
                                trace=plain_text(result.get("trace", ""), 3000),
                                frames=frames_from(result.get("frames")))
            budget = [MAX_RESULT_BYTES]
            value = _decode(result["value"], folder, budget=budget)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            return Returned("garbled", error=f"the kernel's answer could not be read ({type(exc).__name__})"
                            + (f"; the cell failed: {ran.error}" if ran.error else ""), seconds=ran.seconds)
        if not verify:
            return Returned("ok", value, seconds=ran.seconds)
        # The evidence for the contract rules is read apart from the value: where it is missing
        # or garbled (only a kernel that tampered with this channel does that), the value still
        # counts and grader/checks/contract.py reports the rules as not verifiable, which costs the case.
        return Returned("ok", value, seconds=ran.seconds, second=_read_second(result, folder, budget),
                        inputs_after=_read_inputs(result.get("inputs"), folder, budget),
                        call_id=folder.name,
                        tasks_left=None if before is None or after is None else after - before)

    def recheck(self, call_ids: list[str], timeout: float) -> dict[str, Rechecked] | None:
        """The inputs of earlier verified calls (their :attr:`Returned.call_id`) as they are now.

        For each id: the state of the first and the second call's inputs (``None`` for a call whose
        evidence is unreadable, a one-item ``(None,)`` for an id the kernel no longer holds).
        ``None`` when the kernel did not answer at all. Evidence, like ``verify``'s: the grader
        compares it with its own copies (grader/checks/contract.py).
        """
        folder = self._folder()
        _write_new(folder / "call.json", json.dumps({"args": {}}).encode())
        if self.session.sandbox.confined:
            give_to_kernel(folder, self.session.uid)
        code = fresh_call(*KERNEL_MODULE, "call", str(folder), "0", False, MAX_RESULT_BYTES,
                          [str(i) for i in call_ids], notebook=True)
        ran = self.session.run_code(code, timeout)
        if ran.status in ("timeout", "died"):
            return None
        try:
            raw = json.loads(_read_plain(folder / "result.json", MAX_JSON_BYTES))["rechecks"]
            if not isinstance(raw, dict):
                return None
        except (OSError, ValueError, KeyError, TypeError):
            return None
        budget = [MAX_RESULT_BYTES]
        out: dict[str, Rechecked] = {}
        for call_id in call_ids:
            states = raw.get(call_id)
            if not isinstance(states, list) or not states:
                out[call_id] = (None,)
                continue
            out[call_id] = tuple(_read_inputs(s, folder, budget) for s in states[:2])
        return out


_READ_ERRORS = (OSError, ValueError, KeyError, TypeError, AttributeError)


def plain_text(value: Any, limit: int = 800) -> str:
    """Text the kernel sent (an exception's message, a type's name) as a report may show it: no
    terminal escapes, control or format characters (tab and newline stay), at most ``limit``
    characters."""
    # Format characters go too (zero-width ones included): an exception's message needs none.
    text = strip_controls(str(value)[:4 * limit])
    return "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch) not in ("Cc", "Cf"))[:limit]


def _identifier(value: Any) -> str:
    """A class name the kernel reported, or "" where it is not a plain identifier."""
    return value if isinstance(value, str) and len(value) <= 100 and value.isidentifier() else ""


def _read_second(result: Any, folder: Path, budget: list[int]) -> Returned | None:
    try:
        second = result["second"]
        if not second.get("ok"):
            return Returned("raised", error=plain_text(second.get("error", "")))
        return Returned("ok", _decode(second["value"], folder, budget=budget))
    except _READ_ERRORS:
        return None


def _read_inputs(raw: Any, folder: Path, budget: list[int]) -> tuple[InputState, ...] | None:
    try:
        if not isinstance(raw, list) or len(raw) > MAX_INPUT_ENTRIES:
            return None
        out = []
        for entry in raw:
            if "error" in entry:
                return None
            keys = entry.get("keys")
            grad = entry.get("grad")
            out.append(InputState(
                path=str(entry["path"])[:200], same=entry["same"] is True,
                present=entry["present"] is True,
                value=_decode(entry["value"], folder, budget=budget) if "value" in entry else None,
                requires_grad=entry.get("requires_grad") is True,
                grad=None if grad is None else _decode(grad, folder, budget=budget),
                keys=None if keys is None else tuple(str(k)[:200] for k in keys[:MAX_INPUT_ENTRIES])))
        return tuple(out)
    except _READ_ERRORS:
        return None


def _write_new(path: Path, data: bytes) -> None:
    """Create ``path`` afresh: never through a link, never over a file that is already there."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _save(folder: Path, name: str, array: np.ndarray) -> str:
    fname = f"in_{name}.npy"
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    _write_new(folder / fname, buf.getvalue())
    return fname


def _encode(value: Any, folder: Path, name: str) -> dict[str, Any]:
    if isinstance(value, torch.Tensor):
        return {"t": "array", "file": _save(folder, name, value.detach().cpu().numpy())}
    if isinstance(value, LossSpec):
        return {"t": "loss", "kind": value.kind, "file": _save(folder, name, value.vector.numpy())}
    if isinstance(value, dict):
        return {"t": "dict", "items": {k: _encode(v, folder, f"{name}_{i}")
                                       for i, (k, v) in enumerate(value.items())}}
    if isinstance(value, tuple):
        return {"t": "tree", "value": value}
    if isinstance(value, (str, int, float)):
        return {"t": "plain", "value": value}
    raise TypeError(f"cannot send {type(value).__name__} to the kernel")


def _read_plain(path: Path, limit: int) -> bytes:
    """Read a regular file the kernel wrote, never through a link, at most ``limit`` bytes."""
    # O_NONBLOCK: a FIFO in the file's place must not stall the grader in open().
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError("not a regular file")
        if info.st_size > limit:
            raise ValueError("too large")
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(limit + 1)
        if len(data) > limit:
            raise ValueError("too large")
        return data
    finally:
        os.close(fd)


def _decode(desc: Any, folder: Path, depth: int = 0, budget: list[int] | None = None) -> Any:
    if depth > 5 or not isinstance(desc, dict):
        raise ValueError("bad description")
    kind = desc["t"]
    if kind == "array":
        name = str(desc["file"])
        if "/" in name or not name.endswith(".npy"):
            raise ValueError("bad file name")
        budget = [MAX_RESULT_BYTES] if budget is None else budget
        data = _read_plain(folder / name, min(MAX_ARRAY_BYTES, budget[0]))
        budget[0] -= len(data)
        array = np.load(io.BytesIO(data), allow_pickle=False)
        if array.dtype != np.float64:
            raise ValueError("unexpected dtype")
        return ArrayInfo(array, str(desc.get("kind", "")), str(desc.get("dtype", "")))
    if kind == "scalar":
        return float(desc["value"])
    if kind == "seq":
        items = tuple(_decode(d, folder, depth + 1, budget) for d in desc["items"])
        # The kind and length are the kernel's word: they only shape the message, never a score.
        length = desc.get("len")
        return SeqInfo(items, plain_text(desc.get("kind", "tuple"), 100),
                       length if isinstance(length, int) and length >= 0 else None)
    if kind == "dict":
        return {str(k): _decode(v, folder, depth + 1, budget) for k, v in desc["items"].items()}
    return TypeInfo(plain_text(desc.get("kind", "unknown"), 100))
