"""Mistakes learned from the batch in the students' self-check (grader/checks/learned.py, "The
students' self-check"): a learned entry the rubric loads goes into the release bundle as its public
part only, and `sheet11_check`, run on a notebook function, names it where the function's outputs
on the public examples are the ones the entry recorded, by the grader's own fingerprint."""
from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import torch
from builders import load_script
from test_learned_mistakes import (  # noqa: F401 - three_kinds is a fixture used here
    ADA,
    EMMY,
    GRACE,
    _batch,
    _mistake,
    _next_rubric,
    _no_bias_float64,
    three_kinds,
)
from test_scores import MEMBERS

from grader.checks import bridge as bridge_module
from grader.checks import learned
from grader.checks.bridge import Returned
from grader.checks.mistakes import mistakes_for
from grader.checks.secret import load_secret, secret_id
from grader.folder.outdir import OutDir, export_learned
from grader.rubric import LearnedMistake, case_key, load_rubric
from grader.students.release import release

ROOT = Path(__file__).resolve().parents[1]
TITLE = "Bias left out"
EXPLANATION = "Your z_t leaves out b: add the bias inside the activation, z_t = W h + U x + b."
TUTOR = "Wilhelmina Tutorsdottir"


def _check_module(path: Path, name: str) -> ModuleType:
    return load_script(name, path)


# -- the same fingerprint as the grader's, through the kernel's own conversion --------------------------------
def _graders_fingerprint(make: Callable[[], Any], expected: Any, folder: Path, limit: int) -> str:
    """The grader's fingerprint of what ``make()`` returns, sent back by the Bridge's kernel code
    (run here, in-process) and read back as the Bridge reads it."""
    from grader.checks import bridge_kernel  # the kernel side, run here as the kernel runs it
    namespace: dict[str, Any] = {"__name__": "kernel", "make": make}
    folder.mkdir()
    (folder / "call.json").write_text(json.dumps({"args": {}}), encoding="utf-8")
    bridge_kernel.call(namespace, str(folder), "make()", False, limit)
    result = json.loads((folder / "result.json").read_text(encoding="utf-8"))
    if result["ok"]:
        returned = Returned("ok", bridge_module._decode(result["value"], folder))
    else:
        returned = Returned("raised", error_type=bridge_module._identifier(result.get("type")))
    return learned.fingerprint(returned, expected, 0.01, False)


def _selfchecks_fingerprint(module: ModuleType, make: Callable[[], Any], expected: Any) -> str:
    try:
        value = make()
    except Exception as exc:  # noqa: BLE001 - what the student's code raises is fingerprinted
        return str(module._fingerprint(None, exc, expected, 0.01))
    return str(module._fingerprint(value, None, expected, 0.01))


class Odd:
    pass


class StudentError(Exception):
    pass


def _raise(exc: Exception) -> Callable[[], Any]:
    def make() -> Any:
        raise exc
    return make


_G = torch.Generator().manual_seed(7)
_T = torch.randn(3, 4, generator=_G)
RETURNS: dict[str, Callable[[], Any]] = {
    "float32 tensor": lambda: _T * 1.5,
    "float64 tensor": lambda: (_T * 1.5).double(),
    "float16 tensor": lambda: _T.half(),
    "bfloat16 tensor": lambda: _T.bfloat16(),
    "requires_grad": lambda: (_T.clone().requires_grad_(True) * 2),
    "transposed view": lambda: _T.T,
    "numpy float32": lambda: _T.numpy().astype(np.float32),
    "int64 tensor": lambda: torch.arange(12).reshape(3, 4),
    "bool tensor": lambda: _T > 0,
    "complex tensor": lambda: _T.to(torch.complex64),
    "0-d tensor": lambda: _T.sum(),
    "nan and inf": lambda: torch.tensor([[float("nan"), float("inf"), -float("inf"), 1.0]] * 3),
    "list of 20 tensors": lambda: [_T[0] * i for i in range(20)],
    "tuple of two": lambda: (_T, _T * 2),
    "dict, mixed keys": lambda: {"W": _T, 1: _T * 3, "b": [_T[0], 3], (1, 2): None},
    "dict of 20": lambda: {f"k{i}": float(i) for i in range(20)},
    "dict, colliding keys": lambda: {1: _T, "1": _T * 2},
    "None": lambda: None,
    "int": lambda: 3,
    "bool": lambda: True,
    "float": lambda: 2.5,
    "nan": lambda: float("nan"),
    "numpy float64 scalar": lambda: np.float64(1.5),
    "numpy float32 scalar": lambda: np.float32(1.5),
    "numpy int64 scalar": lambda: np.int64(3),
    "huge int": lambda: 10 ** 400,
    "nested deep": lambda: [[[[[[[_T]]]]]]],
    "an object": lambda: Odd(),
    "a format character in a type name": lambda: type("Odd\u200bName", (), {})(),
    "a string": lambda: "abc",
    "a generator": lambda: (i for i in range(3)),
    "ValueError": _raise(ValueError("no")),
    "NotImplementedError": _raise(NotImplementedError()),
    "the student's own exception": _raise(StudentError("mine")),
    "an exception named oddly": _raise(type("Not An Identifier", (Exception,), {})("x")),
}


