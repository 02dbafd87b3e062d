"""Grade one submission: a pipeline of small steps over immutable findings.

intake -> notebook -> group and naming -> written answers -> run -> function checks -> recall
-> one :class:`~grader.result.SubmissionResult`. Any step may end the pipeline early with status
``rejected`` (a rule said so) or ``error`` (it could not be graded); the result still lists every
question with 0 points, a student-safe message, and the technical detail for the tutor.

The function checks' own steps (a check's cases called and scored, the inputs looked at again)
live in grader/checks/functions.py; their names stay importable from here. Where the context has
spare CPU slots (``Context.spare``), the recall experiment's vanilla-RNN comparison may run in a
second kernel of the submission (grader/checks/recall_side.py); a note on it goes to the tutor's
technical detail.
"""
from __future__ import annotations

import copy
import time
import traceback
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import nbformat

from grader import resources
from grader.checks import learned, probes
from grader.checks.bridge import Bridge
from grader.checks.functions import FUNCTIONS, REFERENCE, Verified, _recheck_inputs, _run_check, _with_contract_rules
from grader.checks.identity import find_origins
from grader.checks.recall import permutation_key, run_recall, second_kernel
from grader.checks.recall_side import SecondKernel
from grader.checks.secret import load_secret
from grader.checks.similarity import capped_code_cells
from grader.kernel.execute import KernelSession
from grader.kernel.kernelpool import KernelPool
from grader.kernel.sandbox import Sandbox
from grader.kernel.spare import SpareSlots
from grader.outputs import notebook_outputs
from grader.result import CaseResult, Flag, QuestionResult, Recall, SubmissionResult, SubmissionStatus, WrittenAnswer
from grader.rubric import AUTO_IDS, WRITTEN_IDS, Rubric
from grader.submission.intake import read_submission
from grader.submission.naming import GroupCellError, Member, check_naming, parse_filename, read_group, suggest_filename
from grader.submission.notebook import (
    NotebookInvalid,
    find_answer,
    find_group_source,
    parse_notebook,
    tags,
    template_answers,
)
from grader.written.concepts import match_concepts
from grader.written.rules import check_answer

__all__ = ["FUNCTIONS", "REFERENCE", "TEMPLATE", "Context", "KernelWork", "Verified", "_recheck_inputs", "_run_check",
           "_with_contract_rules", "grade_submission", "is_self_check", "nearby_code"]

TEMPLATE = resources.template_notebook()

@dataclass
class Context:
    """What every submission of a batch is graded with."""

    rubric: Rubric
    sandbox: Sandbox
    threads: int = 1
    template_answers: dict[str, str] = field(default_factory=dict)
    public: bool = False  # True: the public examples (`grade check`), never the hidden cases
    #: The course secret the hidden inputs are drawn under (grader/checks/secret.py); None when public.
    secret: bytes | None = field(default=None, repr=False)
    full_recall: bool = True  # False: `grade check` without --full, train_recall's interface only
    #: `grade check`: the notebook is graded under the file name its group cell gives (a student's
    #: working name such as sheet11.ipynb is only advice), so a "reject" naming policy cannot stop it.
    name_after_group: bool = False
    # Kernels started ahead (grader/kernel/kernelpool.py) in a batch's grading process; else one on demand.
    kernels: KernelPool | None = None
    #: Where a CPU is spare for a second kernel of the submission (grader/kernel/spare.py): the
    #: vanilla-RNN comparison then runs there beside the LSTM's tries (grader/checks/recall_side.py).
    #: None: never (``-j 1``, the cluster, a one-CPU machine).
    spare: SpareSlots | None = None

    @classmethod
    def create(cls, rubric: Rubric, sandbox: Sandbox, threads: int = 1, public: bool = False,
               secret: bytes | None = None, full_recall: bool = True, name_after_group: bool = False) -> Context:
        """A context; for hidden cases ``secret`` defaults to :func:`grader.checks.secret.load_secret`
        (which raises :class:`~grader.errors.SecretError` before anything is graded)."""
        answers: dict[str, str] = {}
        if TEMPLATE.exists():
            answers = template_answers(nbformat.read(str(TEMPLATE), as_version=4))
        if public:
            secret = None  # public examples never touch the secret
        elif secret is None:
            secret = load_secret()
        return cls(rubric, sandbox, threads, answers, public, secret, full_recall, name_after_group)


