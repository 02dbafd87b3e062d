"""The signed records of a cluster batch: what the coordinator and a worker must share, and the
MACs that tie a task to its answer (grader/batch/cluster.py describes the protocol).

- :class:`Fingerprint`: project version, rubric sha256, torch version, whether kernels are
  sandboxed and a keyed digest of the course secret (never the secret); :func:`differences`
  says in words what differs between the coordinator's and a worker's.
- :func:`task_mac`: the coordinator's HMAC-SHA256 under the course secret over a task (key, file
  name, sha256, the job's data, the expected fingerprint); a worker grades only what carries it.
- :func:`answer_mac`: the worker's MAC over its answer (kind, key, sha256, rubric sha256, body).
- :func:`verify_answer`: the coordinator's check of an answer, as data only (a JSON string of at
  most 64 MiB holding a signed record of exactly this task); :class:`Unverified` says why not,
  and a ``refused`` record is a :class:`~grader.errors.ClusterError`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from grader.checks.manifest import project_version
from grader.errors import ClusterError
from grader.rubric import Rubric


@dataclass(frozen=True)
class Fingerprint:
    """What must be the same on the coordinator and every worker for results to be the same."""

    version: str
    rubric_sha256: str
    torch: str
    sandboxed: bool
    # A keyed digest of the course secret the hidden inputs are drawn under (grader/checks/secret.py),
    # never the secret itself; "" where the worker has none.
    secret_id: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"version": self.version, "rubric_sha256": self.rubric_sha256, "torch": self.torch,
                "sandboxed": self.sandboxed, "secret_id": self.secret_id}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Fingerprint:
        return cls(str(data["version"]), str(data["rubric_sha256"]), str(data["torch"]), bool(data["sandboxed"]),
                   str(data.get("secret_id", "")))


def fingerprint(rubric: Rubric, sandboxed: bool, create_secret: bool = True) -> Fingerprint:
    import hmac

    import torch

    from grader.checks.secret import load_secret
    from grader.errors import SecretError
    try:
        secret = load_secret(create=create_secret)
        secret_id = hmac.new(secret, b"sheet11 cluster fingerprint", "sha256").hexdigest()[:16]
    except SecretError:
        secret_id = ""
    return Fingerprint(project_version(), rubric.sha256, str(torch.__version__), sandboxed, secret_id)


def differences(coordinator: Fingerprint, worker: Fingerprint) -> list[str]:
    """What differs, in words: ``project version 0.1.0 here, 0.2.0 on the worker``."""
    out = []
    if worker.version != coordinator.version:
        out.append(f"project version: coordinator {coordinator.version}, worker {worker.version}")
    if worker.rubric_sha256 != coordinator.rubric_sha256:
        out.append(f"rubric sha256: coordinator {coordinator.rubric_sha256[:12]}, worker {worker.rubric_sha256[:12]}")
    if worker.torch != coordinator.torch:
        out.append(f"torch version: coordinator {coordinator.torch}, worker {worker.torch}")
    if worker.secret_id != coordinator.secret_id:
        out.append("course secret: the worker has none (copy the coordinator's secret file there, see "
                   "grader/checks/secret.py)" if not worker.secret_id else
                   f"course secret: coordinator {coordinator.secret_id[:8]}, worker {worker.secret_id[:8]} "
                   "(a keyed digest; the hidden inputs would differ)")
    if coordinator.sandboxed and not worker.sandboxed:
        out.append("sandbox: the coordinator's kernels are sandboxed, the worker's are not")
    return out


def _canonical(data: Any) -> str:
    return json.dumps(data, sort_keys=True, ensure_ascii=True, separators=(",", ":"))


def task_mac(secret: bytes, key: str, name: str, sha256: str, job: dict[str, Any], expected: dict[str, Any]) -> str:
    """The coordinator's MAC over a task: a worker grades only what carries it."""
    from grader.checks.secret import derive
    return derive(secret, "sheet11 cluster task", key, name, sha256, _canonical(job), _canonical(expected)).hex()


def answer_mac(secret: bytes, kind: str, key: str, sha256: str, rubric_sha256: str, body: str) -> str:
    """The worker's MAC over its answer to the task ``key``."""
    from grader.checks.secret import derive
    return derive(secret, "sheet11 cluster answer", kind, key, sha256, rubric_sha256, body).hex()


UNVERIFIED = ("the grading machine's answer for this submission could not be verified, so it was not used; "
              "a tutor will look at it")


class Unverified(Exception):
    """Why an answer was not accepted (the submission gets an ``error`` result)."""


def verify_answer(text: object, key: str, job: Any, secret: bytes, rubric_sha256: str) -> tuple[str, dict[str, Any]]:
    """``(kind, body)`` of a worker's answer to the task ``key`` for ``job``, after checking that
    it is a JSON record of this task (key, submission sha256, rubric sha256) with a valid MAC
    under the course secret. Raises :class:`Unverified` (the reason) otherwise; a ``refused``
    record is a :class:`ClusterError`."""
    import hmac
    if not isinstance(text, str) or len(text) > 64 * 1024 * 1024:
        raise Unverified(f"the answer is not a JSON string but {type(text).__name__}")
    try:
        record = json.loads(text)
    except (ValueError, RecursionError):
        raise Unverified("the answer is not JSON") from None
    if not isinstance(record, dict):
        raise Unverified("the answer is not a JSON object")
    if record.get("kind") == "refused":
        who = str(record.get("worker", "a worker"))[:200]
        what = "; ".join(str(d)[:500] for d in record.get("differences", []) if isinstance(d, str))[:2000]
        raise ClusterError(f"worker {who} refused {job.path.name}: {what}. Install the same project "
                           "version, rubric, torch and course secret on every worker; finished results are kept.")
    fields = {name: record.get(name) for name in ("kind", "key", "sha256", "rubric_sha256", "body", "mac")}
    if not all(isinstance(v, str) for v in fields.values()) or fields["kind"] not in ("result", "error"):
        raise Unverified("the answer does not have the fields of a signed record")
    kind, body = str(fields["kind"]), str(fields["body"])
    good = answer_mac(secret, kind, key, job.sha256, rubric_sha256, body)
    if not hmac.compare_digest(good, str(fields["mac"])):
        raise Unverified("its MAC under the course secret is wrong")
    if fields["key"] != key or fields["sha256"] != job.sha256 or fields["rubric_sha256"] != rubric_sha256:
        raise Unverified("it names another task, submission or rubric")  # the MAC was over the ones sent
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        raise Unverified("its body is not JSON") from None
    if not isinstance(data, dict):
        raise Unverified("its body is not a JSON object")
    return kind, data
