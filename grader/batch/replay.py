"""Grades that can be replayed: the manifest of a result, and grading a submission again from it.

Every ``result.json`` carries a ``manifest`` (grader/checks/manifest.py): the SHA-256 of the
submission and of the rubric, the project's, torch's and Python's versions, the sandbox mode, the
cases (``hidden`` or ``public``) and the id of the course secret (:func:`grader.checks.secret.secret_id`,
a keyed digest, never the secret). Results written before manifests existed have none.

``grade replay SUBMISSION -o DIR`` (:func:`replay`) finds the stored result of that file (by its
SHA-256), checks that this machine can meet its manifest (the same file, rubric, project and
torch versions, course secret and sandbox; Python's version is only reported) and refuses,
naming every difference, where it cannot (:class:`ReplayRefused`). Otherwise it grades the file
again exactly as a batch does (the same late policy times and the tutors' scores) and compares
what the code gives (:func:`differences`): the status, the flags, every question's points and
status, every check's verdict and points, the written answers' counts and concepts, the total.
``same`` or every difference. Timings, versions and the sandbox note are not compared.

A regrade request's replay (:func:`replay_request`; ``grade requests replay ID``, and the queue
page of ``grade serve``, which runs that command) finds the group's submitted file by its SHA-256
in the folder the tutor names (grader/tutors/regrades.py's ``find_submission``), replays it and
keeps the outcome beside the request (``same``, the differences, or why it was refused).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from grader.checks.manifest import build_manifest
from grader.errors import GraderError, UsageError
from grader.submission.intake import file_sha256

if TYPE_CHECKING:
    from grader.folder.outdir import OutDir
    from grader.result import SubmissionResult

#: Keys of a manifest that must be equal for a replay; the rest is reported only.
REQUIRED = ("submission_sha256", "rubric_sha256", "grader_version", "torch_version", "secret_id", "sandbox",
            "cases")


class ReplayRefused(GraderError):
    """The stored manifest cannot be met here; the message names every difference."""


def unmet(recorded: Mapping[str, Any], here: Mapping[str, Any]) -> list[str]:
    """Every required key whose value here differs from the recorded one, in words."""
    out = []
    for key in REQUIRED:
        a, b = recorded.get(key), here.get(key)
        if a != b:
            short = (lambda v: str(v)[:12]) if key.endswith(("sha256", "_id")) else str
            out.append(f"{key}: recorded {short(a)}, here {short(b)}")
    return out


def _q_view(q: Mapping[str, Any]) -> dict[str, Any]:
    view = {"points": round(float(q.get("points", 0.0)), 4), "status": q.get("status")}
    if q.get("status") != "manual":
        for key in ("words", "sentences", "concepts_found", "concepts_missing"):
            if key in q:
                view[key] = q[key]
    view["checks"] = [(c.get("name"), c.get("passed"), round(float(c.get("points", 0.0)), 4))
                      for c in q.get("checks") or ()]
    return view


def _flags(result: Mapping[str, Any]) -> list[tuple[Any, Any]]:
    """(code, question) of a result's flags (JSON), sorted."""
    return sorted((f["code"], f.get("question") or "") for f in result.get("flags") or ())


def differences(stored: Mapping[str, Any], again: Mapping[str, Any]) -> list[str]:
    """What the replay gives differently from the stored result (JSON of both), in words."""
    out = []
    for key in ("status", "message"):
        if stored.get(key, "") != again.get(key, ""):
            out.append(f"{key}: stored {stored.get(key)!r}, replayed {again.get(key)!r}")
    if _flags(stored) != _flags(again):
        gone = sorted(set(_flags(stored)) - set(_flags(again)))
        new = sorted(set(_flags(again)) - set(_flags(stored)))
        out.append("flags: " + "; ".join([*(f"stored only {c} {q}".strip() for c, q in gone),
                                          *(f"replayed only {c} {q}".strip() for c, q in new)]))
    sq, aq = stored.get("questions") or {}, again.get("questions") or {}
    for qid in sorted(set(sq) | set(aq)):
        if qid not in sq or qid not in aq:
            out.append(f"{qid}: {'missing from the replay' if qid in sq else 'not in the stored result'}")
            continue
        a, b = _q_view(sq[qid]), _q_view(aq[qid])
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                if key == "checks":
                    for x, y in zip(a["checks"], b["checks"]):
                        if x != y:
                            out.append(f"{qid} check {x[0]}: stored {'passed' if x[1] else 'failed'} {x[2]:g}, "
                                       f"replayed {'passed' if y[1] else 'failed'} {y[2]:g}")
                    if len(a["checks"]) != len(b["checks"]):
                        out.append(f"{qid}: {len(a['checks'])} checks stored, {len(b['checks'])} replayed")
                else:
                    out.append(f"{qid} {key}: stored {a.get(key)}, replayed {b.get(key)}")
    if round(float(stored.get("points", 0.0)), 4) != round(float(again.get("points", 0.0)), 4):
        out.append(f"points: stored {stored.get('points')}, replayed {again.get('points')}")
    return out


