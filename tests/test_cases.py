"""Hidden inputs come from a course secret the kernel cannot search (issue 10); public examples
stay reproducible from the rubric alone (grader/checks/cases.py, grader/checks/secret.py)."""
from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from grader.checks import cases as case_inputs
from grader.checks.cases import LossSpec, case_rng, make_inputs
from grader.checks.secret import ENV_VAR, default_path, derive, load_secret, secret_path
from grader.errors import SecretError
from grader.rubric import load_rubric

A = b"course-A-" + b"a" * 32
B = b"course-B-" + b"b" * 32


def _arrays(value: Any) -> Iterator[np.ndarray]:
    if isinstance(value, torch.Tensor):
        yield value.detach().double().numpy()
    elif isinstance(value, LossSpec):
        yield value.vector.double().numpy()
    elif isinstance(value, dict):
        for v in value.values():
            yield from _arrays(v)


def _flat(inputs: dict[str, Any]) -> list[np.ndarray]:
    return [a for v in inputs.values() for a in _arrays(v)]


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    fa, fb = _flat(a), _flat(b)
    return len(fa) == len(fb) and all(x.shape == y.shape and np.array_equal(x, y) for x, y in zip(fa, fb))


def _hidden_cases():
    for check in load_rubric().checks():
        for case in check.cases:
            yield check.function, case


def test_hidden_inputs_are_deterministic_for_one_secret():
    for function, case in _hidden_cases():
        assert _same(make_inputs(function, case.seed, case.params, A),
                     make_inputs(function, case.seed, case.params, A)), function


def test_hidden_inputs_differ_between_two_secrets():
    for function, case in _hidden_cases():
        a = make_inputs(function, case.seed, case.params, A)
        b = make_inputs(function, case.seed, case.params, B)
        # Same shapes and settings (the rubric's), other numbers.
        assert [x.shape for x in _flat(a)] == [x.shape for x in _flat(b)]
        assert all(not np.allclose(x, y) for x, y in zip(_flat(a), _flat(b))), function


def _from_rubric_numbers(function: str, seed: int, params: dict) -> list[dict[str, Any]]:
    """Every way to draw a case from the rubric's numbers alone that a student might try."""
    tried = [make_inputs(function, seed, params)]  # the public derivation applied to a hidden seed
    tried.append(case_inputs.MAKERS[function](np.random.default_rng(seed), params))
    tried.append(case_inputs.MAKERS[function](np.random.Generator(np.random.MT19937(seed)), params))
    return tried


def test_hidden_inputs_cannot_be_reproduced_from_the_rubric_alone():
    secret = load_secret()  # the tests' own secret (tests/conftest.py)
    for function, case in _hidden_cases():
        hidden = make_inputs(function, case.seed, case.params, secret)
        for attempt in _from_rubric_numbers(function, case.seed, dict(case.params)):
            # Integer labels (y of tbptt) may agree by chance; every float array must not.
            assert not any(np.allclose(x, y) for x, y in zip(_flat(hidden), _flat(attempt))
                           if x.size > 1 and not np.array_equal(x, np.round(x))), function
        # Nor from any seed near the case's (a brute-force search over the seed space).
        target = _flat(hidden)[0]
        for seed in range(case.seed - 200, case.seed + 200):
            first = _flat(make_inputs(function, seed, case.params))[0]
            assert not np.allclose(first, target), (function, seed)


def test_the_secret_keys_every_part_of_a_case():
    base = case_rng("rnn_forward", 1, {"T": 2}, A).standard_normal(4)
    for other in (case_rng("lstm_cell", 1, {"T": 2}, A), case_rng("rnn_forward", 2, {"T": 2}, A),
                  case_rng("rnn_forward", 1, {"T": 3}, A), case_rng("rnn_forward", 1, {"T": 2}, B)):
        assert not np.allclose(other.standard_normal(4), base)
    assert len(derive(A, "x")) * 8 == 256


def test_public_inputs_need_no_secret_and_are_reproducible():
    for check in load_rubric().checks():
        for case in check.public_cases():
            first = make_inputs(check.function, case.seed, case.params)
            again = case_inputs.MAKERS[check.function](np.random.default_rng(case.seed), case.params)
            assert _same(first, again), check.function


