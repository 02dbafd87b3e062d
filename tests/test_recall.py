"""The recall verdict (grader/checks/recall.py): the decision rule, the relabelled data, the kernel's CPU
time read from outside, the rubric keys, and the numbers students see following the rubric.

Fast tests run no kernel and train nothing; the ``slow`` ones grade fixture notebooks
(``tests/files/recall/``, written by ``tests/make_recall_fixtures.py``).
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from builders import ROOT, load_script

import reference
import reference.recall
from grader.checks import recall as R
from grader.errors import RubricError
from grader.rubric import DEFAULT_RUBRIC, load_rubric

RUBRIC_TEXT = DEFAULT_RUBRIC.read_text(encoding="utf-8")


def calibrate_script() -> Any:
    """benchmarks/calibrate.py, loaded from its file (benchmarks/ is scripts, not a package)."""
    return load_script("sheet11_calibrate", ROOT / "benchmarks" / "calibrate.py")


def test_calibration_relabels_training_and_held_out_labels_alike() -> None:
    """--relabel: inside ``relabelled`` every make_recall_data an implementation reaches returns
    perm[y] (the same tokens), and the original is back afterwards."""
    script: Any = calibrate_script()
    perm = script.relabelling(3, 8)
    assert sorted(perm) == list(range(8)) and all(p != i for i, p in enumerate(perm))
    assert perm == script.relabelling(3, 8) and perm != script.relabelling(4, 8)
    x0, y0 = reference.recall.make_recall_data(16, 5, 8, 7)
    with script.relabelled(perm):
        for reach in (reference.recall.make_recall_data, script.make_recall_data):
            x1, y1 = reach(16, 5, 8, 7)
            assert torch.equal(x0, x1) and y1.tolist() == [perm[int(v)] for v in y0]
    x2, y2 = reference.recall.make_recall_data(16, 5, 8, 7)
    assert torch.equal(y0, y2) and script.make_recall_data is reference.recall.make_recall_data


def rubric_with(tmp_path: Path, **recall: object) -> Path:
    """A copy of the rubric whose [recall] keys are replaced by ``recall``."""
    text = RUBRIC_TEXT
    for key, value in recall.items():
        literal = json.dumps(value) if not isinstance(value, bool) else str(value).lower()
        text, n = re.subn(rf"(?m)^{key} = [^#\n]*", f"{key} = {literal}   ", text, count=1)
        assert n == 1, key
    path = tmp_path / "rubric.toml"
    path.write_text(text, encoding="utf-8")
    return path


# ================================================================================ decision rule

def ok(acc: float, cpu: float | None = 10.0, seed: int = 0, wall: float = 12.0) -> R.Attempt:
    return R.Attempt("lstm", seed, "ok", acc, cpu, wall)


def test_first_success_counts_and_later_failures_do_not_matter() -> None:
    passed, deciding = R.decide([ok(0.5, seed=0), ok(0.95, seed=1), ok(0.2, seed=2)], 0.9, 100)
    assert passed and deciding is not None and deciding.seed == 1


def test_no_success_is_decided_by_the_last_try() -> None:
    passed, deciding = R.decide([ok(0.5, seed=0), ok(0.6, seed=1)], 0.9, 100)
    assert not passed and deciding is not None and deciding.seed == 1


def test_a_run_over_the_cpu_limit_fails_even_when_accurate() -> None:
    slow = ok(1.0, cpu=150.0)
    assert not slow.passed(0.9, 120) and not R.should_retry(slow, 0.9, 120)
    assert ok(1.0, cpu=119.0).passed(0.9, 120)


def test_the_cpu_limit_ignores_the_machines_load() -> None:
    """Wall time far over the limit (a loaded machine) with CPU time under it passes."""
    assert ok(1.0, cpu=60.0, wall=500.0).passed(0.9, 120)


def test_wall_clock_stands_in_only_where_cpu_time_is_unknown() -> None:
    assert not ok(1.0, cpu=None, wall=500.0).passed(0.9, 120)
    assert ok(1.0, cpu=None, wall=50.0).passed(0.9, 120)


@pytest.mark.parametrize("status", ["raised", "timeout", "died", "bad-model"])
def test_only_an_in_time_accuracy_miss_is_retried(status: str) -> None:
    assert not R.should_retry(R.Attempt("lstm", 0, status, None, 5.0, 5.0, "x"), 0.9, 100)
    assert R.should_retry(ok(0.5), 0.9, 100)
    assert not R.should_retry(ok(0.95), 0.9, 100)  # passed: nothing to retry


def test_threshold_is_inclusive() -> None:
    assert ok(0.9).passed(0.9, 100)
    assert not ok(0.8999).passed(0.9, 100)


def test_train_seeds_follow_the_rubric() -> None:
    assert R.train_seeds(0, 3) == [0, 1, 2]
    assert R.train_seeds(7, 1) == [7]


def test_clopper_pearson_upper_bound() -> None:
    # 0 failures in 30: 1 - 0.05 ** (1 / 30), the textbook value.
    assert R.failure_upper_bound(0, 30) == pytest.approx(1 - 0.05 ** (1 / 30), abs=1e-6)
    assert R.failure_upper_bound(0, 30) == pytest.approx(0.0950, abs=1e-4)
    # 3 failures in 30: the rate at which seeing <= 3 has probability 5 % (one-sided 95 %).
    p = R.failure_upper_bound(3, 30)
    cdf = sum(math.comb(30, i) * p**i * (1 - p) ** (30 - i) for i in range(4))
    assert cdf == pytest.approx(0.05, abs=1e-6) and 0.23 < p < 0.25
    assert R.failure_upper_bound(30, 30) == 1.0
    with pytest.raises(ValueError):
        R.failure_upper_bound(4, 3)


def test_tries_needed_from_the_bound() -> None:
    assert R.tries_needed(0, 30) == 2        # 0.095 ** 2 = 0.009
    assert R.tries_needed(3, 30) == 4        # 0.239 ** 3 = 0.014, ** 4 = 0.003
    assert R.tries_needed(30, 30) == 0       # no number of tries helps
    assert R.tries_needed(0, 300) == 1       # 0.00994
    # From the observed rate instead of the bound: 1 in 3 fails, 3 ** -5 = 0.004 but 3 ** -4 = 0.012.
    assert R.tries_needed(10, 30, confidence=None) == 5
    assert R.tries_needed(0, 30, confidence=None) == 1


# ================================================================================ relabelling

def test_permutation_is_a_derangement_and_fresh() -> None:
    draws = [tuple(R.draw_permutation(8)) for _ in range(30)]
    for perm in draws:
        assert sorted(perm) == list(range(8))
        assert all(perm[i] != i for i in range(8))
    assert len(set(draws)) > 1  # 30 equal draws of 5040 single cycles: never by chance
    assert R.draw_permutation(2) == [1, 0]
    with pytest.raises(ValueError):
        R.draw_permutation(1)


def test_keyed_permutation_is_reproducible_and_differs_by_secret_and_submission() -> None:
    key = R.permutation_key(b"s" * 32, "ab" * 32)
    perm = R.draw_permutation(8, key)
    assert R.draw_permutation(8, key) == perm  # a re-grade trains on the same labels
    assert sorted(perm) == list(range(8)) and all(perm[i] != i for i in range(8))
    others = {tuple(R.draw_permutation(8, R.permutation_key(b"s" * 32, f"{i:064x}"))) for i in range(40)}
    assert len(others) > 30  # 40 submissions of 5040 single cycles: nearly all distinct
    other_course = R.draw_permutation(8, R.permutation_key(b"t" * 32, "ab" * 32))
    same_course = [R.draw_permutation(8, R.permutation_key(b"s" * 32, "ab" * 32)) for _ in range(3)]
    assert same_course == [perm] * 3
    assert other_course != perm  # another course's secret relabels otherwise
    # `grade check` has no secret: its relabelling is reproducible, and not the graded one.
    public = R.permutation_key(None, "ab" * 32)
    assert public == R.permutation_key(R.PUBLIC_KEY, "ab" * 32) != key
    assert R.draw_permutation(8, public) == R.draw_permutation(8, public)


def test_keyed_permutation_is_uniform_over_the_single_cycles() -> None:
    # 4 classes have 3! = 6 single cycles; 6,000 keys give each about 1,000 (sd 29). A bias in the
    # keyed draw (e.g. a modulo taken from too few bits) would put one far outside 850..1150.
    counts: dict[tuple[int, ...], int] = {}
    for i in range(6000):
        perm = tuple(R.draw_permutation(4, R.permutation_key(b"k" * 32, f"{i:064x}")))
        counts[perm] = counts.get(perm, 0) + 1
    assert len(counts) == 6
    assert all(850 < c < 1150 for c in counts.values()), counts


def run_kernel_code(namespace: dict, perm: list[int], cell: str = "lstm", seq_len: int = 6,
                    n_classes: int = 8, seed: int = 3) -> float:
    """Run the grader's kernel-side training code in ``namespace`` as the bridge would."""
    args = {"src": R.KERNEL_TRAIN_CODE, "function": "train_recall", "cell": cell, "seq_len": seq_len,
            "n_classes": n_classes, "seed": seed, "perm": torch.tensor(perm, dtype=torch.int64)}
    return eval(R._TRAIN_EXPR, namespace, {"__args": args})