@pytest.mark.parametrize("what", list(RETURNS))
def test_sheet11_check_fingerprints_as_the_grader_does(what: str, tmp_path: Path) -> None:
    module = _check_module(ROOT / "student_template" / "sheet11_check.py", "sheet11_check_fingerprint")
    expected = np.linspace(-2.0, 3.0, 12).reshape(3, 4)
    make = RETURNS[what]
    assert _selfchecks_fingerprint(module, make, expected) == \
        _graders_fingerprint(make, expected, tmp_path / "call", bridge_module.MAX_RESULT_BYTES)


def test_the_result_cap_is_the_graders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the grader's cap on a result's bytes, an array counts as "too large" in both."""
    module = _check_module(ROOT / "student_template" / "sheet11_check.py", "sheet11_check_cap")
    assert module._MAX_RESULT_BYTES == bridge_module.MAX_RESULT_BYTES
    monkeypatch.setattr(module, "_MAX_RESULT_BYTES", 1000)
    expected = np.ones(100)
    for make in (lambda: (torch.ones(100), torch.ones(100), torch.ones(1)), lambda: torch.ones(200)):
        ours = _selfchecks_fingerprint(module, make, expected)
        assert ours == _graders_fingerprint(make, expected, tmp_path / f"call{id(make)}", 1000)
        assert ours != _selfchecks_fingerprint(module, lambda: (torch.ones(100), torch.ones(100)), expected)


MATCH_TABLE = [  # (the entry's fingerprints, the function's): the grader's rule decides
    ({"1": "a" * 16, "2": "b" * 16}, {"1": "a" * 16, "2": "b" * 16}),
    ({"1": "a" * 16, "2": "b" * 16}, {"1": "a" * 16, "2": "c" * 16}),
    ({"1": "a" * 16, "2": "pass"}, {"1": "a" * 16, "2": "pass"}),
    ({"1": "a" * 16, "2": "pass"}, {"1": "a" * 16, "2": "d" * 16}),
    ({"1": "pass", "2": "pass"}, {"1": "pass", "2": "pass"}),
    ({"1": "a" * 16, "3": "b" * 16}, {"1": "a" * 16}),
    ({"1": "a" * 16}, {"1": "status:timeout"}),
    ({"1": "a" * 16}, {"2": "a" * 16}),
    ({"1": "a" * 16}, {}),
]


@pytest.mark.parametrize("entry, got", MATCH_TABLE)
def test_sheet11_check_matches_by_the_graders_rule(entry: dict[str, str], got: dict[str, str]) -> None:
    module = _check_module(ROOT / "student_template" / "sheet11_check.py", "sheet11_check_rule")
    graders = learned.matches(LearnedMistake("rnn_forward-0123456789ab", "rnn_forward", "t", "e", entry), got)
    assert module._learned_match(entry, got) is graders


def test_the_note_stands_beside_the_failing_examples_only() -> None:
    module = _check_module(ROOT / "student_template" / "sheet11_check.py", "sheet11_check_beside")
    results = [module.Result("f", "example 1", "fail", "the values differ", "a" * 16),
               module.Result("f", "example 2", "pass", "", "pass")]
    module._with_learned("f", results, [{"title": "T", "explanation": "E", "cases": {"1": "a" * 16, "2": "pass"}}])
    assert results[0].message == "the values differ\nA note from your tutors on `f`: T\nE"
    assert results[1].message == ""


def test_public_part_keeps_only_the_public_examples() -> None:
    entry = LearnedMistake("rnn_forward-0123456789ab", "rnn_forward", "t", "e",
                           {"public/-/1/{}": "aaaaaaaaaaaaaaaa", "public/-/2/{}": "pass",
                            "public/-/3/{}": "status:timeout", "public/-/9/{}": "cccccccccccccccc",
                            "hidden/ffffffffffffffff/4/{}": "bbbbbbbbbbbbbbbb"}, members=7)
    keys = ["public/-/1/{}", "public/-/2/{}", "public/-/3/{}", "hidden/ffffffffffffffff/4/{}"]
    assert learned.public_part(entry, keys) == {"title": "t", "explanation": "e",
                                                "cases": {"1": "aaaaaaaaaaaaaaaa", "2": "pass"}}
    only_hidden = LearnedMistake("rnn_forward-0123456789ab", "rnn_forward", "t", "e",
                                 {"public/-/2/{}": "pass", "hidden/ffffffffffffffff/4/{}": "bbbbbbbbbbbbbbbb"})
    assert learned.public_part(only_hidden, keys) is None  # it could never match on the public examples


# -- end to end: export, the next term's rubric, the bundle, sheet11_check ------------------------------------
@pytest.fixture(scope="module")
def next_term(three_kinds: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:  # noqa: F811
    """A batch whose no-bias group a tutor named, exported, loaded by the next term's rubric and
    released: the rubric's entry, the bundle folder and the grader's public fingerprints."""
    tmp = tmp_path_factory.mktemp("next-term")
    out = _batch(tmp, three_kinds)
    key = OutDir(out).learned_groups(OutDir(out).results())[0]["key"]
    with OutDir(out).gradebook() as book:
        book.name_group(key, "rnn_forward", TITLE, EXPLANATION, TUTOR, 0.0)
    exported = tmp / "learned.toml"
    export_learned(OutDir(out), exported)
    rubric_path = _next_rubric(tmp, exported)
    (entry,) = load_rubric(rubric_path).learned.mistakes
    bundle = tmp / "bundle"
    release(bundle, rubric_path)
    return {"entry": entry, "bundle": bundle, "rubric": rubric_path, "kinds": three_kinds}


def test_a_learned_entry_the_rubric_loads_is_in_the_bundle(next_term: dict[str, Any]) -> None:
    entry, bundle = next_term["entry"], next_term["bundle"]
    rubric = load_rubric(next_term["rubric"])
    check = next(c for c in rubric.checks() if c.function == "rnn_forward")
    data = json.loads((bundle / "sheet11_public.json").read_text(encoding="utf-8"))
    assert data["learned_quantum"] == rubric.learned.quantum
    (shipped,) = data["functions"]["rnn_forward"]["learned"]
    public = [case_key("public", c.seed, c.params, None) for c in check.public_cases()]
    assert shipped == {"title": TITLE, "explanation": EXPLANATION,
                       "cases": {str(i): entry.cases[k] for i, k in enumerate(public, start=1)}}
    assert all(not data["functions"][f]["learned"] for f in data["functions"] if f != "rnn_forward")


def test_the_bundle_holds_nothing_tutor_only_of_a_learned_entry(next_term: dict[str, Any]) -> None:
    entry, bundle = next_term["entry"], next_term["bundle"]
    text = "\n".join(p.read_text(encoding="utf-8") for p in bundle.iterdir() if p.suffix != ".npz")
    raw = (bundle / "sheet11_public.npz").read_bytes()
    secret = load_secret()
    hidden = {k: v for k, v in entry.cases.items() if k.startswith("hidden/")}
    assert hidden and entry.members == 2  # the entry does hold tutor-only parts: none may go out
    public_values = {v for k, v in entry.cases.items() if k.startswith("public/")}
    forbidden = {
        "the entry's key": entry.key, "its hash": entry.key.rsplit("-", 1)[1],
        "the course secret": secret.hex(), "the secret's id": secret_id(secret),
        "the tutor": TUTOR, "a tutor's surname": "Tutorsdottir",
        **{f"a hidden fingerprint {i}": fp for i, fp in enumerate(hidden.values())
           if learned.is_output(fp) and fp not in public_values},
        **{f"a member's folder {f}": f for f in (ADA, GRACE, EMMY)},
        **{f"a member {who}": who for group in MEMBERS for person in group for who in person},
    }
    for what, token in forbidden.items():
        assert token not in text, what
        assert token.encode() not in raw, what
    data = json.loads((bundle / "sheet11_public.json").read_text(encoding="utf-8"))
    for function in data["functions"].values():
        for shipped in function["learned"]:
            assert set(shipped) == {"title", "explanation", "cases"}  # no key, members, secret id
            assert all(re.fullmatch(r"[0-9a-f]{16}|pass", fp) for fp in shipped["cases"].values())
    for key in hidden:  # nor a hidden case's seed or parameters as such
        seed = key.split("/")[2]
        assert not re.search(rf"(?<!\d){seed}(?!\d)", json.dumps(data["functions"]["rnn_forward"]["learned"]))


def _run(bundle: Path, impl: Callable[..., Any], name: str) -> list[Any]:
    module = _check_module(bundle / "sheet11_check.py", name)
    return list(module.run_checks("rnn_forward", namespace={"rnn_forward": impl}))


def test_sheet11_check_names_the_learned_mistake_where_the_function_makes_it(
        next_term: dict[str, Any], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = next_term["bundle"]
    results = _run(bundle, _no_bias_float64, "sheet11_check_no_bias")
    assert results and all(r.status == "fail" for r in results)
    for r in results:
        assert f"A note from your tutors on `rnn_forward`: {TITLE}\n{EXPLANATION}" in r.message, r.message
    # the same fingerprints as grading's on the public examples (the rule is the grader's)
    _, grading, _ = next_term["kinds"]["no_bias_64"]
    check = next(c for c in load_rubric().checks() if c.function == "rnn_forward")
    assert [r.fingerprint for r in results] == [grading[case_key("public", c.seed, c.params, None)]
                                                for c in check.public_cases()]
    module = _check_module(bundle / "sheet11_check.py", "sheet11_check_printed")
    monkeypatch.setattr(module, "_namespace", lambda: {"rnn_forward": _no_bias_float64})
    module.check("rnn_forward")
    printed = capsys.readouterr().out
    assert f"        A note from your tutors on `rnn_forward`: {TITLE}\n        {EXPLANATION}" in printed


def _no_bias_with_tanh_only(x: torch.Tensor, h0: torch.Tensor, W: torch.Tensor, U: torch.Tensor, b: torch.Tensor,
                            activation: str = "tanh") -> torch.Tensor:
    """The mistake in the tanh case only: the sigmoid examples pass, where the entry's failed."""
    if activation == "tanh":
        return _no_bias_float64(x, h0, W, U, b, activation)
    correct = next(m.compute for m in mistakes_for("rnn_forward")).func  # type: ignore[attr-defined]
    return correct(x, h0, W, U, b, activation)  # type: ignore[no-any-return]