def _empty_questions(rubric: Rubric) -> dict[str, QuestionResult]:
    return {q.id: QuestionResult(q.id, q.title, 0.0, q.points, "auto" if q.automatic else "pending")
            for q in rubric.questions.values()}


def _stopped(ctx: Context, submission: str, sha: str, status: SubmissionStatus, message: str, flags: list[Flag],
             group: tuple[dict[str, str], ...] = (), detail: str = "", **kw: Any) -> SubmissionResult:
    return SubmissionResult(submission=submission, sha256=sha, status=status, group=group,
                            questions=_empty_questions(ctx.rubric), flags=tuple(flags),
                            max_points=ctx.rubric.max_points, message=message, tutor_detail=detail,
                            sandbox_note=ctx.sandbox.note, rubric_sha256=ctx.rubric.sha256,
                            contact=ctx.rubric.contact, **kw)


def grade_submission(path: Path, ctx: Context, name: str | None = None) -> SubmissionResult:
    """Grade one file; never raises for anything a submission can contain.

    ``name`` is the file name to grade it under (contract §4's naming rules read it); by default
    the file's own name."""
    t0 = time.monotonic()
    try:
        result = _grade(path, ctx, name)
    except _Stop as stop:
        result = stop.result
    except MemoryError:
        raise  # over the grader's memory budget: grader/batch/run.py reports it as such
    except Exception as exc:  # noqa: BLE001 - one bad submission never stops a batch
        result = _stopped(ctx, name or path.name, "", "error",
                          "the grader could not grade this submission; a tutor will look at it",
                          [], detail="".join(traceback.format_exception(exc))[-4000:])
    from grader.checks.manifest import build_manifest
    sha = result.sha256 or _file_sha256(path)
    return replace(result, seconds=time.monotonic() - t0, manifest=build_manifest(ctx, sha))


def _file_sha256(path: Path) -> str:
    from grader.submission.intake import file_sha256
    try:
        return file_sha256(path)
    except OSError:
        return ""


# -- the steps ---------------------------------------------------------------------------------
# Each step reads what the earlier ones found and returns its own immutable findings; a step that
# ends the pipeline (a rule says reject, nothing can be graded) raises _Stop with the result.

class _Stop(Exception):
    """A step ended the pipeline early; ``result`` says why (status rejected or error)."""

    def __init__(self, result: SubmissionResult) -> None:
        super().__init__(result.message)
        self.result = result


@dataclass(frozen=True)
class Opened:
    """The submission read and its notebook parsed (contract §2, §4: archive rules)."""

    filename: str
    sha256: str
    nb: Any
    flags: tuple[Flag, ...]
    extra: Mapping[str, Any]  # other files, the notebook's name, its code cells: carried to the result


@dataclass(frozen=True)
class GroupFindings:
    """The group cell and the file name (contract §4)."""

    members: tuple[Member, ...]
    flags: tuple[Flag, ...]
    filename: str  # the name the submission is graded under

    @property
    def group(self) -> tuple[dict[str, str], ...]:
        return tuple({"name": m.name, "student_id": m.student_id, "email": m.email} for m in self.members)


@dataclass(frozen=True)
class KernelWork:
    """What the kernel gave: the notebook's run, every function's checks and the recall experiment."""

    by_question: Mapping[str, tuple[CaseResult, ...]]
    recall: Recall | None
    cells: tuple[dict[str, Any], ...]
    flags: tuple[Flag, ...]
    not_started: str = ""  # why the kernel did not start (then nothing else was found)
    #: function -> case key -> output fingerprint of each failing function (grader/checks/learned.py)
    fingerprints: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    code_origins: Mapping[str, tuple[int, int]] = field(default_factory=dict)  # see SubmissionResult
    notes: tuple[str, ...] = ()  # for the tutor's technical detail (e.g. the second kernel's fallback)


def _grade(path: Path, ctx: Context, name: str | None = None) -> SubmissionResult:
    opened = _open(path, ctx, name)              # intake, notebook
    group = _group(opened, ctx)                  # group cell and file name
    written = _written_answers(opened.nb, ctx)   # words, sentences, citations; hints for the tutor
    work = _kernel_work(opened, ctx)             # notebook run, function checks, recall
    return _assemble(opened, group, written, work, ctx)