def test_injected_generator_is_the_reference_up_to_the_permutation() -> None:
    perm = R.draw_permutation(8)
    seen = {}

    def own(n, seq_len, n_classes, seed):  # the student's: must not be used during the call
        raise AssertionError("the grader's generator must be in place")

    ns = {"make_recall_data": own, "seen": seen}
    # A notebook function: it looks make_recall_data up in the notebook's globals at call time.
    ns_code = compile("def train_recall(cell, seq_len, n_classes, seed):\n"
                      "    for s in (seed, 11, 12345):\n"
                      "        seen[s] = make_recall_data(50, seq_len, n_classes, s)\n"
                      "    return 'model'\n", "<notebook>", "exec")
    exec(ns_code, ns)
    assert run_kernel_code(ns, perm, seed=3) == 0.0
    assert ns["make_recall_data"] is own  # the student's object is back
    assert ns["_sheet11_model_lstm"] == "model"
    for s, (x, y) in seen.items():
        xr, yr = reference.make_recall_data(50, 6, 8, s)
        assert torch.equal(x, xr)
        assert y.dtype == torch.int64
        assert torch.equal(y, torch.tensor(perm)[yr])


def test_grader_heldout_uses_the_same_relabelling() -> None:
    perm = R.draw_permutation(8)
    x, y = R.heldout(40, 7, 8, 99, perm)
    xr, yr = reference.make_recall_data(40, 7, 8, 99)
    assert torch.equal(x, xr)
    assert np.array_equal(y, np.asarray(perm)[yr.numpy()])


