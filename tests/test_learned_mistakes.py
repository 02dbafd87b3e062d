"""Mistakes learned from the batch (grader/checks/learned.py), end to end in-process: the output
fingerprint on the rubric's real cases, the groups in summary.html and in `grade serve`, a tutor's
name carried to the members' reports on every render and re-grade, the export, and the next
term's rubric naming the mistake on a new submission (and not on another)."""
from __future__ import annotations

import hashlib
import hmac
import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from starlette.testclient import TestClient
from test_scores import MEMBERS, fake_output, fake_result

import grader.checks.functions
import grader.grade as grade_module
from grader.checks import learned
from grader.checks.bridge import ArrayInfo, Returned
from grader.checks.mistakes import mistakes_for
from grader.checks.secret import load_secret
from grader.cli.main import main
from grader.errors import RubricError
from grader.folder.outdir import OutDir, export_learned
from grader.result import SubmissionResult
from grader.rubric import DEFAULT_RUBRIC, load_rubric
from grader.tutors.scores import sync_outputs
from grader.tutors.serve import create_app

TOKEN = "learned-test-token"
BASE = "http://127.0.0.1"
ADA, GRACE, EMMY = "Lovelace_2571234_Turing_2579876", "Hopper_2570001_Dijkstra_2570002", "Noether_2570003_Goedel_2570004"


def _mistake(key: str) -> Callable[..., Any]:
    return next(m.compute for m in mistakes_for("rnn_forward") if m.key == key)


def _no_bias_float64(x, h0, W, U, b, activation="tanh"):
    """The same mistake as the catalogue's "bias_missing", written another way: float64, the
    products in the other order (so the float32 roundings differ)."""
    act = torch.tanh if activation == "tanh" else torch.sigmoid
    h, out = h0.double(), []
    for t in range(x.shape[0]):
        h = act(torch.einsum("ij,bj->bi", U.double(), x[t].double()) + torch.einsum("ij,bj->bi", W.double(), h))
        out.append(h)
    return torch.stack(out).float()


class FakeBridge:
    """The Bridge of a kernel whose `rnn_forward` is ``impl``: values come back as the real
    Bridge gives them (numpy arrays), computed here on the very inputs the grader drew."""

    def __init__(self, impl: Callable[..., Any]) -> None:
        self.impl, self.calls = impl, 0

    def call(self, expr: str, args: dict[str, Any], timeout: float, verify: bool = False) -> Returned:
        self.calls += 1
        value = self.impl(**{k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in args.items()})
        return Returned("ok", ArrayInfo(np.asarray(value.detach().numpy()), "tensor", "torch.float32"))


def _graded_checks(impl: Callable[..., Any], monkeypatch: pytest.MonkeyPatch,
                   rubric: Any = None) -> tuple[list[dict[str, Any]], dict[str, str], int]:
    """`rnn_forward`'s hidden cases as grade.py runs them (the rubric's cases, the course secret),
    then the public examples learned.observe_public adds: (checks' JSON, fingerprints, calls)."""
    rubric = rubric or load_rubric()
    check = next(c for c in rubric.checks() if c.function == "rnn_forward")
    # the contract's second call and input report come from a kernel; this fake has neither
    monkeypatch.setattr(grader.checks.functions, "contract_violations", lambda *a, **k: [])
    bridge = FakeBridge(impl)
    seen: dict[str, str] = {}
    checked = grade_module._run_check(bridge, check, True, rubric, False, "", load_secret(), None, seen)
    seen.update(learned.observe_public(check, checked, bridge, 5.0, rubric.learned.quantum))
    from grader.result import _case_json
    return [_case_json(c) for c in checked], seen, bridge.calls


def _result(folder: str, members: Any, checks: list[dict[str, Any]], fps: dict[str, str]) -> dict[str, Any]:
    data = fake_result(folder, members)
    q = data["questions"]["11.4.a"]
    q["checks"] = checks
    q["points"] = round(sum(c["points"] for c in checks), 4)
    if any(not c["passed"] for c in checks):
        data["fingerprints"] = {"rnn_forward": fps}
    return data