def _open(path: Path, ctx: Context, name: str | None) -> Opened:
    rubric = ctx.rubric
    intake = read_submission(path, rubric.archive, rubric.limits.max_notebook_mb)
    filename = name or intake.filename
    flags: list[Flag] = []
    extra: dict[str, Any] = {"other_files": intake.other_files, "notebook_name": intake.notebook_name}
    if intake.note:
        flags.append(Flag("archive.contents", None, intake.note))
    if intake.notebook is None:
        status: SubmissionStatus = "rejected" if intake.problem_code == "archive.unsafe" else "error"
        flags.append(Flag(intake.problem_code, None, intake.problem))
        raise _Stop(_stopped(ctx, filename, intake.sha256, status, intake.problem, flags, **extra))
    try:
        nb = parse_notebook(intake.notebook, rubric.limits)
    except NotebookInvalid as exc:
        flags.append(Flag("notebook.invalid", None, str(exc)))
        raise _Stop(_stopped(ctx, filename, intake.sha256, "error", str(exc), flags, **extra)) from None
    extra["code_cells"] = tuple(capped_code_cells(nb))  # for the copied-work check, read once
    return Opened(filename, intake.sha256, nb, tuple(flags), extra)


def _group(opened: Opened, ctx: Context) -> GroupFindings:
    rubric = ctx.rubric
    flags: list[Flag] = []
    members: tuple[Member, ...] = ()
    source, found_by = find_group_source(opened.nb)
    if not source:
        flags.append(Flag("group.missing", None, "no cell tagged `group` with GROUP = [...] was found"))
    else:
        try:
            members = read_group(source)
            if found_by != "tag":
                flags.append(Flag("group.missing", None, "the group cell had lost its `group` tag; "
                                                         "it was found by its GROUP = [...] line"))
        except GroupCellError as exc:
            flags.append(Flag("group.missing", None, str(exc)))
    filename = opened.filename
    if members and ctx.name_after_group:
        filename = suggest_filename(members, Path(filename).suffix.lower() or ".ipynb")
    if members:
        for finding in check_naming(filename, members, rubric.naming.group_size):
            flags.append(Flag(finding.code, None, finding.message))
    else:
        parsed = parse_filename(filename)
        if not parsed.ok:
            flags.append(Flag("naming.pattern", None, parsed.problem))
    found = GroupFindings(members, tuple(flags), filename)
    rejected = [f for f in flags if rubric.naming.policy(f.code) == "reject"
                and f.code.startswith(("naming.", "group."))]
    if rejected:
        message = "rejected: " + "; ".join(f.message for f in rejected)
        raise _Stop(_stopped(ctx, filename, opened.sha256, "rejected", message,
                             [*opened.flags, *flags], found.group, **opened.extra))
    return found


def _written_answers(nb: Any, ctx: Context) -> dict[str, tuple[QuestionResult, list[Flag]]]:
    return {qid: _written(qid, nb, ctx) for qid in WRITTEN_IDS}