def test_a_model_reading_the_first_token_scores_zero_on_relabelled_data() -> None:
    perm = R.draw_permutation(8)
    x, y = R.heldout(500, 60, 8, 5, perm)
    cheat = (10 * x[0]).numpy()  # the `10 * x[0]` model's logits
    assert float(np.mean(np.argmax(cheat, axis=1) == y)) == 0.0


def test_student_generator_is_restored_even_when_training_raises() -> None:
    ns: dict = {}
    exec("def train_recall(cell, seq_len, n_classes, seed):\n    raise RuntimeError('boom')\n", ns)
    with pytest.raises(RuntimeError):
        run_kernel_code(ns, [1, 0, 2, 3, 4, 5, 6, 7][::-1])
    assert "make_recall_data" not in ns  # there was none before: none after


def test_generator_refuses_another_number_of_classes() -> None:
    ns: dict = {}
    exec("def train_recall(cell, seq_len, n_classes, seed):\n"
         "    return make_recall_data(4, seq_len, n_classes + 1, seed)\n", ns)
    with pytest.raises(ValueError, match="n_classes=8 only"):
        run_kernel_code(ns, list(range(1, 8)) + [0])


# ================================================================================ CPU time

def fake_proc(root: Path, rows: dict[int, tuple[str, int, tuple[int, int, int, int]]]) -> Path:
    """A /proc with stat files: pid -> (comm, ppid, (utime, stime, cutime, cstime)) in ticks."""
    for pid, (comm, ppid, (ut, st, cut, cst)) in rows.items():
        d = root / str(pid)
        d.mkdir(parents=True)
        rest = ["S", str(ppid)] + ["0"] * 9 + [str(ut), str(st), str(cut), str(cst)] + ["0"] * 30
        (d / "stat").write_text(f"{pid} ({comm}) " + " ".join(rest) + "\n")
    (root / "self").mkdir(exist_ok=True)  # not a pid: ignored
    return root


def test_process_tree_cpu_sums_the_tree_and_nothing_else(tmp_path: Path) -> None:
    tck = os.sysconf("SC_CLK_TCK")
    proc = fake_proc(tmp_path, {
        10: ("bwrap", 1, (1, 1, 0, 0)),
        11: ("python ) (evil", 10, (100, 50, 20, 5)),   # a name made to confuse the parser
        12: ("worker", 11, (10, 0, 0, 0)),
        13: ("grandchild", 12, (0, 4, 0, 0)),
        20: ("other", 1, (999, 999, 0, 0)),             # another process: not counted
    })
    assert R.process_tree_cpu_seconds(10, proc) == pytest.approx((2 + 175 + 10 + 4) / tck)
    assert R.process_tree_cpu_seconds(12, proc) == pytest.approx(14 / tck)
    assert R.process_tree_cpu_seconds(99, proc) is None


