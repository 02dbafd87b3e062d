"""`grade pack`: read the group cell (never run it) and write
``Name1_id1_Name2_id2[_Name3_id3].zip`` holding the notebook as ``sheet11.ipynb``, refusing where a
rule of contract §4 would be broken.
"""
from __future__ import annotations

import os
import re
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grader.errors import PackRefused, UsageError
from grader.rubric import WRITTEN_IDS, load_rubric
from grader.students.release import NOTEBOOK_NAME, TEMPLATE
from grader.submission.naming import GroupCellError, Member, check_naming, read_group, suggest_filename
from grader.submission.notebook import NotebookInvalid, find_group_source, parse_notebook, template_answers


@dataclass(frozen=True)
class PackResult:
    path: Path
    members: tuple[Member, ...]
    entries: tuple[str, ...]
    problems: tuple[str, ...] = ()   # rules broken, packed anyway with --force
    warnings: tuple[str, ...] = ()   # things to look at that break no rule


def _unfinished(nb: Any) -> list[str]:
    """Unanswered questions and functions still raising the template's NotImplementedError."""
    from grader.submission.notebook import find_answer
    from grader.written.rules import is_blank_answer
    out = []
    template = {}
    if TEMPLATE.is_file():
        import nbformat
        template = template_answers(nbformat.read(str(TEMPLATE), as_version=4))
    blank = [qid for qid in WRITTEN_IDS if is_blank_answer(find_answer(nb, qid).source, template.get(qid))]
    if blank:
        out.append("no answer yet to " + ", ".join(blank))
    stubs = [m.group(1) for cell in nb.cells if cell.cell_type == "code"
             for m in re.finditer(r"NotImplementedError\(['\"](\w+): not implemented yet", cell.source)]
    if stubs:
        out.append("still the template's stub: " + ", ".join(f"`{s}`" for s in dict.fromkeys(stubs)))
    return out


def _member_problems(members: tuple[Member, ...]) -> list[str]:
    """What in the group cell would make a file name the grader cannot match."""
    out = []
    seen: dict[str, str] = {}
    for m in members:
        sid = m.student_id
        if not sid:
            out.append(f"{m.name} has no student_id in the group cell")
        elif not (sid.isascii() and sid.isdigit()):
            out.append(f"the student id '{sid}' of {m.name} is not digits only")
        elif sid in seen:
            out.append(f"{seen[sid]} and {m.name} share the student id {sid}")
        seen.setdefault(sid, m.name)
        family = suggest_filename((m,), ".zip").split("_", 1)[0]
        if not any(ch.isalpha() for ch in family):
            out.append(f"the name '{m.name}' has no letters a file name can use")
    return out


def pack(notebook: str | Path, extras: Iterable[str | Path] = (), out_dir: str | Path = ".",
         force: bool = False, rubric_path: str | Path | None = None) -> PackResult:
    """Write ``Name1_id1_Name2_id2[_Name3_id3].zip`` into ``out_dir`` from the group cell.

    Raises
    ------
    UsageError
        The notebook or an extra file cannot be read, or the group cell gives no names at all.
    PackRefused
        A rule of contract §4 would be broken (lists every one); ``force`` packs anyway.
    """
    rubric = load_rubric(rubric_path)
    nb_path = Path(notebook)
    data, nb, members, found_by = _read_notebook(nb_path)

    problems: list[str] = []
    if found_by != "tag":
        problems.append("the group cell has lost its `group` tag (the grader flags this); "
                        "add the tag back or start from the template's cell")
    name = suggest_filename(members, ".zip")
    problems += _naming_problems(name, members, rubric.naming.group_size)
    max_bytes = rubric.limits.max_notebook_mb * 1024 * 1024
    if len(data) > max_bytes:
        problems.append(f"the notebook is {len(data) / 1e6:.1f} MB; the limit is "
                        f"{rubric.limits.max_notebook_mb:g} MB (clear large outputs)")
    entries = _entries(nb_path, extras, problems)
    if problems and not force:
        raise PackRefused("not packed: " + "; ".join(problems)
                          + ". Fix the group cell (or the files) and pack again, or pack anyway with --force.")

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    target = out / name
    tmp = out / f".{name}.part"
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for arcname, src in entries.items():
            zf.write(src, arcname)
    os.replace(tmp, target)

    from grader.submission.intake import read_submission
    intake = read_submission(target, rubric.archive, rubric.limits.max_notebook_mb)
    if intake.notebook is None:
        problem = f"the grader would not accept the zip: {intake.problem}"
        if not force:
            target.unlink(missing_ok=True)
            raise PackRefused("not packed: " + problem)
        problems.append(problem)
    return PackResult(target, members, tuple(entries), tuple(problems), tuple(_unfinished(nb)))


def _read_notebook(nb_path: Path) -> tuple[bytes, Any, tuple[Member, ...], str]:
    """(the notebook's bytes, the notebook, the group cell's members, how the cell was found);
    :class:`UsageError` when it is not a notebook or its group cell cannot be read."""
    if not nb_path.is_file():
        raise UsageError(f"{nb_path} does not exist or is not a file")
    if nb_path.suffix.lower() != ".ipynb":
        raise UsageError(f"{nb_path.name} is not a notebook (.ipynb); pass the notebook first, "
                         "then any extra files")
    data = nb_path.read_bytes()
    try:
        nb = parse_notebook(data)
    except NotebookInvalid as exc:
        raise UsageError(f"{nb_path.name}: {exc}") from None
    source, found_by = find_group_source(nb)
    if not source:
        raise UsageError(f"{nb_path.name} has no group cell (GROUP = [...]); the zip is named "
                         "after it, so fill it in first")
    try:
        members = read_group(source)
    except GroupCellError as exc:
        raise UsageError(f"{nb_path.name}: {exc}") from None
    return data, nb, members, found_by


def _naming_problems(name: str, members: tuple[Member, ...], group_size: tuple[int, int]) -> list[str]:
    """The group cell's own problems, then the naming findings they do not already explain."""
    own = _member_problems(members)
    problems = list(own)
    for finding in check_naming(name, members, group_size):
        if own and finding.code in ("naming.pattern", "naming.mismatch"):
            continue  # the file name is made from the cell: the cell's problems above explain it
        problems.append(f"{finding.code}: {finding.message}")
    return problems


def _entries(nb_path: Path, extras: Iterable[str | Path], problems: list[str]) -> dict[str, Path]:
    """The zip's entries (the notebook as ``sheet11.ipynb``, then the extra files), adding to
    ``problems`` a second notebook or a name given twice."""
    entries: dict[str, Path] = {NOTEBOOK_NAME: nb_path}
    for extra in extras:
        e = Path(extra)
        if not e.is_file():
            raise UsageError(f"{e} does not exist or is not a file")
        if e.resolve() == nb_path.resolve():
            continue
        if e.suffix.lower() == ".ipynb":
            problems.append(f"{e.name}: a zip may hold one notebook only")
        if e.name.lower() == NOTEBOOK_NAME or e.name in entries:
            problems.append(f"{e.name}: two files of that name; rename one")
            continue
        entries[e.name] = e
    return entries


def group_text(members: Iterable[Member]) -> str:
    return ", ".join(f"{m.name} ({m.student_id}, {m.email})" for m in members)