def _kernel_work(opened: Opened, ctx: Context) -> KernelWork:
    rubric = ctx.rubric
    flags: list[Flag] = []
    with (ctx.kernels.session() if ctx.kernels else KernelSession(ctx.sandbox, rubric.limits, ctx.threads)) \
            as session, _second_kernel(opened, ctx, session) as side:
        run = session.run_notebook(opened.nb)
        flags += [Flag(f.code, None, _cell_message(f.message, f.cell)) for f in run.flags]
        if not run.started:
            return KernelWork({}, None, (), tuple(flags), "; ".join(f.message for f in run.flags) or "no reason given")
        bridge = Bridge(session)
        found = _defined(bridge, rubric)
        why = ""
        if found is None:
            why = "the kernel did not answer after the notebook ran, so no function could be called"
            flags.append(Flag("kernel.died", None, why))
        defined = found or {}
        # The code that ran: a graded name bound to text that is not in the notebook is flagged
        # for the tutor, whose report shows the notebook's definitions (grader/checks/identity.py).
        code_cells = [c.source for c in opened.nb.cells if c.cell_type == "code"]
        code_origins: dict[str, tuple[int, int]] = {}
        for origin in find_origins(bridge, [n for n in FUNCTIONS if defined.get(n)], code_cells,
                                   rubric.limits.call_timeout):
            if origin.problem:
                flags.append(Flag("code.not_in_notebook", rubric.question_of(origin.function), origin.problem))
            elif origin.bound and origin.cell is not None:
                code_origins[origin.function] = (origin.cell, origin.line)
        by_question: dict[str, list[CaseResult]] = {qid: [] for qid in AUTO_IDS}
        fingerprints: dict[str, dict[str, str]] = {}
        verified: list[Verified] = []
        for check in rubric.checks():
            qid = rubric.question_of(check.function)
            if not defined.get(check.function) and not why:
                flags.append(Flag("function.missing", qid, f"`{check.function}` is not defined after the notebook ran"))
            seen: dict[str, str] = {}
            checked = _run_check(bridge, check, bool(defined.get(check.function)), rubric,
                                 ctx.public, why, ctx.secret, verified, seen, code_cells)
            if not all(c.passed for c in checked):  # grouped with the batch's alike (grader/checks/learned.py)
                if not ctx.public:
                    seen.update(learned.observe_public(check, checked, bridge, rubric.limits.call_timeout,
                                                       rubric.learned.quantum))
                fingerprints[check.function] = seen
            # Feedback only: probe a failing function to find the wrong term (grader/checks/probes.py).
            by_question[qid] += probes.review(check, checked, bridge, rubric.limits.call_timeout,
                                              ctx.public, ctx.secret)
        _recheck_inputs(bridge, rubric, verified, by_question)
        # Keyed by the secret and the bytes: a re-grade trains on the same labels, and a student's
        # `grade check` (no secret) of the same notebook gives the same verdict (grader/checks/recall.py).
        key = permutation_key(ctx.secret, opened.sha256)
        recall, recall_case = run_recall(bridge, rubric, bool(defined.get(rubric.recall.function)), ctx.public, why,
                                         full=ctx.full_recall, key=key, side=side)
        if not defined.get(rubric.recall.function) and not why:
            flags.append(Flag("function.missing", rubric.recall.question,
                              f"`{rubric.recall.function}` is not defined after the notebook ran"))
        by_question[rubric.recall.question].append(recall_case)
        shown = notebook_outputs(opened.nb.cells)  # capped, text and raster images only, for the report
        cells = tuple({"index": c.index, "status": c.status, "seconds": round(c.seconds, 2),
                       "error": c.error, "outputs": shown.get(c.index, []),
                       "self_check": is_self_check(opened.nb.cells[c.index]) if c.index < len(opened.nb.cells)
                       else False} for c in run.cells)
        flags += [Flag(f.code, None, f.message) for f in session.call_flags]  # budget, restarts
    return KernelWork({qid: tuple(got) for qid, got in by_question.items()}, recall, cells, tuple(flags),
                      fingerprints=fingerprints, code_origins=code_origins,
                      notes=tuple(side.notes) if side is not None else ())


def _second_kernel(opened: Opened, ctx: Context, session: KernelSession) -> AbstractContextManager[SecondKernel | None]:
    """The vanilla-RNN comparison's second kernel, waiting for a spare slot from now on, where the
    context has spare slots and the full experiment compares the RNN; else nothing."""
    rubric = ctx.rubric
    if ctx.spare is None or not ctx.full_recall or not rubric.recall.compare_rnn:
        return nullcontext()
    pool = ctx.kernels

    def open_session() -> KernelSession:  # as the first kernel was opened, on a uid slot of its own
        return pool.side_session() if pool is not None else KernelSession(ctx.sandbox, rubric.limits, ctx.threads,
                                                                          slot=1)
    # A copy made before the first kernel runs it: both kernels run the notebook as it was handed in.
    side = second_kernel(rubric, permutation_key(ctx.secret, opened.sha256), ctx.public, ctx.spare, open_session,
                         copy.deepcopy(opened.nb), session.budget_end)
    return side.start()


