"""The output folder (``-o``): the one module that reads and writes it.

Layout: ``<folder>/result.json``, ``<folder>/report.html`` (the student's) and
``<folder>/tutor.html`` per submission, ``grades.csv``,
``summary.html``, ``similarity.json`` and ``gradebook.sqlite`` for the batch, ``review/`` for the
tutors' pages and sheets, ``export.<format>`` for exports.

A submission's folder name comes from its file name, which a student chose, so it is sanitised
(:func:`folder_name`): never ``.``/``..``, no leading dot, no separator, no control or format
character, at most :data:`MAX_NAME` characters. Every path written under the folder is checked
to lie inside it, and a symlink found on the way (planted by anyone) is refused, never followed.
Every file is written atomically (write, then rename), so a reader or a resumed batch never sees
half a file.
"""
from __future__ import annotations

import json
import os
import re
import tempfile
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, select_autoescape

from grader.checks.learned import apply_names, batch_groups, export_toml
from grader.checks.similarity import duplicate_ids
from grader.errors import OutputFolderError, ResultFormatError, UsageError
from grader.folder.gradebook import Gradebook
from grader.folder.grades import grades_csv, members, unconfirmed, visible
from grader.pages.report import PAGES, render_pages, render_summary
from grader.result import SubmissionResult
from grader.rubric import Rubric, load_rubric, read_learned_file

MAX_NAME = 120  # characters of a submission folder's name (file systems allow 255 bytes)
RESULT = "result.json"
GRADES, SUMMARY, SIMILARITY, GRADEBOOK = "grades.csv", "summary.html", "similarity.json", "gradebook.sqlite"
# The course's participants (grade --roster), kept for later runs and exports; and the matches a
# tutor made by hand between students and the platform's rows (grade export --match).
ROSTER, MATCHES = "roster.json", "platform-matches.json"
RESERVED = {"review", GRADES, SUMMARY, SIMILARITY, GRADEBOOK}


def folder_name(stem: str) -> str:
    """A safe folder name for a submission whose file name has ``stem``.

    Separators, control/format characters and anything not a letter, digit, ``-``, ``_`` or
    ``.`` become ``_``; leading dots and spaces go; an empty or reserved result becomes
    ``submission``."""
    text = unicodedata.normalize("NFC", stem)
    text = "".join(ch if (ch.isalnum() or ch in "-_.") and unicodedata.category(ch)[0] != "C" else "_"
                   for ch in text)
    text = text.lstrip(". ").rstrip(". ")
    text = re.sub(r"\.{2,}", ".", text)  # no ".." anywhere, even where harmless
    if len(text) > MAX_NAME:
        text = text[:MAX_NAME].rstrip(". ")
    if not text or text in RESERVED or text.startswith("export."):
        text = f"submission_{text}" if text else "submission"
    return text


def assign_folders(paths: Sequence[Path]) -> list[str]:
    """A folder per submission named after its (sanitised) stem; where stems clash, the
    extension is kept; where names still clash, ``-2``, ``-3``... is added."""
    stems = [folder_name(p.stem) for p in paths]
    names = [folder_name(p.name) if stems.count(s) > 1 else s for p, s in zip(paths, stems)]
    seen: set[str] = set()
    out = []
    for name in names:
        unique, n = name, 1
        while unique.lower() in seen:  # case-insensitive file systems
            n += 1
            unique = f"{name}-{n}"
        seen.add(unique.lower())
        out.append(unique)
    return out