@dataclass
class ReplayOutcome:
    folder: str
    differences: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def same(self) -> bool:
        return not self.differences


def find_result(out: OutDir, submission: Path) -> tuple[SubmissionResult, str]:
    """The stored result of ``submission`` (by its SHA-256) and that SHA-256."""
    try:
        sha = file_sha256(submission)
    except OSError as exc:
        raise UsageError(f"cannot read {submission}: {exc.strerror}") from None
    matches = [r for r in out.results() if r.sha256 == sha]
    if not matches:
        raise UsageError(f"no result in {out} was graded from {submission} (its SHA-256 {sha[:12]}... is in none); "
                         "give the submission file as it was graded")
    return matches[0], sha


def replay(submission: Path, out: OutDir, rubric_path: str | None = None) -> ReplayOutcome:
    """Grade ``submission`` again from its stored result's manifest; see the module docstring."""
    from grader.batch.run import Job, grade_job
    from grader.checks.secret import load_secret
    from grader.grade import Context
    from grader.kernel.sandbox import choose_sandbox
    from grader.rubric import load_rubric
    stored, sha = find_result(out, submission)
    manifest = stored.manifest
    if not manifest:
        raise ReplayRefused(f"{stored.folder}/result.json has no manifest (it was graded by an older grader), so "
                            "what it was graded with is not known; grade it again with --regrade to get one")
    rubric = load_rubric(rubric_path)
    mode = str(manifest.get("sandbox") or "auto")
    here_ctx = Context(rubric, choose_sandbox(mode if mode in ("bwrap", "none") else "auto"), public=False,
                       secret=load_secret(create=False))
    here = build_manifest(here_ctx, sha)
    if manifest.get("cases") == "public":
        here["cases"], here["secret_id"] = "public", None
    problems = unmet(manifest, here)
    if problems:
        raise ReplayRefused(f"{stored.folder} cannot be replayed here: " + "; ".join(problems)
                            + ". Install what the manifest names (or use its rubric with --rubric) to replay it")
    ctx = Context.create(rubric, here_ctx.sandbox, secret=here_ctx.secret, public=manifest.get("cases") == "public")
    with out.gradebook() as book:
        manual = book.manual_scores(stored.folder).get(stored.folder, {})
    late = stored.late
    job = Job(submission, stored.folder, sha, late.deadline or None if late else None,
              late.submitted or None if late else None, late.source if late else "", manual)
    again, _ = grade_job(job, ctx)
    outcome = ReplayOutcome(stored.folder, differences(stored.to_json(), again.to_json()))
    if manifest.get("python_version") != here.get("python_version"):
        outcome.notes.append(f"Python {manifest.get('python_version')} then, {here.get('python_version')} now")
    return outcome


def replay_request(out: OutDir, request_id: int, where: Path, rubric_path: str | None = None) -> ReplayOutcome:
    """Replay the submission of regrade request ``request_id`` (found in ``where``: the file or a
    folder of submissions) and keep the outcome beside the request; a refusal is kept too, then
    raised."""
    from grader.checks.secret import load_secret
    from grader.tutors.regrades import find_submission, request_for_replay, store_replay
    secret = load_secret(create=False)
    result, label = request_for_replay(out, secret, request_id)
    path = find_submission(result, where, label)
    try:
        outcome = replay(path, out, rubric_path)
    except ReplayRefused as exc:
        store_replay(out, request_id, "refused", [str(exc)])
        raise
    store_replay(out, request_id, "same" if outcome.same else "differs", outcome.differences, outcome.notes)
    return outcome
