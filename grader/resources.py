"""The one access point to the files the grader ships with.

What the grader reads besides its code (the default rubric, the student template, the in-notebook
self-check module, the model answers) is package data, so a wheel installed anywhere works the same
as this checkout. In the checkout the files keep their places (``rubrics/``, ``student_template/``
as contract §2 names it, ``reference/answers.toml``); ``pyproject.toml`` maps the first two into
the package as ``grader.rubrics`` and ``grader.template``. The grader's own files that are not
Python it imports are found here too: the web app's script and style (:func:`static_file`) and
the kernel-side modules whose source the grader sends into a kernel (:func:`kernel_module`, the
``*_kernel.py`` modules; grader/kernel/kernelcode.py sends them), and where the grader's own code
lies, which the sandbox hides from kernels (:func:`checkout_root`, :func:`package_folders`).
Nothing else in the package builds a path from ``__file__`` or from where a module was imported
(``grade audit`` reads the reference's source through ``inspect``, never through a path).
"""
from __future__ import annotations

import importlib.util
from importlib.resources import as_file, files
from pathlib import Path

RUBRIC_NAME = "sheet11.toml"
TEMPLATE_NAME = "sheet11.ipynb"
CHECK_MODULE_NAME = "sheet11_check.py"
ANSWERS_NAME = "answers.toml"


# Where each data package lives in a source checkout (pyproject.toml's package-dir says the same).
_CHECKOUT_DIRS = {"grader.rubrics": "rubrics", "grader.template": "student_template", "reference": "reference"}


def _path(package: str, name: str) -> Path:
    root = checkout_root()
    if root is not None:
        # Run from a checkout, read that checkout's files: an editable install's import hook maps
        # grader.rubrics to the checkout it was installed from, which is the wrong one when this
        # code runs from another clone or worktree (PYTHONPATH, CI).
        return root / _CHECKOUT_DIRS[package] / name
    # Installed from a wheel, the packages are folders on disk, so the resource is a real file;
    # `as_file` would extract a zipped one, which no supported install produces.
    with as_file(files(package) / name) as path:
        return Path(path)


def default_rubric() -> Path:
    """``rubrics/sheet11.toml``: points, cases, limits (a course may pass its own with --rubric)."""
    return _path("grader.rubrics", RUBRIC_NAME)


def template_notebook() -> Path:
    """``student_template/sheet11.ipynb``: the notebook students start from (contract §2)."""
    return _path("grader.template", TEMPLATE_NAME)


def check_module() -> Path:
    """``student_template/sheet11_check.py``: the self-check the release bundle ships."""
    return _path("grader.template", CHECK_MODULE_NAME)


def model_answers() -> Path:
    """``reference/answers.toml``: model answers and the concepts of the written questions."""
    return _path("reference", ANSWERS_NAME)


def static_file(name: str) -> Path:
    """``grader/static/NAME``: the tutors' app's script or style."""
    with as_file(files("grader.static") / name) as path:
        return Path(path)


def kernel_module(package: str, name: str) -> str:
    """The source of a module that runs in the student's kernel (e.g. ``grader.checks``,
    ``recall_kernel.py``): a real, checked module of the package, sent as text (never its path)
    and executed there in a fresh namespace, so a notebook cannot have replaced it."""
    return (files(package) / name).read_text(encoding="utf-8")


def checkout_root() -> Path | None:
    """The source checkout this package runs from (an editable install), else ``None``.

    The sandbox hides the whole checkout from kernels (tests, fixtures, the reference); for a
    wheel install the package folders themselves are hidden instead, never site-packages."""
    root = Path(__file__).resolve().parent.parent
    return root if (root / "pyproject.toml").is_file() and (root / "grader").is_dir() else None


def package_folders() -> list[Path]:
    """The folders the ``grader`` and ``reference`` packages are imported from (a checkout's, or
    site-packages' for a wheel install): what a kernel must never see."""
    found = []
    for name in ("grader", "reference"):
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin:
            found.append(Path(spec.origin).resolve().parent)
    return found