def test_public_examples_use_their_own_settings():
    rnn = next(c for c in load_rubric().checks() if c.function == "rnn_forward")
    got = [make_inputs("rnn_forward", c.seed, c.params) for c in rnn.public_cases()]
    assert {g["activation"] for g in got} == {"tanh", "sigmoid"}
    assert {g["x"].shape[0] for g in got} >= {1} and {g["x"].shape[1] for g in got} >= {1}


def test_inputs_have_the_contract_dtypes():
    for function, case in _hidden_cases():
        inputs = make_inputs(function, case.seed, case.params, A)
        for key, value in inputs.items():
            if key == "y":
                assert value.dtype == torch.int64 and int(value.max()) < case.params["C"]
            else:
                assert all(a.dtype == np.float64 for a in _arrays(value))  # via .double()
                for t in ([value] if isinstance(value, torch.Tensor) else
                          value.values() if isinstance(value, dict) else []):
                    assert t.dtype == torch.float32, (function, key)


# ------------------------------------------------------------------------ the secret file

def test_a_missing_secret_is_created_private(tmp_path, monkeypatch, caplog):
    path = tmp_path / "conf" / "sheet11" / "secret"
    monkeypatch.setenv(ENV_VAR, str(path))
    secret = load_secret()
    assert len(secret) >= 32 and path.is_file()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "created the course secret" in caplog.text and str(path) in caplog.text
    assert load_secret() == secret  # kept, not re-made


def test_secret_places_in_order(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert default_path() == tmp_path / "xdg" / "sheet11" / "secret"
    assert secret_path() == default_path()
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "env"))
    assert secret_path() == tmp_path / "env"
    assert secret_path(tmp_path / "given") == tmp_path / "given"


@pytest.mark.parametrize(("content", "mode", "problem"), [
    (b"short\n", 0o600, "at least 16"),
    (b"x" * 40, 0o644, "chmod 600"),
    (b"x" * 5000, 0o600, "larger than"),
])
def test_a_bad_secret_file_is_refused_with_what_to_do(tmp_path, content, mode, problem):
    path = tmp_path / "secret"
    path.write_bytes(content)
    os.chmod(path, mode)
    with pytest.raises(SecretError, match=problem) as err:
        load_secret(path)
    assert str(path) in str(err.value)


def test_without_create_a_missing_secret_is_an_error(tmp_path):
    with pytest.raises(SecretError, match="does not exist"):
        load_secret(tmp_path / "none", create=False)
    assert not (tmp_path / "none").exists()


def test_public_check_context_never_reads_the_secret(monkeypatch, tmp_path: Path):
    from grader.grade import Context
    from grader.kernel.sandbox import choose_sandbox
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "absent" / "secret"))
    monkeypatch.setattr("grader.grade.load_secret", lambda: pytest.fail("public mode read the secret"))
    ctx = Context.create(load_rubric(), choose_sandbox("none"), public=True)
    assert ctx.secret is None
    assert not (tmp_path / "absent").exists()


@pytest.mark.slow
def test_the_sandboxed_kernel_cannot_read_the_secret(_course_secret: Path, tmp_path: Path):
    """The secret file (here the tests' own, in the grader's /tmp) and its default place under the
    grader's home are outside the kernel's view, and its path is not in the kernel's environment."""
    import json

    import nbformat
    from builders import quick_context

    from grader.kernel import sandbox as sandbox_mod
    from grader.kernel.execute import KernelSession
    if sandbox_mod._bwrap_problem():
        pytest.skip("bubblewrap cannot run here")
    ctx = quick_context("bwrap", cell_timeout=20, notebook_timeout=60)
    paths = [str(_course_secret), str(default_path())]
    source = f"""
import json, os
found = {{}}
for p in {paths!r}:
    try:
        with open(p, "rb") as f:
            found[p] = f.read(8).hex()
    except OSError as e:
        found[p] = None
print("PROBE " + json.dumps({{"found": found, "env": os.environ.get({ENV_VAR!r})}}))
"""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    with KernelSession(ctx.sandbox, ctx.rubric.limits) as session:
        session.run_notebook(nb)
    out = "".join(o.get("text", "") for o in nb.cells[0].outputs if o.get("output_type") == "stream")
    line = next(ln for ln in out.splitlines() if ln.startswith("PROBE "))
    probe = json.loads(line[len("PROBE "):])
    assert probe["env"] is None
    assert all(v is None for v in probe["found"].values()), probe
