"""What the notebook's cells showed when the grader ran them, as plain, capped data for a report.

The outputs were produced by the student's code in the kernel, so they are untrusted: only text
(streams, ``text/plain`` results, an error's name and value) and raster images (PNG, JPEG, GIF
as base64) are kept, each under a size cap, the whole notebook under another. Anything else (HTML,
JavaScript, SVG, widgets) is dropped with a note saying so. The report escapes the text and
checks the images again when it draws them (:func:`safe_image`).
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from grader.cleantext import strip_controls

__all__ = ["PICTURE_TYPES", "cell_outputs", "notebook_outputs", "safe_image"]

# A report is mailed and opened on phones: these keep one under a few MB whatever a notebook
# printed. Each is the grader's own safety limit, not course policy: a constant, not a rubric entry,
# so no rubric can loosen it (the rubric's [limits] max_output_chars and max_picture_kb are the
# course's, within these).
MAX_TEXT_CHARS = 3_000  # per output
MAX_CELL_OUTPUTS = 20
MAX_IMAGE_CHARS = 700_000  # base64 characters of one image (~500 kB)
MAX_NOTEBOOK_CHARS = 1_000_000  # all outputs of a notebook together (a cell keeps <= max_output_chars)

#: The raster types a report shows; the grader keeps them within a budget of their own (execute.py).
PICTURE_TYPES = ("image/png", "image/jpeg", "image/gif")
_BASE64 = re.compile(r"^[A-Za-z0-9+/]+={0,2}$")


def _text(value: Any) -> str:
    if isinstance(value, list):
        value = "".join(v for v in value if isinstance(v, str))
    if not isinstance(value, str):
        return ""
    text = strip_controls(value)  # colour codes of tracebacks and progress bars, bidi overrides
    if len(text) > MAX_TEXT_CHARS:
        return text[:MAX_TEXT_CHARS] + f"\n[... cut: {len(text) - MAX_TEXT_CHARS} more characters]"
    return text


def safe_image(mime: Any, data: Any) -> str | None:
    """A ``data:`` URI for a raster image under the cap, or None."""
    if mime not in PICTURE_TYPES or not isinstance(data, str):
        return None
    compact = "".join(data[:MAX_IMAGE_CHARS + 4096].split())
    if len(compact) > MAX_IMAGE_CHARS or not _BASE64.match(compact):
        return None
    return f"data:{mime};base64,{compact}"


def cell_outputs(outputs: Iterable[Any]) -> list[dict[str, str]]:
    """One cell's outputs as ``{"kind": "text"|"error"|"image"|"note", ...}``, capped."""
    kept: list[dict[str, str]] = []
    stream = None  # the stream the last kept text came from
    for out in list(outputs)[:MAX_CELL_OUTPUTS * 5]:
        if len(kept) >= MAX_CELL_OUTPUTS:
            kept.append({"kind": "note", "text": "further outputs left out"})
            break
        if not isinstance(out, Mapping):
            continue
        kind = out.get("output_type")
        if kind == "stream":
            text = _text(out.get("text"))
            if text and stream == out.get("name") and kept and kept[-1]["kind"] == "text":
                # One print may arrive in several messages, split wherever the kernel flushed
                # (differently from run to run): a reader sees one text, and so does the result.
                kept[-1]["text"] = _text(kept[-1]["text"] + text)
            elif text:
                kept.append({"kind": "text", "text": text})
                stream = out.get("name")
            continue
        stream = None
        if kind == "error":
            kept.append({"kind": "error", "text": _text(f"{out.get('ename', '')}: {out.get('evalue', '')}")})
        elif kind in ("execute_result", "display_data"):
            data = out.get("data")
            if not isinstance(data, Mapping):
                continue
            image = next((m for m in PICTURE_TYPES if m in data), None)
            uri = safe_image(image, data.get(image)) if image else None
            if uri:
                kept.append({"kind": "image", "src": uri})
            elif image:
                kept.append({"kind": "note", "text": "an image too large to show was left out"})
            elif "text/plain" in data:
                kept.append({"kind": "text", "text": _text(data.get("text/plain"))})
            else:
                kept.append({"kind": "note", "text": "an output that is not text or a picture was left out"})
    return kept


def notebook_outputs(cells: Iterable[Any]) -> dict[int, list[dict[str, str]]]:
    """``cell index -> outputs`` for the code cells of an executed notebook, within the total cap."""
    result: dict[int, list[dict[str, str]]] = {}
    used = 0
    for index, cell in enumerate(cells):
        if not isinstance(cell, Mapping) or cell.get("cell_type") != "code":
            continue
        kept = cell_outputs(cell.get("outputs") or [])
        size = sum(len(o.get("text", "")) + len(o.get("src", "")) for o in kept)
        if used + size > MAX_NOTEBOOK_CHARS:
            kept = [{"kind": "note", "text": "outputs left out: the notebook's outputs are too large to show"}]
            size = 0
        used += size
        if kept:
            result[index] = kept
    return result