@pytest.mark.parametrize("impl_name", ["no_activation", "W_transposed", "correct", "tanh_only"])
def test_sheet11_check_does_not_name_it_for_another_function(next_term: dict[str, Any], impl_name: str) -> None:
    correct = next(m.compute for m in mistakes_for("rnn_forward")).func  # type: ignore[attr-defined]
    impl = {"correct": correct, "tanh_only": _no_bias_with_tanh_only}.get(impl_name) or _mistake(impl_name)
    results = _run(next_term["bundle"], impl, f"sheet11_check_{impl_name}")
    assert results and not any(TITLE in r.message for r in results)
    assert all(r.passed for r in results) is (impl_name == "correct")
    # grading, by its rule, on these fingerprints: not named either
    got = {case_key("public", c.seed, c.params, None): r.fingerprint
           for c, r in zip(next(c for c in load_rubric().checks() if c.function == "rnn_forward").public_cases(),
                           results)}
    assert not learned.matches(next_term["entry"], got)
    if impl_name == "tanh_only":  # it does share the entry's fingerprint on the tanh examples
        assert any(got[k] == next_term["entry"].cases[k] and learned.is_output(got[k]) for k in got)


def _last_step_only(x: torch.Tensor, h0: torch.Tensor, W: torch.Tensor, U: torch.Tensor, b: torch.Tensor,
                    activation: str = "tanh") -> torch.Tensor:
    correct = next(m.compute for m in mistakes_for("rnn_forward")).func  # type: ignore[attr-defined]
    return correct(x, h0, W, U, b, activation)[-1]  # type: ignore[no-any-return]


