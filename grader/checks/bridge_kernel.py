"""Kernel side of the bridge: load a call's inputs from files, call, write what came back as files.

This module runs **in the student's kernel**: grader/checks/bridge.py sends its source with every
call and executes it in a fresh namespace, so a notebook cannot have replaced it, then calls
:func:`call` with the notebook's globals (where the student's functions live and where the
expression is evaluated). It imports only the standard library, numpy and torch, under private
names into its own namespace, so a student's ``np = None`` changes nothing here, and a patched
module (``json``, ``numpy``) changes only what this kernel reports about itself.

The channel is a folder the grader made: ``call.json`` describes the inputs (``.npy`` arrays, plain
values, trees, losses); :func:`call` builds them, evaluates the expression with them as
``__args`` (and ``__logits``, a model's outputs without gradients) and writes ``result.json`` and
one ``.npy`` file (float64) per returned array, never a pickle, at most ``limit`` bytes of arrays.

With ``verify``, the call is made twice on inputs loaded afresh from the files each time, and the
state of the first call's inputs is reported after the second returns (values, dtype, shape,
requires_grad, .grad, dict keys, and whether each object is still the one the caller passed);
both calls' inputs are kept in the notebook's globals under the folder's name, so that a later
``recheck`` (a list of those names) reports them again. This is evidence, not a verdict: the
grader compares that state with the inputs it sent and the second call's result with the first's
itself (grader/checks/contract.py), and a kernel that forges it can at best look like a function
that keeps the rules, which earns nothing the returned values do not earn anyway.
"""
from __future__ import annotations

import json as _json
import os as _os
import traceback as _tb
from collections.abc import Callable
from typing import Any

import numpy as _np
import torch as _torch

#: Items of a returned list or dict, and nesting levels, that are described.
MAX_ITEMS = 16
MAX_DEPTH = 4
#: Inputs (and a dict's keys) reported after a verified call (grader/checks/bridge.py reads as many).
MAX_INPUT_ENTRIES = 4096

#: One input as built: (path, "array" | "dict", the object passed, what the caller's slot holds now).
Tracked = tuple[str, str, Any, Callable[[], Any]]