@pytest.fixture(scope="module")
def three_kinds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """What grading gives for two implementations of one mistake (no bias), another mistake (no
    activation) and a correct one, on the rubric's real cases."""
    mp = pytest.MonkeyPatch()
    try:
        out = {name: _graded_checks(impl, mp) for name, impl in
               (("no_bias", _mistake("bias_missing")), ("no_bias_64", _no_bias_float64),
                ("no_act", _mistake("no_activation")),
                ("right", next(m.compute for m in mistakes_for("rnn_forward")).func))}  # type: ignore[attr-defined]
    finally:
        mp.undo()
    return out


# -- the fingerprint ------------------------------------------------------------------------------
def test_one_mistake_written_two_ways_has_one_fingerprint_on_every_case(three_kinds: dict[str, Any]) -> None:
    checks, fps, _ = three_kinds["no_bias"]
    _, fps64, _ = three_kinds["no_bias_64"]
    assert not any(c["passed"] for c in checks)
    rubric = load_rubric()
    check = next(c for c in rubric.checks() if c.function == "rnn_forward")
    assert len(fps) == len(check.cases) + len(check.public)  # every hidden case and public example
    assert sum(k.startswith("public/-/") for k in fps) == len(check.public)
    assert all(learned.is_output(v) for v in fps.values())
    assert fps == fps64  # float64 and another order of products: the same rounded output


def test_another_mistake_differs_on_every_case_and_a_correct_function_has_none(three_kinds: dict[str, Any]) -> None:
    _, fps, _ = three_kinds["no_bias"]
    _, other, _ = three_kinds["no_act"]
    assert fps.keys() == other.keys() and all(fps[k] != other[k] for k in fps)
    checks, right, calls = three_kinds["right"]
    assert all(c["passed"] for c in checks) and all(v == learned.PASS for v in right.values())
    check = next(c for c in load_rubric().checks() if c.function == "rnn_forward")
    assert calls == len(check.cases)  # no public example is called for a function that passed


def test_fingerprint_grid_and_statuses() -> None:
    exp = np.array([1.0, -2.0, 0.5])
    def fp(values: list[float]) -> str:
        return learned.fingerprint(Returned("ok", ArrayInfo(np.array(values), "tensor", "torch.float32")), exp,
                                   0.01, False)
    assert fp([1.0, 2.0, 0.5]) == fp([1.0 + 1e-6, 2.0 - 1e-6, 0.5])  # within the grid (0.02 here)
    assert fp([1.0, 2.0, 0.5]) != fp([1.0, 2.05, 0.5])                # one value off by more
    assert fp([1.0, 2.0, 0.5]) != fp([1.0, 2.0])                       # another shape
    raised = learned.fingerprint(Returned("raised", error="x", error_type="TypeError"), exp, 0.01, False)
    assert learned.is_output(raised)
    assert learned.fingerprint(Returned("timeout"), exp, 0.01, False) == "status:timeout"
    assert learned.fingerprint(Returned("ok", None), exp, 0.01, True) == "pass"


def test_matching_rule_common_cases_with_an_output() -> None:
    from grader.rubric import LearnedMistake
    entry = LearnedMistake("rnn_forward-0123456789ab", "rnn_forward", "t", "e",
                           {"public/-/1/{}": "aaaaaaaaaaaaaaaa", "hidden/ffffffffffffffff/2/{}": "bbbbbbbbbbbbbbbb",
                            "public/-/3/{}": "pass"})
    assert learned.matches(entry, {"public/-/1/{}": "aaaaaaaaaaaaaaaa", "hidden/0000000000000000/2/{}": "cccccccccccccccc"})
    assert not learned.matches(entry, {"public/-/1/{}": "aaaaaaaaaaaaaaaa", "public/-/3/{}": "dddddddddddddddd"})
    assert not learned.matches(entry, {"public/-/3/{}": "pass"})      # no failing output in common
    assert not learned.matches(entry, {"hidden/0000000000000000/2/{}": "bbbbbbbbbbbbbbbb"})  # another secret
    assert not learned.matches(entry, {"public/-/1/{}": "status:timeout"})


# -- the batch: summary, serve, names on every render, export, the next term ------------------------------
def _batch(tmp_path: Path, kinds: dict[str, Any]) -> Path:
    return fake_output(tmp_path / "out", [_result(ADA, MEMBERS[0], *kinds["no_bias"][:2]),
                                          _result(GRACE, MEMBERS[1], *kinds["no_bias_64"][:2]),
                                          _result(EMMY, MEMBERS[2], *kinds["no_act"][:2])])