def test_process_tree_cpu_counts_a_finished_child() -> None:
    """A child that burned CPU and was reaped is counted in its parent's cutime/cstime."""
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.4: pass\n"
    parent = subprocess.Popen([sys.executable, "-c",
                               f"import subprocess, sys, time\n"
                               f"subprocess.run([sys.executable, '-c', {burn!r}])\n"
                               f"print('done', flush=True)\ntime.sleep(60)\n"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None and parent.stdout.readline().strip() == "done"
        used = R.process_tree_cpu_seconds(parent.pid)
        assert used is not None and used >= 0.35
    finally:
        parent.kill()
        parent.wait()
        if parent.stdout is not None:
            parent.stdout.close()


def test_cgroup_cpu_seconds_v2_and_v1(tmp_path: Path) -> None:
    from grader.kernel.sandbox import KernelCgroup
    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "cpu.stat").write_text("usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n")
    assert KernelCgroup([v2]).cpu_seconds() == pytest.approx(2.5)
    mem, acct = tmp_path / "memory", tmp_path / "cpuacct"
    mem.mkdir()
    acct.mkdir()
    (acct / "cpuacct.usage").write_text("1500000000\n")
    assert KernelCgroup([mem, acct]).cpu_seconds() == pytest.approx(1.5)
    assert KernelCgroup([mem]).cpu_seconds() is None


def test_a_real_cgroup_counts_the_cpu_of_everything_that_ran_in_it() -> None:
    from grader.kernel.sandbox import KernelCgroup, _cgroup_layout
    if not _cgroup_layout():
        pytest.skip("no writable cgroup here (needs root and cgroup memory/pids controllers)")
    cgroup = KernelCgroup.create(f"sheet11-recall-test-{os.getpid()}", load_rubric().limits)
    assert cgroup is not None
    try:
        before = cgroup.cpu_seconds()
        if before is None:
            pytest.skip("this cgroup layout has no CPU accounting; the grader falls back to /proc")
        burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.4: pass\n"
        # A child that burns and ends: a process tree would need its parent to reap it; the
        # cgroup counts it regardless.
        subprocess.run([*cgroup.argv(), sys.executable, "-c",
                        f"import subprocess, sys; subprocess.Popen([sys.executable, '-c', {burn!r}]).wait()"],
                       check=True, timeout=120)
        after = cgroup.cpu_seconds()
        assert after is not None and after - before >= 0.35
    finally:
        cgroup.remove()


class _Session:
    def __init__(self, cgroup: object, pid: int | None) -> None:
        self.cgroup, self._pid = cgroup, pid

    def kernel_pid(self) -> int | None:
        return self._pid


def test_kernel_cpu_prefers_the_cgroup_then_proc(tmp_path: Path) -> None:
    from grader.kernel.sandbox import KernelCgroup
    d = tmp_path / "cg"
    d.mkdir()
    (d / "cpu.stat").write_text("usage_usec 7000000\n")
    assert R.kernel_cpu_seconds(_Session(KernelCgroup([d]), os.getpid())) == pytest.approx(7.0)
    own = R.kernel_cpu_seconds(_Session(None, os.getpid()))
    assert own is not None and own > 0
    empty = tmp_path / "empty"
    empty.mkdir()
    assert R.kernel_cpu_seconds(_Session(KernelCgroup([empty]), os.getpid())) == pytest.approx(own, rel=0.5)
    assert R.kernel_cpu_seconds(_Session(None, None)) is None


# ================================================================================ rubric

def test_rubric_reads_the_recall_rule() -> None:
    spec = load_rubric().recall
    assert spec.tries >= 1 and spec.cpu_time_limit > 0 and spec.wall_time_limit >= spec.cpu_time_limit
    assert isinstance(spec.compare_rnn, bool)
    assert 0 < spec.check_seq_len < spec.seq_len


@pytest.mark.parametrize(("change", "key", "words"), [
    ({"wall_time_limit": 10}, "recall.wall_time_limit", "safety net"),
    ({"tries": 0}, "recall.tries", ""),
    ({"compare_rnn": "yes"}, "recall.compare_rnn", "true or false"),
    ({"n_classes": 1}, "recall.n_classes", "at least 2"),
    ({"threshold": 1.5}, "recall.threshold", "(0, 1]"),
    ({"check_seq_len": 60}, "recall.check_seq_len", "shorter"),
    ({"cpu_budget": 1700}, "recall.cpu_budget", "limits.cpu_seconds"),
])
def test_rubric_refuses_bad_recall_settings(tmp_path: Path, change: dict, key: str, words: str) -> None:
    with pytest.raises(RubricError) as exc:
        load_rubric(rubric_with(tmp_path, **change))
    assert key in str(exc.value) and words in str(exc.value)


# ============================================================ numbers students see follow the rubric

load_private = load_script


OTHER = {"seq_len": 45, "threshold": 0.85, "cpu_time_limit": 77, "wall_time_limit": 400,
         "tries": 2, "cpu_budget": 150, "check_seq_len": 4, "n_classes": 6}


def test_release_ships_the_committed_template_for_the_default_rubric(tmp_path: Path) -> None:
    from grader.students import student
    student.release(tmp_path / "bundle")
    shipped = (tmp_path / "bundle" / "sheet11.ipynb").read_bytes()
    assert shipped == (ROOT / "student_template" / "sheet11.ipynb").read_bytes()


def test_template_release_and_self_check_follow_the_rubric(tmp_path: Path) -> None:
    from grader.students import student
    build_template = load_private("recall_build_template", ROOT / "student_template" / "build_template.py")
    sheet11_check = load_private("recall_sheet11_check", ROOT / "student_template" / "sheet11_check.py")

    path = rubric_with(tmp_path, **OTHER)
    nb = build_template.build_notebook(path)
    stub = next(c.source for c in nb.cells if "function-train_recall" in c.metadata.get("tags", []))
    intro = next(c.source for c in nb.cells if "intro-11.4" in c.metadata.get("tags", []))
    trycell = next(c.source for c in nb.cells if "try-train_recall" in c.metadata.get("tags", []))
    for text in (stub,):
        assert "seq_len=45" in text and "n_classes=6" in text and "85%" in text
        assert "77 CPU seconds" in text and "under 150 CPU seconds (at most\n    2 tries)" in text
        assert "seq_len=60" not in text and "120" not in text
        assert "relabels the classes" in text
    assert "77 CPU seconds" in intro
    assert "seq_len 4" in trycell and "seq_len=45" in trycell and ", 6, seed=" in trycell

    # The release: its README and the notebook it ships are built for this rubric.
    written = student.release(tmp_path / "bundle", path)
    readme = (tmp_path / "bundle" / "README.md").read_text(encoding="utf-8")
    assert any(p.name == "README.md" for p in written)
    shipped = json.loads((tmp_path / "bundle" / "sheet11.ipynb").read_text(encoding="utf-8"))
    shipped_stub = next("".join(c["source"]) for c in shipped["cells"]
                        if "function-train_recall" in c["metadata"].get("tags", []))
    assert shipped_stub == stub
    assert '"lstm", 45, 6, seed' in readme and "85%" in readme and "77 CPU seconds" in readme
    assert "under 150 CPU seconds (at most 2 tries)" in readme and "seq_len 4" in readme

    # The in-notebook self-check's message, from the public data the release writes.
    description, arrays = student.public_data(load_rubric(path))
    spec = description["recall"]
    assert (spec["seq_len"], spec["threshold"], spec["cpu_time_limit"], spec["tries"],
            spec["check_seq_len"]) == (45, 0.85, 77, 2, 4)

    class Model(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(6, 6)

        def forward(self, x):
            return self.lin(x[-1])

    result = sheet11_check._run_recall(lambda cell, sl, nc, seed: Model(), spec, arrays)
    assert result.status == "pass"
    for words in ("seq_len=45", "n_classes=6", "85%", "77 CPU s", "up to 2 seeds", "--full"):
        assert words in result.message, words


def test_grade_check_text_follows_the_rubric(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`grade check` (interface run) names the rubric's numbers and the --full switch."""
    rubric = load_rubric(rubric_with(tmp_path, **OTHER))
    monkeypatch.setattr(R, "_attempt", lambda *a, **k: R.Attempt("lstm", 0, "ok", 0.5, 1.0, 1.0))
    _, case = R.run_recall(None, rubric, defined=True, public=True, full=False)  # type: ignore[arg-type]
    assert case.passed
    for words in ("seq_len 45", "seq_len 4", "2 LSTM tries", "77 CPU s", "85%", "grade check --full"):
        assert words in case.message, words


# ================================================================================ the experiment

def fake_attempts(monkeypatch: pytest.MonkeyPatch, outcomes: dict[str, list[R.Attempt]]) -> list[tuple[str, int, int]]:
    calls: list[tuple[str, int, int]] = []

    def attempt(bridge, rubric, cell, seed, perm, x, y):
        calls.append((cell, seed, int(x.shape[0])))
        assert sorted(perm) == list(range(rubric.recall.n_classes))
        return outcomes[cell].pop(0)

    monkeypatch.setattr(R, "_attempt", attempt)
    return calls


def test_experiment_retries_until_the_first_success(monkeypatch: pytest.MonkeyPatch) -> None:
    rubric = load_rubric()
    spec = rubric.recall
    calls = fake_attempts(monkeypatch, {
        "lstm": [ok(0.6, seed=0), ok(0.97, seed=1), ok(1.0, seed=2)],
        "rnn": [R.Attempt("rnn", 0, "ok", 0.2, 5.0, 5.0)]})
    recall, case = R.run_recall(None, rubric, defined=True)  # type: ignore[arg-type]
    assert case.passed and case.points == spec.points
    assert [c[:2] for c in calls] == [("lstm", spec.train_seed), ("lstm", spec.train_seed + 1),
                                      ("rnn", spec.train_seed)]
    assert all(c[2] == spec.seq_len for c in calls)
    assert recall.lstm_accuracy == 0.97 and recall.rnn_accuracy == 0.2 and recall.tries == 2
    assert "60.0%" in case.message and "vanilla RNN: 20.0%" in case.message


def test_experiment_fails_after_all_tries(monkeypatch: pytest.MonkeyPatch) -> None:
    rubric = load_rubric()
    fake_attempts(monkeypatch, {"lstm": [ok(0.5, seed=s, cpu=1.0) for s in range(rubric.recall.tries)],
                                "rnn": [R.Attempt("rnn", 0, "ok", 0.2, 5.0, 5.0)]})
    recall, case = R.run_recall(None, rubric, defined=True)  # type: ignore[arg-type]
    assert not case.passed and case.points == 0.0 and recall.tries == rubric.recall.tries
    assert "relabel" not in case.message  # named only where the predictions show it is the cause


@pytest.mark.parametrize("cpu", [5.0, 13.1, 32.1, 100.0])
def test_the_cpu_budget_not_a_count_bounds_the_tries(monkeypatch: pytest.MonkeyPatch, cpu: float) -> None:
    """A fast, fragile trainer gets as many tries as its speed allows; a slow one as many as the
    budget holds; no try starts once the tries used the budget."""
    rubric = load_rubric()
    spec = rubric.recall
    calls = fake_attempts(monkeypatch, {"lstm": [ok(0.5, seed=s, cpu=cpu) for s in range(spec.tries)],
                                        "rnn": [R.Attempt("rnn", 0, "ok", 0.2, 5.0, 5.0)]})
    recall, case = R.run_recall(None, rubric, defined=True)  # type: ignore[arg-type]
    expected = R.tries_within(spec.cpu_budget, cpu, spec.tries)
    assert recall.tries == expected == len([c for c in calls if c[0] == "lstm"])
    assert (expected - 1) * cpu < spec.cpu_budget <= expected * cpu or expected == spec.tries
    if expected < spec.tries:
        assert f"the budget for them is {spec.cpu_budget:g} CPU s" in case.message
    # the student reads how sure the verdict is, in the rubric's numbers and their own tries
    assert (f"a trainer as fast as yours (about {cpu:.0f} CPU s per try) gets {expected}; a correct one that "
            f"reaches {spec.threshold:.0%} on half of its seeds fails {expected} tries with probability "
            f"{0.5 ** expected:.1e}") in case.message
    assert f"calibrated on fails it with probability at most {spec.false_fail_bound:.1e}" in case.message
    assert R.cpu_budget_spent([ok(0.1, cpu=spec.cpu_budget)], spec.cpu_budget)
    assert not R.cpu_budget_spent([ok(0.1, cpu=spec.cpu_budget - 1)], spec.cpu_budget)


def test_the_budget_keeps_every_calibrated_trainer_under_a_thousandth() -> None:
    """From the committed calibration logs (benchmarks/recall_calibration/, one line per run at the
    rubric's settings): each correct implementation, the fragile one included, at its p95 CPU s per
    try and the 95 % upper bound of its per-try failure rate, fails the rubric's CPU budget with
    probability <= 0.1 % (seeds failing independently)."""
    import math

    CORRECT = calibrate_script().CORRECT
    spec = load_rubric().recall
    logs = ROOT / "benchmarks" / "recall_calibration"
    bounds: list[float] = []
    for impl in CORRECT:
        runs = [json.loads(line) for line in (logs / f"{impl}.jsonl").read_text().splitlines() if line.strip()]
        lstm = [r for r in runs if r["cell"] == "lstm" and r["seq_len"] == spec.seq_len]
        assert len(lstm) >= 30, impl
        fails = sum(r["accuracy"] < spec.threshold for r in lstm)
        cpu = sorted(r["cpu_s"] for r in lstm)
        p95 = cpu[math.ceil(0.95 * len(cpu)) - 1]
        tries = R.tries_within(spec.cpu_budget, p95, spec.tries)
        bound = R.failure_upper_bound(fails, len(lstm)) ** tries
        assert bound <= 1e-3, (impl, fails, len(lstm), p95, tries)
        bounds.append(bound)
    # what students read (the rubric's false_fail_bound) is the largest of them, rounded up
    assert max(bounds) <= spec.false_fail_bound <= 1.05 * max(bounds), (bounds, spec.false_fail_bound)


def test_experiment_does_not_retry_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    rubric = load_rubric()
    calls = fake_attempts(monkeypatch, {
        "lstm": [R.Attempt("lstm", 0, "raised", None, 1.0, 1.0, "`train_recall('lstm', ...)` raised X")],
        "rnn": [R.Attempt("rnn", 0, "ok", 0.2, 5.0, 5.0)]})
    _, case = R.run_recall(None, rubric, defined=True)  # type: ignore[arg-type]
    assert not case.passed and [c[0] for c in calls] == ["lstm", "rnn"]
    assert case.message.startswith("`train_recall('lstm', ...)` raised X")


def test_tries_stop_when_the_wall_clock_safety_net_is_spent(monkeypatch: pytest.MonkeyPatch) -> None:
    """A submission that sleeps and then returns a bad model cannot hold the grader for
    tries x wall_time_limit: no try starts once the tries took the safety net's time."""
    rubric = load_rubric()
    wall = rubric.recall.wall_time_limit
    slow = [R.Attempt("lstm", s, "ok", 0.1, 1.0, wall * 0.6) for s in range(rubric.recall.tries)]
    calls = fake_attempts(monkeypatch, {"lstm": slow, "rnn": [R.Attempt("rnn", 0, "ok", 0.2, 5.0, 5.0)]})
    recall, case = R.run_recall(None, rubric, defined=True)  # type: ignore[arg-type]
    assert [c[0] for c in calls] == ["lstm", "lstm", "rnn"] and recall.tries == 2
    assert not case.passed and "no further try" in case.message
    assert R.wall_budget_spent([ok(0.1, wall=wall)], wall) and not R.wall_budget_spent([], wall)


def test_compare_rnn_off_skips_the_rnn_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    rubric = load_rubric()
    rubric = dataclasses.replace(rubric, recall=dataclasses.replace(rubric.recall, compare_rnn=False))
    calls = fake_attempts(monkeypatch, {"lstm": [ok(1.0)], "rnn": []})
    recall, case = R.run_recall(None, rubric, defined=True)  # type: ignore[arg-type]
    assert [c[0] for c in calls] == ["lstm"]
    assert case.passed and not recall.rnn_run and recall.rnn_accuracy is None
    assert "comparison not run" in case.message


def test_compare_rnn_off_shows_in_result_and_report(monkeypatch: pytest.MonkeyPatch) -> None:
    from grader.pages.report import recall_plot
    from grader.result import Recall
    plot = str(recall_plot(0.95, None, 0.9, rnn_run=False))
    assert "vanilla RNN" not in plot and "LSTM" in plot
    assert "vanilla RNN" in str(recall_plot(0.95, 0.3, 0.9))
    assert Recall(0.95, None, 3.0, None, 0.9, rnn_run=False).rnn_run is False


# ================================================================================ --full wiring

def test_grade_check_full_flag_reaches_the_grading_context(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from grader.cli.students import check_command
    from grader.students import student

    seen: list[bool] = []

    def fake_check(notebook, rubric_path, sandbox_mode, full=False):
        seen.append(full)
        return student.CheckReport("x.ipynb", ())

    monkeypatch.setattr(student, "check_notebook", fake_check)
    nb = tmp_path / "x.ipynb"
    nb.write_text("{}")
    runner = CliRunner()
    assert runner.invoke(check_command, [str(nb), "--full"]).exit_code == 0
    assert runner.invoke(check_command, [str(nb)]).exit_code == 0
    assert seen == [True, False]
    help_text = runner.invoke(check_command, ["--help"]).output
    assert "--full" in help_text and "recall experiment" in help_text


def test_check_notebook_passes_full_to_the_context(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from grader import grade
    from grader.result import SubmissionResult
    from grader.students import selfcheck

    contexts = []

    def fake_grade(path, ctx, name=None):
        contexts.append(ctx)
        return SubmissionResult(submission=path.name, sha256="", status="error", group=(), questions={},
                                flags=(), max_points=10.0, message="stop")

    monkeypatch.setattr(grade, "grade_submission", fake_grade)
    monkeypatch.setattr(selfcheck, "report_from_result", lambda *a, **k: None)
    nb = tmp_path / "sheet11.ipynb"
    nb.write_bytes((ROOT / "student_template" / "sheet11.ipynb").read_bytes())
    selfcheck.check_notebook(nb, sandbox_mode="none", full=True)
    selfcheck.check_notebook(nb, sandbox_mode="none")
    assert [c.full_recall for c in contexts] == [True, False]
    assert all(c.public for c in contexts)


def test_grading_context_runs_the_full_experiment_by_default() -> None:
    from grader.grade import Context
    from grader.kernel.sandbox import choose_sandbox
    assert Context.create(load_rubric(), choose_sandbox("none")).full_recall is True



# ================================================================================ slow: real kernels

def _recall_case(result):
    cases = [c for c in result.questions["11.4.d"].cases if c.function == "train_recall"]
    assert len(cases) == 1
    return cases[0]


@pytest.mark.slow
def test_first_token_cheat_earns_nothing(tmp_path: Path) -> None:
    """`train_recall` returning an untrained `10 * x[0]` model: 0 for it, nothing else lost."""
    from make_hostile_fixtures import fixture

    from grader.grade import Context, grade_submission
    from grader.kernel.sandbox import choose_sandbox

    src = fixture("recall_cheat")
    path = tmp_path / src.name
    path.write_bytes(src.read_bytes())
    result = grade_submission(path, Context.create(load_rubric(), choose_sandbox()))
    case = _recall_case(result)
    assert result.status == "graded"
    assert not case.passed and case.points == 0.0
    assert result.recall is not None and result.recall.lstm_accuracy == 0.0  # no class kept its label
    assert result.recall.rnn_accuracy == 0.0
    assert "relabels the classes" in case.message and "Traceback" not in case.message
    # Everything else of the fast solution still earns its points (tbptt_grads: 0.5 of 11.4.d).
    assert [result.questions[q].points for q in ("11.4.a", "11.4.b", "11.4.c", "11.4.d")] == [1.0, 1.0, 1.0, 0.5]


@pytest.mark.slow
def test_correct_implementation_with_its_own_random_stream_passes(tmp_path: Path) -> None:
    """Another student's correct train_recall (nn.LSTM, own batch seeds) passes at the rubric's
    seq_len and limits; the comparison run is off here to halve the test's cost."""
    from make_recall_fixtures import FIXTURES

    from grader.grade import Context, grade_submission
    from grader.kernel.sandbox import choose_sandbox

    rubric = load_rubric(rubric_with(tmp_path, compare_rnn=False))
    src = FIXTURES["own_stream"][0]
    path = tmp_path / src.name
    path.write_bytes(src.read_bytes())
    result = grade_submission(path, Context.create(rubric, choose_sandbox()))
    case = _recall_case(result)
    assert case.passed and case.points == rubric.recall.points, case.message
    data = result.to_json()["recall"]
    assert data["lstm_accuracy"] >= rubric.recall.threshold
    assert data["rnn_run"] is False and data["rnn_accuracy"] is None
    assert "comparison not run" in case.message
    # Timed by the kernel's CPU time (cgroup or /proc), not by the wall clock.
    assert data["seconds_are"] == "cpu" and 0 < data["lstm_seconds"] <= rubric.recall.cpu_time_limit


def test_calibration_summary_from_fake_runs() -> None:
    """benchmarks/calibrate.py's table on made-up runs: counts, rates, tries and the RNN column."""
    script = calibrate_script()
    markdown, summarise = script.markdown, script.summarise

    runs = [{"impl": "reference", "cell": "lstm", "seed": s, "accuracy": 0.5 if s < 3 else 1.0,
             "cpu_s": 10.0 + s, "wall_s": 20.0 + s} for s in range(30)]
    runs += [{"impl": "reference", "cell": "rnn", "seed": s, "accuracy": 0.95 if s == 0 else 0.2,
              "cpu_s": 5.0, "wall_s": 6.0} for s in range(30)]
    table = markdown(runs, 0.9)
    row = next(line for line in table.splitlines() if line.startswith("| reference"))
    assert "| 3/30 |" in row and "0.10 (0.24)" in row and "| 2 / 4 |" in row and "| 1/30 |" in row
    assert "| 24.5 / 38.0 |" in row  # CPU median of 10..39 and the nearest-rank p95 (29th of 30)
    assert "3/30" in summarise(runs, 0.9)


def test_recall_json_round_trip_keeps_the_verdicts_facts() -> None:
    from grader.result import Recall
    r = Recall(0.95, None, 21.0, None, 0.9, "", tries=3, rnn_run=False, cpu_measured=True)
    data = r.to_json()
    assert data["tries"] == 3 and data["rnn_run"] is False and data["seconds_are"] == "cpu"
    assert Recall.from_json(data) == r
    old = Recall.from_json({"lstm_accuracy": 1.0, "rnn_accuracy": 0.2, "threshold": 0.9})
    assert (old.tries, old.rnn_run, old.cpu_measured) == (1, True, False)