def write_atomic(path: Path, text: str) -> None:
    """Write then rename, so a reader (or a resumed batch) never sees half a file. For paths a
    user chose (``--to``); paths inside the output folder go through :meth:`OutDir.write`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; reports are for sharing
        os.replace(tmp, path)  # replaces a symlink itself, never writes through it
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


_fallback = Environment(autoescape=select_autoescape(default=True, default_for_string=True)).from_string(
    "<!DOCTYPE html><html lang=\"en\"><meta charset=\"utf-8\"><title>{{ title }}</title>"
    "<p>{{ title }} could not be drawn ({{ why }}). The grades are not affected; "
    "{{ where }} holds them.</p></html>")


def safe_pages(result: SubmissionResult, confirmed: Iterable[str] = ()) -> dict[str, str]:
    """The pages of a result's folder (``report.html`` for the student, ``tutor.html``), or for
    each a short page saying it could not be drawn: a page that fails must not lose the result or
    stop a batch, an import or a re-run."""
    try:
        return render_pages(result, confirmed)
    except Exception as exc:  # noqa: BLE001 - any failure of drawing is reported in the page
        html = _fallback.render(title="The report", why=type(exc).__name__, where="result.json")
        return {name: html for name in PAGES.values()}


@dataclass
class Loaded:
    """The results of a folder, and the folders whose ``result.json`` could not be read."""

    results: list[SubmissionResult]
    unreadable: list[str]  # "folder: why"


class OutDir:
    """An output folder, made once per command by its caller and handed down (``grade``:
    grader/batch/run.py). Every path inside it is made by :meth:`path` (plain names, no symlink
    on the way, inside the folder); results, pages and the batch's files are read and written by
    its methods, and the tutors' modules (review, export, serve, scores) write their own files
    at paths it made."""

    def __init__(self, root: Path | str, create: bool = False) -> None:
        given = Path(root)
        if create:
            try:
                given.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise UsageError(f"cannot create the output folder '{given}': {exc.strerror}; "
                                 "choose another with -o") from None
        if not given.is_dir():
            raise UsageError(f"'{given}' is not a folder; give the output folder of `grade` with -o")
        self.root = given.resolve()
        self.given = given

    def __str__(self) -> str:
        return str(self.given)

    # -- paths --------------------------------------------------------------------------------
    def path(self, *parts: str) -> Path:
        """``root/parts...``, refused unless every part is a plain name, no symlink is on the way
        and the result lies inside the folder."""
        target = self.root
        for part in parts:
            if not part or part in (".", "..") or "/" in part or "\\" in part or "\0" in part:
                raise OutputFolderError(f"refused to use '{visible(part)}' as a name inside the output folder "
                                        f"{self.given}: it is not a plain file name")
            target = target / part
            if target.is_symlink():
                raise OutputFolderError(f"{target} is a symbolic link; the grader never writes through links "
                                        "in its output folder. Remove it and run again.")
        if os.path.commonpath([self.root, target.resolve()]) != str(self.root):
            raise OutputFolderError(f"{target} lies outside the output folder {self.given}; nothing was written")
        return target

    def write(self, parts: Sequence[str], text: str) -> Path:
        path = self.path(*parts)
        write_atomic(path, text)
        return path

    def write_if_changed(self, parts: Sequence[str], text: str) -> bool:
        path = self.path(*parts)
        try:
            if path.read_bytes() == text.encode("utf-8"):  # bytes: a CR in the text counts too
                return False
        except OSError:
            pass
        write_atomic(path, text)
        return True

    @property
    def gradebook_path(self) -> Path:
        return self.path(GRADEBOOK)

    def gradebook(self) -> Gradebook:
        return Gradebook(self.gradebook_path)

    # -- one submission -------------------------------------------------------------------------
    def write_submission(self, result: SubmissionResult, pages: Mapping[str, str] | None = None,
                         redraw: bool = False) -> bool:
        """``result.json`` and the pages of ``result`` where they change; True if any did.
        ``pages`` are the pages when they were drawn already (in the grading worker); else they
        are drawn when the result changed, a page is missing or ``redraw`` asks for it (a kept
        result: a newer template may draw it differently)."""
        named = self._with_group_names(result)
        if named is not result:  # a tutor's note on a mistake of this group: the pages say it too
            result, pages = named, None
        text = json.dumps(result.to_json(), indent=2, ensure_ascii=False)
        changed = self.write_if_changed((result.folder, RESULT), text)
        missing = any(not self.path(result.folder, name).exists() for name in PAGES.values())
        # A member the file name does not name: the report says whether a tutor confirmed them,
        # which only the gradebook knows (a grading worker drew its pages without it).
        unnamed = [m for m in members(result) if not m.confirmed]
        if unnamed or (pages is None and (changed or missing or redraw)):
            confirmed: set[str] = set()
            if unnamed and self.gradebook_path.exists():
                with self.gradebook() as book:
                    confirmed = book.confirmed_members().get(result.folder, set())
            pages = safe_pages(result, confirmed)
        for name, html in (pages or {}).items():
            changed = self.write_if_changed((result.folder, name), html) or changed
        return changed

    def group_names(self) -> dict[str, dict[str, Any]]:
        """The tutors' names of groups of alike failing submissions (grader/checks/learned.py); {} without
        a gradebook."""
        if not self.gradebook_path.exists():
            return {}
        with self.gradebook() as book:
            return book.group_names()

    def _with_group_names(self, result: SubmissionResult) -> SubmissionResult:
        """``result`` with the tutors' explanations of its groups beside its failing checks (every
        render and every re-grade; grader/checks/learned.py's apply_names), or ``result`` itself."""
        if not result.fingerprints and not any(n.get("source") == "tutor" for q in result.questions.values()
                                               for c in q.cases for n in c.learned):
            return result
        return apply_names(result, self.group_names())

    def read_result(self, folder: str) -> SubmissionResult:
        """The result of ``folder``; :class:`ResultFormatError` or ``OSError`` where it cannot be read."""
        path = self.path(folder, RESULT)
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ResultFormatError("the file does not hold a JSON object")
        result = SubmissionResult.from_json(data)
        return result if result.folder == folder else SubmissionResult.from_json({**data, "folder": folder})

    def load_results(self) -> Loaded:
        """Every result of the folder, in the order of its latest grading run; a ``result.json``
        that cannot be read is named in ``unreadable``, never dropped silently."""
        found: dict[str, SubmissionResult] = {}
        unreadable: list[str] = []
        for entry in sorted(self.root.iterdir()):
            if entry.is_symlink() and (entry / RESULT).exists():
                unreadable.append(f"{entry.name}: a symbolic link, not a folder the grader wrote")
                continue
            if not entry.is_dir() or not (entry / RESULT).exists():
                continue
            try:
                found[entry.name] = self.read_result(entry.name)
            except (OSError, ValueError, RecursionError, OutputFolderError) as exc:
                why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)[:200]
                unreadable.append(f"{entry.name}/{RESULT}: {why}")
        order: list[str] = []
        if (self.root / GRADEBOOK).exists():
            with self.gradebook() as book:
                order = [f for f in book.latest_run_folders() if f in found]
        order += [f for f in sorted(found) if f not in order]
        return Loaded([found[f] for f in order], unreadable)

    def results(self) -> list[SubmissionResult]:
        """Every result; :class:`OutputFolderError` naming each unreadable ``result.json``, and a
        :class:`UsageError` when there is none."""
        loaded = self.load_results()
        if loaded.unreadable:
            raise OutputFolderError(f"{len(loaded.unreadable)} result file(s) in {self.given} cannot be read: "
                                    + "; ".join(loaded.unreadable)
                                    + ". Grade those submissions again (`grade ... --regrade`) "
                                      "or remove their folders.")
        if not loaded.results:
            raise UsageError(f"'{self.given}' holds no graded submissions (no <folder>/{RESULT}); run `grade` first")
        return loaded.results

    # -- the batch's files ------------------------------------------------------------------------
    def write_similarity(self, data: Mapping[str, Any]) -> None:
        self.write((SIMILARITY,), json.dumps(data, indent=1, ensure_ascii=False))

    def read_similarity(self) -> dict[str, Any]:
        """The stored ranking (``grade``/``grade similarity`` wrote it); ``{}`` where there is none."""
        try:
            data = json.loads(self.path(SIMILARITY).read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):
            return {}
        return data if isinstance(data, dict) else {}

    def read_json_list(self, name: str) -> list[dict[str, str]]:
        """A stored list of string maps (``roster.json``, ``platform-matches.json``); [] where none."""
        try:
            data = json.loads(self.path(name).read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):
            return []
        if not isinstance(data, list):
            return []
        return [{str(k): str(v) for k, v in d.items()} for d in data if isinstance(d, dict)]

    def absent(self, results: Sequence[SubmissionResult]) -> list[dict[str, str]]:
        """The roster's students whom no result's group cell names (by student id or e-mail)."""
        ids = {str(m.get("student_id", "")).strip() for r in results for m in r.group} - {""}
        mails = {str(m.get("email", "")).strip().casefold() for r in results for m in r.group} - {""}
        return [p for p in self.read_json_list(ROSTER)
                if not (p.get("student_id") and p["student_id"] in ids)
                and not (p.get("email") and p["email"].casefold() in mails)]

    def learned_groups(self, results: Sequence[SubmissionResult]) -> list[dict[str, Any]]:
        """The batch's groups of alike failing submissions for ``summary.html``: each once, with
        its members (folder and submission), its representative failing case and its name."""
        names = self.group_names()
        by_folder = {r.folder: r for r in results}
        return [{"key": g.key, "function": g.function, "count": len(g.members),
                 "members": [{"folder": f, "submission": by_folder[f].submission} for f in g.members],
                 "case": g.representative.name, "message": g.representative.message,
                 "diagnosis": g.representative.diagnosis, "name": names.get(g.key)}
                for g in batch_groups(results)]

    def write_batch(self, results: Sequence[SubmissionResult], rubric: Rubric, sandbox_note: str,
                    similarity: Mapping[str, Any] | None = None, not_reached: Iterable[str] = ()) -> None:
        """``grades.csv`` and ``summary.html`` for ``results``. ``not_reached`` names submissions
        a stopped batch did not grade: they are listed as such and the summary says it is
        incomplete. ``similarity`` is this batch's comparison (else the stored one)."""
        waiting = list(not_reached)
        with self.gradebook() as book:
            confirmed = book.confirmed_members()
        qids = list(rubric.questions)
        self.write((GRADES,), grades_csv(results, qids, confirmed, waiting, self.absent(results)))
        folders = {r.folder for r in results}
        sim = dict(similarity if similarity is not None else self.read_similarity())
        sim["pairs"] = [p for p in sim.get("pairs", []) if p.get("a") in folders and p.get("b") in folders]
        sim["duplicates"] = duplicate_ids(results)
        notices = []
        if waiting:
            notices.append(f"Incomplete: grading was stopped; {len(waiting)} submission(s) were not graded yet "
                           f"({', '.join(visible(w) for w in waiting[:10])}{' ...' if len(waiting) > 10 else ''}). "
                           "Run the same command again to finish the batch.")
        for r, m in unconfirmed(results, confirmed):
            notices.append(f"Unconfirmed: {visible(m.name)} ({visible(m.student_id)}) is in the group cell of "
                           f"{visible(r.submission)} but not in its file name, so grades.csv gives them no points. "
                           f"If they belong to the group: "
                           f"grade confirm -o {self.given} {r.folder} {visible(m.student_id)}")
        try:
            html = render_summary(results, rubric.title, rubric.max_points, sandbox_note, similarity=sim,
                                  notices=notices, learned=self.learned_groups(results))
        except Exception as exc:  # noqa: BLE001 - grades.csv is written; the page must not stop the batch
            html = _fallback.render(title="The summary", why=type(exc).__name__, where="grades.csv")
        self.write((SUMMARY,), html)


def export_learned(out: OutDir, to: Path, rubric_path: str | None = None) -> int:
    """Write the named groups of ``out`` to the file ``to`` as ``[[learned_mistakes]]`` entries
    (grader/checks/learned.py), read back and validated as a rubric reads them before the file is kept.
    Returns how many entries; UsageError where no group is named."""
    quantum = load_rubric(rubric_path).learned.quantum
    text, count = export_toml(batch_groups(out.results()), out.group_names(), quantum, source=str(out.given))
    if count == 0:
        raise UsageError(f"no group of {out.given} is named; name groups in `grade serve -o {out.given}` "
                         "(the page /mistakes) first")
    staged = to.with_name(f".{to.name}.check")
    try:
        write_atomic(staged, text)
        read_learned_file(staged, quantum)  # what the next rubric will read must load
    finally:
        staged.unlink(missing_ok=True)
    write_atomic(to, text)
    return count