def _client(out: Path) -> TestClient:
    client = TestClient(create_app(out, "ada", TOKEN), base_url=BASE)
    assert client.get(f"/?token={TOKEN}").status_code == 200
    return client


def test_summary_shows_each_group_once_with_its_members(tmp_path: Path, three_kinds: dict[str, Any]) -> None:
    out = _batch(tmp_path, three_kinds)
    html = (out / "summary.html").read_text(encoding="utf-8")
    section = html.split("Mistakes learned from the batch", 1)[1].split("</table>", 1)[0]
    rows = re.findall(r'<tr id="(rnn_forward-[0-9a-f]{12})">(.*?)</tr>', section, re.S)
    assert len(rows) == 2
    (key2, two), (_, one) = rows
    assert re.search(r'data-label="Members">2<', two) and ADA in two and GRACE in two and EMMY not in two
    assert re.search(r'data-label="Members">1<', one) and EMMY in one
    assert "rnn_forward, case 1" in two  # the representative failing case
    results = OutDir(out).results()
    assert learned.group_key(results[0], "rnn_forward") == key2 == learned.group_key(results[1], "rnn_forward")


def test_serve_names_a_group_blind_and_the_members_reports_carry_it(tmp_path: Path,
                                                                     three_kinds: dict[str, Any]) -> None:
    out = _batch(tmp_path, three_kinds)
    client = _client(out)
    page = client.get("/mistakes").text
    for name in ("Lovelace", "Turing", "2571234", "ada@uni", "Hopper", ADA, GRACE):
        assert name not in page  # blind: pseudonyms only
    from grader.tutors.privacy import pseudonym
    assert pseudonym(load_secret(), ADA) in page and pseudonym(load_secret(), GRACE) in page
    key = OutDir(out).learned_groups(OutDir(out).results())[0]["key"]
    csrf = re.search(r'name="csrf" value="([^"]*)"', page)[1]  # type: ignore[index]
    explanation = "Your `z_t` leaves out `b`: add the bias inside the activation, z_t = W h + U x + b."
    bad = client.post(f"/mistakes/{key}", data={"csrf": csrf, "title": "Bias left out", "explanation": ""})
    assert bad.status_code == 400 and "explanation" in bad.text
    assert "Bias left out" not in (out / ADA / "report.html").read_text(encoding="utf-8")
    done = client.post(f"/mistakes/{key}", data={"csrf": csrf, "title": "Bias left out", "explanation": explanation},
                       follow_redirects=False)
    assert done.status_code == 303
    for folder in (ADA, GRACE):
        report = (out / folder / "report.html").read_text(encoding="utf-8")
        assert "Bias left out" in report and "add the bias inside the activation" in report
        note = json.loads((out / folder / "result.json").read_text())["questions"]["11.4.a"]["checks"][0]["learned"]
        assert note == [{"title": "Bias left out", "explanation": explanation, "source": "tutor"}]
    assert "Bias left out" not in (out / EMMY / "report.html").read_text(encoding="utf-8")
    assert client.post(f"/mistakes/{'rnn_forward-' + '0' * 12}", data={"csrf": csrf, "title": "x",
                                                                       "explanation": "y"}).status_code == 404
    assert client.post(f"/mistakes/{key}", data={"csrf": "forged", "title": "x", "explanation": "y"}).status_code == 403
    # every render and every re-grade: the gradebook is the truth
    kept = OutDir(out).read_result(ADA)
    bare = SubmissionResult.from_json({**kept.to_json(), "questions": {
        **kept.to_json()["questions"], "11.4.a": {**kept.to_json()["questions"]["11.4.a"], "checks": [
            {k: v for k, v in c.items() if k != "learned"} for c in kept.to_json()["questions"]["11.4.a"]["checks"]]}}})
    OutDir(out).write_submission(bare)  # as a re-grade writes a fresh result
    assert "Bias left out" in (out / ADA / "report.html").read_text(encoding="utf-8")
    sync_outputs(OutDir(out))
    assert "Bias left out" in (out / "summary.html").read_text(encoding="utf-8")
    # taken back: an empty title; the reports lose the note
    client.post(f"/mistakes/{key}", data={"csrf": csrf, "title": "", "explanation": ""})
    assert "Bias left out" not in (out / ADA / "report.html").read_text(encoding="utf-8")
    # the names are chained: grade verify still holds, and an edit outside grade is found
    from grader.tutors.verify import verify
    # (the fake folder's results were written outside grade, which verify also says: not ours here)
    assert not any("learned_names" in p or "ledger" in p for p in verify(OutDir(out), load_secret()).problems)
    import sqlite3
    with sqlite3.connect(out / "gradebook.sqlite") as db:
        db.execute("UPDATE learned_names SET explanation='edited' WHERE id=1")
    assert any("learned_names" in p for p in verify(OutDir(out), load_secret()).problems)


