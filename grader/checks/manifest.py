"""The manifest of a result: what it was graded with (``result.json``'s ``manifest``).

``submission_sha256`` and ``rubric_sha256``, ``grader_version`` (the installed sheet11-grader),
``torch_version``, ``python_version``, ``sandbox`` (``bwrap`` or ``none``), ``cases`` (``hidden``
or ``public``) and ``secret_id``: a keyed digest naming the course secret
(:func:`grader.checks.secret.secret_id`), never the secret; ``null`` for public cases. grader/batch/replay.py
grades a submission again from it.
"""
from __future__ import annotations

import platform
from typing import Any


def project_version() -> str:
    """The installed sheet11-grader's version (as grader/batch/cluster.py's fingerprint reads it)."""
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("sheet11-grader")
    except PackageNotFoundError:
        return "unknown"


def build_manifest(ctx: Any, submission_sha256: str) -> dict[str, Any]:
    """What a result was graded with (see the module docstring)."""
    import torch

    from grader.checks.secret import secret_id
    return {"submission_sha256": submission_sha256, "rubric_sha256": ctx.rubric.sha256,
            "grader_version": project_version(), "torch_version": str(torch.__version__),
            "python_version": platform.python_version(), "sandbox": ctx.sandbox.mode,
            "cases": "public" if ctx.public else "hidden",
            "secret_id": secret_id(ctx.secret) if ctx.secret is not None else None}