def _raises_on_sigmoid(x: torch.Tensor, h0: torch.Tensor, W: torch.Tensor, U: torch.Tensor, b: torch.Tensor,
                       activation: str = "tanh") -> torch.Tensor:
    if activation == "sigmoid":
        raise KeyError(activation)
    return _no_bias_float64(x, h0, W, U, b, activation)


@pytest.mark.parametrize("impl", [_no_bias_float64, _no_bias_with_tanh_only, _last_step_only, _raises_on_sigmoid])
def test_sheet11_check_fingerprints_each_public_example_as_grading_does(next_term: dict[str, Any],
                                                                         impl: Callable[..., Any]) -> None:
    """Per public example, the fingerprint grading keeps (learned.observe_public: the value as the
    Bridge gives it back, ``pass`` where it equals the reference's) and the self-check's agree."""
    import reference
    from grader.checks.bridge import ArrayInfo
    from grader.checks.cases import make_inputs
    from grader.checks.compare import same, to_numpy
    check = next(c for c in load_rubric().checks() if c.function == "rnn_forward")
    grading = []
    for case in check.public_cases():
        inputs = make_inputs("rnn_forward", case.seed, case.params, None)
        expected = to_numpy(reference.rnn_forward(**inputs))
        try:
            value = impl(**inputs)
            returned = Returned("ok", ArrayInfo(value.detach().numpy().astype(np.float64), "tensor", str(value.dtype)))
        except Exception as exc:  # noqa: BLE001
            returned = Returned("raised", error_type=type(exc).__name__)
        passed = returned.status == "ok" and same(expected, returned.value, check.rtol, check.atol)
        grading.append(learned.fingerprint(returned, expected, 0.01, passed))
    results = _run(next_term["bundle"], impl, f"sheet11_check_{impl.__name__}")
    assert [r.fingerprint for r in results] == grading
    assert any(fp == learned.PASS for fp in grading) is (impl is _no_bias_with_tanh_only)