def _named_batch(tmp_path: Path, kinds: dict[str, Any]) -> tuple[Path, str]:
    out = _batch(tmp_path, kinds)
    key = OutDir(out).learned_groups(OutDir(out).results())[0]["key"]
    with OutDir(out).gradebook() as book:
        book.name_group(key, "rnn_forward", "Bias left out", "Add `b` inside the activation.", "ada", 0.0)
    return out, key


def _next_rubric(tmp_path: Path, exported: Path) -> Path:
    rubric = tmp_path / "next" / "sheet11.toml"
    rubric.parent.mkdir(exist_ok=True)
    shutil.copy(exported, rubric.parent / exported.name)
    rubric.write_text(DEFAULT_RUBRIC.read_text(encoding="utf-8")
                      + f'\n[learned]\nquantum = 0.01\nfiles = ["{exported.name}"]\n', encoding="utf-8")
    return rubric


def test_export_then_the_next_terms_grading_names_the_mistake(tmp_path: Path, three_kinds: dict[str, Any],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    out, key = _named_batch(tmp_path, three_kinds)
    exported = tmp_path / "learned.toml"
    run = CliRunner().invoke(main, ["mistakes", "export", "-o", str(out), str(exported)])
    assert run.exit_code == 0, run.output
    assert "1 named group(s)" in run.output
    path = _next_rubric(tmp_path, exported)
    rubric = load_rubric(path)
    (entry,) = rubric.learned.mistakes
    # the rubric's identity (results, replay, the cluster's fingerprint) covers the learned file
    (path.parent / exported.name).write_text((path.parent / exported.name).read_text() + "\n# edited\n")
    assert load_rubric(path).sha256 != rubric.sha256
    assert entry.key == key and entry.members == 2 and entry.title == "Bias left out"
    # the next term: a new course secret, so its hidden cases are other numbers; the public
    # examples are the same and decide
    other_secret = tmp_path / "next-secret"
    other_secret.write_text("ab" * 32)
    other_secret.chmod(0o600)
    monkeypatch.setenv("SHEET11_SECRET_FILE", str(other_secret))
    for impl, named in ((_no_bias_float64, True), (_mistake("no_activation"), False),
                        (_mistake("W_transposed"), False)):
        checks, fps, _ = _graded_checks(impl, monkeypatch, rubric)
        assert not any(k.startswith("hidden/") and k in entry.cases for k in fps)  # another secret
        result = SubmissionResult.from_json(_result(ADA, MEMBERS[0], checks, fps))
        noted = learned.apply_catalogue(result, rubric.learned.mistakes)
        notes = [n for c in noted.questions["11.4.a"].cases for n in c.learned]
        assert bool(notes) is named
        if named:
            assert notes[0] == {"title": "Bias left out", "explanation": "Add `b` inside the activation.",
                                "source": "catalogue"}
            from grader.pages.report import render_report
            assert "Bias left out" in render_report(noted)


def test_grade_check_public_examples_match_a_learned_entry(tmp_path: Path, three_kinds: dict[str, Any],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """`grade check` runs the public examples only: their fingerprints alone match the entry."""
    out, _ = _named_batch(tmp_path, three_kinds)
    exported = tmp_path / "learned.toml"
    export_learned(OutDir(out), exported)
    rubric = load_rubric(_next_rubric(tmp_path, exported))
    check = next(c for c in rubric.checks() if c.function == "rnn_forward")
    monkeypatch.setattr(grader.checks.functions, "contract_violations", lambda *a, **k: [])
    seen: dict[str, str] = {}
    checked = grade_module._run_check(FakeBridge(_no_bias_float64), check, True, rubric, True, "", None, None, seen)
    assert set(seen) == {learned.case_key("public", c.seed, c.params, None) for c in check.public}
    result = SubmissionResult.from_json(_result(ADA, MEMBERS[0], [__import__("grader.result").result._case_json(c)
                                                                  for c in checked], seen))
    noted = learned.apply_catalogue(result, rubric.learned.mistakes)
    assert noted.questions["11.4.a"].cases[0].learned
    # ... and `grade check` prints the tutors' note on the failing example's row, on one line.
    from grader.students.selfcheck import _auto_rows
    rows = [r for r in _auto_rows(noted, rubric) if r.status == "fail" and "rnn_forward" in r.item]
    assert rows and all("a note from your tutors: Bias left out: Add `b` inside the activation." in r.message
                        and "\n" not in r.message for r in rows)


def test_export_refuses_a_folder_without_named_groups(tmp_path: Path, three_kinds: dict[str, Any]) -> None:
    out = _batch(tmp_path, three_kinds)
    run = CliRunner().invoke(main, ["mistakes", "export", "-o", str(out), str(tmp_path / "x.toml")])
    assert run.exit_code != 0 and "no group" in run.output and not (tmp_path / "x.toml").exists()


@pytest.mark.parametrize("edit, problem", [
    (lambda t: t.replace('function = "rnn_forward"', 'function = "rnn_backward"'), "function"),
    (lambda t: re.sub(r'fingerprint = "[0-9a-f]{16}"', 'fingerprint = "zz"', t, count=1), "fingerprint"),
    (lambda t: t.replace('title = "Bias left out"', 'title = ""'), "title"),
    (lambda t: t.replace("quantum = 0.01", "quantum = 0.02"), "quantum"),
    (lambda t: t.replace('kind = "public"', 'kind = "hidden"', 1), "secret_id"),
    (lambda t: re.sub(r'fingerprint = "[0-9a-f]{16}"', 'fingerprint = "pass"', t), "no case holds"),
    (lambda t: t.replace("members = 2", "members = 2\nwhatever = 1"), "unknown key"),
    (lambda t: t + t[t.index("[[learned_mistakes]]"):], "given twice"),
])
def test_the_rubric_refuses_a_malformed_entry(tmp_path: Path, three_kinds: dict[str, Any],
                                               edit: Callable[[str], str], problem: str) -> None:
    out, _ = _named_batch(tmp_path, three_kinds)
    exported = tmp_path / "learned.toml"
    export_learned(OutDir(out), exported)
    exported.write_text(edit(exported.read_text(encoding="utf-8")), encoding="utf-8")
    with pytest.raises(RubricError) as caught:
        load_rubric(_next_rubric(tmp_path, exported))
    assert problem in str(caught.value)


def test_a_hostile_title_stays_text(tmp_path: Path, three_kinds: dict[str, Any]) -> None:
    """A title or explanation is a tutor's, but it is escaped on every page and survives TOML."""
    out = _batch(tmp_path, three_kinds)
    key = OutDir(out).learned_groups(OutDir(out).results())[0]["key"]
    title, text = 'x"]\n[rubric]<script>alert(1)</script>\x7f', 'a """ b \\ c <img src=x onerror=alert(1)>'
    with pytest.raises(ValueError):
        learned.clean_name(title, text)  # a control character (DEL)
    title, text = learned.clean_name(title.replace("\x7f", ""), text)
    with OutDir(out).gradebook() as book:
        book.name_group(key, "rnn_forward", title, text, "ada", 0.0)
    sync_outputs(OutDir(out))
    for page in (out / ADA / "report.html", out / "summary.html"):
        html = page.read_text(encoding="utf-8")
        assert "<script>alert(1)" not in html and "<img src=x" not in html
    exported = tmp_path / "learned.toml"
    export_learned(OutDir(out), exported)
    (entry,) = load_rubric(_next_rubric(tmp_path, exported)).learned.mistakes
    assert (entry.title, entry.explanation) == (" ".join(title.split()), text)


def test_the_key_in_a_serve_address_is_never_a_path(tmp_path: Path, three_kinds: dict[str, Any]) -> None:
    out = _batch(tmp_path, three_kinds)
    client = _client(out)
    csrf = hmac.new(TOKEN.encode(), b"csrf", hashlib.sha256).hexdigest()
    for key in ("..%2F..%2Fetc", "rnn_forward-' OR 1=1", "x" * 300):
        assert client.post(f"/mistakes/{key}", data={"csrf": csrf, "title": "t", "explanation": "e"}).status_code \
            in (404, 405)