def _assemble(opened: Opened, group: GroupFindings, written: Mapping[str, tuple[QuestionResult, list[Flag]]],
              work: KernelWork, ctx: Context) -> SubmissionResult:
    rubric = ctx.rubric
    questions = _empty_questions(rubric)
    flags: list[Flag] = [*opened.flags, *group.flags]
    for qid, (question, answer_flags) in written.items():
        questions[qid] = question
        flags += answer_flags
    flags += work.flags
    if work.not_started:
        return _stopped(ctx, group.filename, opened.sha256, "error",
                        "the notebook could not be run because its kernel did not start; a tutor will look at it",
                        flags, group.group, work.not_started, **opened.extra)
    for qid in AUTO_IDS:
        q = rubric.questions[qid]
        got = work.by_question[qid]
        questions[qid] = QuestionResult(qid, q.title, round(sum(c.points for c in got), 4), q.points, "auto", got)
    result = SubmissionResult(submission=group.filename, sha256=opened.sha256, status="graded", group=group.group,
                              questions=questions, flags=tuple(flags), max_points=rubric.max_points,
                              sandbox_note=ctx.sandbox.note, recall=work.recall, cells=work.cells,
                              rubric_sha256=rubric.sha256, contact=rubric.contact,
                              fingerprints=work.fingerprints, code_origins=work.code_origins,
                              tutor_detail="\n".join(work.notes), **opened.extra)
    # The mistakes tutors named in earlier batches, where this output matches (grader/checks/learned.py).
    return learned.apply_catalogue(result, rubric.learned.mistakes)


def _cell_message(message: str, cell: int | None) -> str:
    return message if cell is None else f"cell {cell + 1}: {message}"


def is_self_check(cell: Any) -> bool:
    """A cell of the template's in-notebook self-check (its import, a ``check(...)`` call): in a
    graded report its output is left out, since the hidden checks there are what counts and the
    grading kernel does not hold the self-check module (it would only say it is not available)."""
    return any(t == "check-import" or t.startswith("check-") for t in tags(cell))


MAX_NEARBY_CELLS = 4        # code cells after an answer shown to its tutor
MAX_NEARBY_CHARS = 6000     # of each, the first characters


def nearby_code(nb: Any, index: int | None) -> tuple[dict[str, Any], ...]:
    """The untagged code cells right after the answer cell ``index``, up to the next tagged cell
    (the group's own code for that question), capped in number and length."""
    if index is None:
        return ()
    found: list[dict[str, Any]] = []
    for i in range(index + 1, len(nb.cells)):
        cell = nb.cells[i]
        if tags(cell) or len(found) >= MAX_NEARBY_CELLS:
            break
        if cell.cell_type == "code" and "".join(cell.source).strip():
            found.append({"index": i, "source": "".join(cell.source)[:MAX_NEARBY_CHARS]})
    return tuple(found)


def _written(qid: str, nb: Any, ctx: Context) -> tuple[QuestionResult, list[Flag]]:
    q = ctx.rubric.questions[qid]
    located = find_answer(nb, qid)
    checked = check_answer(q, located.source, ctx.template_answers.get(qid))
    flags = [Flag(f.code, qid, f.message) for f in checked.flags]
    notes = list(checked.notes)
    if located.found_by == "heading":
        notes.append("the answer cell had lost its tag; it was found after the question's heading")
    if located.index is not None:  # attachments dropped by parse_notebook (not an image, over the cap)
        notes += [n for n in nb.metadata.get("sheet11_attachment_notes", [])
                  if n.startswith(f"cell {located.index + 1}:")]
    found, missing = match_concepts(qid, checked.text.visible) if not any(
        f.code == "answer.missing" for f in checked.flags) else ((), ())
    answer = WrittenAnswer(markdown=located.source, words=checked.words, sentences=checked.sentences,
                           found_by=located.found_by, over_limit_at=checked.over_limit_at,
                           visible=checked.text.visible, notes=tuple(notes),
                           concepts_found=found, concepts_missing=missing,
                           attachments=dict(nb.cells[located.index].get("attachments", {}) or {})
                           if located.index is not None else {},
                           nearby=nearby_code(nb, located.index))
    return QuestionResult(qid, q.title, 0.0, q.points, "pending", answer=answer), flags


def _defined(bridge: Bridge, rubric: Rubric) -> dict[str, bool] | None:
    """Which contract functions the kernel holds; ``None`` when the kernel did not answer.

    A kernel that answered with something unreadable (its own code patched what the call
    channel uses, e.g. ``json.dump``) is not a dead kernel: every function is then tried, and
    each check reports what came back, so the report names the real trouble.
    """
    names = ",".join(FUNCTIONS)
    got = bridge.call("{n: float(callable(globals().get(n))) for n in __args['names'].split(',')}",
                      {"names": names}, rubric.limits.call_timeout)
    if got.status in ("died", "timeout"):
        return None
    if got.status != "ok" or not isinstance(got.value, dict):
        return dict.fromkeys(FUNCTIONS, True)
    return {k: v == 1.0 for k, v in got.value.items() if isinstance(v, float)}
