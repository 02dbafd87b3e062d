"""The students' tools: check a notebook before handing it in, pack it, and build the release.

- :func:`check_notebook` grades a notebook exactly as the grader does, but on the rubric's public
  examples only (``Context(public=True)``: public seeds, the public held-out recall data; no hidden
  case is ever drawn), and turns the result into rows a student can act on.
- :func:`pack` reads the group cell and writes ``Name1_id1_Name2_id2[_Name3_id3].zip`` holding the
  notebook as ``sheet11.ipynb``, refusing where a rule of contract §4 would be broken.
- :func:`release` writes the bundle the course hands out: the template, the in-notebook check
  module and the public examples with their expected values (plain arrays, no pickles), and a
  README. No reference code, model answer, hidden seed or hidden expected value goes in.

Library code: raises :class:`~grader.errors.GraderError` subclasses for what a user must fix and
never exits; ``grader/cli/students.py`` holds the thin commands.
"""
from __future__ import annotations

from grader.errors import PackRefused
from grader.students.pack import PackResult, group_text, pack
from grader.students.release import public_data, release
from grader.students.selfcheck import CheckReport, Row, check_notebook, report_from_result

__all__ = ["CheckReport", "PackRefused", "PackResult", "Row", "check_notebook", "group_text", "pack",
           "public_data", "release", "report_from_result"]