class _Channel:
    """One call's folder: the inputs read from it, the answer's arrays written to it (at most
    ``limit`` bytes together; ``written`` passes ``limit`` once an array was refused)."""

    def __init__(self, folder: str, limit: int) -> None:
        self.folder, self.limit = folder, limit
        self.counter = 0
        self.written = 0
        with open(_os.path.join(folder, "call.json")) as f:
            self.spec = _json.load(f)

    def load(self, name: str) -> Any:
        return _torch.from_numpy(_np.load(_os.path.join(self.folder, name), allow_pickle=False))

    def build(self, d: dict[str, Any], path: str, track: list[Tracked], getter: Callable[[], Any]) -> Any:
        """The input ``d`` describes, built afresh; every array and dict in it is tracked."""
        kind = d["t"]
        if kind == "array":
            v = self.load(d["file"])
            track.append((path, "array", v, getter))
            return v
        if kind == "dict":
            out: dict[str, Any] = {}
            for k, sub in d["items"].items():
                out[k] = self.build(sub, path + "[" + repr(k) + "]", track, _entry_of(out, k, track))
            track.append((path, "dict", out, getter))
            return out
        if kind == "tree":
            return _tup(d["value"])
        if kind == "loss":
            vec = self.load(d["file"])
            track.append((path + " (the loss's target)", "array", vec, lambda: vec))
            if d["kind"] == "linear":
                return lambda h: (h * vec.to(h.dtype)).sum()
            return lambda h: 0.5 * ((h - vec.to(h.dtype)) ** 2).sum()
        return d["value"]

    def build_all(self, track: list[Tracked]) -> dict[str, Any]:
        args: dict[str, Any] = {}
        for k, d in self.spec["args"].items():
            args[k] = self.build(d, k, track, _entry_of(args, k, track))
        return args

    def dump_array(self, v: Any) -> dict[str, Any]:
        """A tensor or array as a float64 ``.npy`` file of the folder, or what it was."""
        kind = "tensor" if isinstance(v, _torch.Tensor) else "ndarray"
        dtype = str(v.dtype)
        shape = list(v.shape)
        try:
            if kind == "tensor":
                arr = v.detach().cpu()
                arr = (arr.float() if arr.dtype == _torch.bfloat16 else arr).numpy()
            else:
                arr = _np.asarray(v)
            if arr.dtype.kind in "biuf":
                # Sent as float64: what does not fit the grader's cap is not written at all
                # (a full disk would look like an error of the student's function).
                if self.written + arr.size * 8 > self.limit:
                    self.written = self.limit + 1   # and no second call for the contract rules
                    return {"t": "other", "kind": "result too large to send back (%d MB as float64)"
                            % (arr.size * 8 // 1000000)}
                arr = arr.astype(_np.float64)
            else:
                return {"t": "other", "kind": kind + " of " + dtype}
        except Exception as e:
            return {"t": "other", "kind": kind + " (" + type(e).__name__ + ")"}
        self.counter += 1
        name = "out%d.npy" % self.counter
        _np.save(_os.path.join(self.folder, name), arr, allow_pickle=False)
        self.written += arr.nbytes
        return {"t": "array", "file": name, "kind": kind, "dtype": dtype, "shape": shape}

    def dump(self, v: Any, depth: int = 0) -> dict[str, Any]:
        """A returned value as plain data: arrays as files, the rest described."""
        if depth > MAX_DEPTH:
            return {"t": "other", "kind": "nested too deep"}
        if isinstance(v, _torch.Tensor) or isinstance(v, _np.ndarray):
            return self.dump_array(v)
        if isinstance(v, (bool, int, float)):
            return {"t": "scalar", "kind": type(v).__name__, "value": float(v)}
        if isinstance(v, (tuple, list)):
            return {"t": "seq", "kind": type(v).__name__, "items": [self.dump(x, depth + 1) for x in v[:MAX_ITEMS]],
                    "len": len(v)}
        if isinstance(v, dict):
            return {"t": "dict", "kind": "dict",
                    "items": {str(k): self.dump(x, depth + 1) for k, x in list(v.items())[:MAX_ITEMS]}}
        return {"t": "other", "kind": type(v).__name__}

    def state(self, track: list[Tracked]) -> list[dict[str, Any]]:
        """Each tracked input as it is now, and whether it is still the object that was passed."""
        out = []
        for path, kind, original, getter in track[:MAX_INPUT_ENTRIES]:
            try:
                now = getter()
                entry: dict[str, Any] = {"path": path, "same": now is original, "present": now is not track}
                if kind == "dict":
                    entry["keys"] = ([str(k) for k in list(now)[:MAX_INPUT_ENTRIES]] if isinstance(now, dict)
                                     else None)
                elif isinstance(now, _torch.Tensor):
                    entry["value"] = self.dump(now)
                    entry["requires_grad"] = bool(now.requires_grad)
                    entry["grad"] = None if now.grad is None else self.dump(now.grad)
                else:
                    entry["value"] = self.dump(now)
            except Exception as e:
                entry = {"path": path, "error": type(e).__name__}
            out.append(entry)
        return out

    def answer(self, result: dict[str, Any]) -> None:
        with open(_os.path.join(self.folder, "result.json"), "w") as f:
            _json.dump(result, f)


def _entry_of(container: dict[str, Any], key: str, track: list[Tracked]) -> Callable[[], Any]:
    """What ``container`` holds under ``key`` when asked (``track`` itself where nothing)."""
    return lambda: container.get(key, track)


def _tup(t: Any) -> Any:
    return t if isinstance(t, str) else tuple(_tup(s) for s in t)


def _logits(model: Any, x: Any) -> Any:
    """``__logits``: a model's outputs on ``x`` in eval mode, without gradients."""
    if hasattr(model, "eval"):
        model.eval()
    with _torch.no_grad():
        return model(x)


#: Frames (deepest last) and names per frame whose shapes a failure reports.
MAX_FRAMES = 12
MAX_SHAPED = 40


def _shape_of(v: Any) -> list[int] | None:
    """The shape of a torch tensor or numpy array (exact types: a student's class is not asked)."""
    if isinstance(v, (_torch.Tensor, _np.ndarray)):
        return [int(n) for n in tuple(v.shape)[:8]]
    return None


def _frames(tb: Any) -> list[dict[str, Any]]:
    """Each frame of the traceback: its file, line, function, the shapes of its array locals and
    its whole-number locals (sizes and counts such as ``T, B = x.shape[:2]``).

    The grader keeps the frames of the notebook's cells and traces a raise back to the line that
    made a wrong value (grader/checks/causes.py); shapes only, never values.
    """
    entries: list[Any] = []
    while tb is not None:  # the deepest MAX_FRAMES only: a deep recursion's locals are not read
        entries = [*entries[1 - MAX_FRAMES:], tb]
        tb = tb.tb_next
    out: list[dict[str, Any]] = []
    for tb in entries:
        frame = tb.tb_frame
        shapes: dict[str, list[int]] = {}
        ints: dict[str, int] = {}
        for name, value in list(frame.f_locals.items())[:200]:
            shape = _shape_of(value)
            if shape is not None and len(shapes) < MAX_SHAPED:
                shapes[str(name)[:60]] = shape
            elif type(value) is int and len(ints) < MAX_SHAPED and abs(value) < 2 ** 31:  # a size, a count
                ints[str(name)[:60]] = value
        out.append({"file": str(frame.f_code.co_filename)[-200:], "line": int(tb.tb_lineno),
                    "fn": str(frame.f_code.co_name)[:60], "shapes": shapes, "ints": ints})
    return out


def _failed(e: BaseException) -> dict[str, Any]:
    lines = _tb.format_exception_only(type(e), e)
    try:
        frames = _frames(e.__traceback__)
    except Exception:  # a frame's locals are the student's: the raise is reported without them
        frames = []
    return {"ok": False, "error": "".join(lines).strip()[-800:], "type": type(e).__name__[:100],
            "trace": "".join(_tb.format_tb(e.__traceback__))[-3000:], "frames": frames}


def call(namespace: dict[str, Any], folder: str, expr: str, verify: bool = False, limit: int = 0,
         recheck: list[str] | None = None) -> None:
    """Evaluate ``expr`` in ``namespace`` with the inputs in ``folder``; write ``result.json`` there."""
    channel = _Channel(folder, limit)
    if recheck is not None:
        # The inputs of earlier verified calls, looked at again (after the function's last call
        # and a settle the grader waited): kept in the kernel under the calls' folder names.
        kept = namespace.get("__sheet11_tracks") or {}
        channel.answer({"ok": True, "value": channel.dump(0.0), "rechecks": {
            str(i): ([channel.state(t) for t in kept[i]] if i in kept else None)
            for i in recheck[:MAX_INPUT_ENTRIES]}})
        return
    track: list[Tracked] = []
    track2: list[Tracked] = []
    try:
        args = channel.build_all(track)
        value = eval(expr, namespace, {"__args": args, "__logits": _logits})
        result: dict[str, Any] = {"ok": True, "value": channel.dump(value)}
    except BaseException as e:
        result = _failed(e)
    # A first answer larger than the grader reads is refused whatever follows: no second call
    # (a hostile return value must not cost the grader twice the time and disk).
    if verify and result["ok"] and channel.written <= limit:
        try:
            again = eval(expr, namespace, {"__args": channel.build_all(track2), "__logits": _logits})
            result["second"] = {"ok": True, "value": channel.dump(again)}
        except BaseException as e:
            result["second"] = _failed(e)
    if verify and result["ok"]:
        # After the second call: a function that changes the previous call's inputs at its next
        # call is seen here; both calls' inputs are kept for the grader's later re-check.
        result["inputs"] = channel.state(track)
        namespace.setdefault("__sheet11_tracks", {})[_os.path.basename(folder)] = (track, track2)
    channel.answer(result)
