from __future__ import annotations

import os

# One torch/OpenMP thread everywhere: on a shared 2-core machine two threads are much slower.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import torch

torch.set_num_threads(1)

from hypothesis import settings  # noqa: E402

# CI must not depend on luck: the same examples every run (shrinking still works).
settings.register_profile("deterministic", derandomize=True, print_blob=True)
settings.load_profile("deterministic")


import pytest  # noqa: E402


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-goldens", action="store_true", default=False,
                     help="rewrite the golden files (tests/files/golden/) from today's output instead of "
                          "comparing with them; review the diff afterwards")


@pytest.fixture(scope="session")
def update_goldens(request: pytest.FixtureRequest) -> bool:
    """Whether golden files are rewritten (``pytest --update-goldens``): the one way to refresh them."""
    return bool(request.config.getoption("--update-goldens"))


@pytest.fixture(autouse=True, scope="session")
def _course_secret(tmp_path_factory: pytest.TempPathFactory):
    """Hidden cases are drawn under a course secret (grader/checks/secret.py): tests use their own, never
    the tutor's ~/.config/sheet11/secret (and never create one there)."""
    path = tmp_path_factory.mktemp("secret") / "secret"
    path.write_text("test-secret-" + "0" * 52 + "\n")
    path.chmod(0o600)
    old = os.environ.get("SHEET11_SECRET_FILE")
    os.environ["SHEET11_SECRET_FILE"] = str(path)
    yield path
    if old is None:
        os.environ.pop("SHEET11_SECRET_FILE", None)
    else:
        os.environ["SHEET11_SECRET_FILE"] = old


@pytest.fixture(scope="session")
def batch_of_three(tmp_path_factory: pytest.TempPathFactory):
    """Graded once per test process: the tests that use it carry
    ``@pytest.mark.xdist_group("batch_of_three")`` so that pytest-xdist (--dist loadgroup) runs
    them in the same process. A test may resume the runs but must leave their results as they are."""
    from builders import BatchOfThree, batch_inputs

    from grader.batch.run import BatchSettings, run_batch
    folder = tmp_path_factory.mktemp("batch_of_three")
    inputs = batch_inputs(folder)
    one = run_batch(inputs, BatchSettings.make(folder / "one", jobs=1))
    two = run_batch(inputs, BatchSettings.make(folder / "two", jobs=2))
    return BatchOfThree(inputs, one, folder / "one", two, folder / "two")


# The longest tests, longest first (`pytest -n 2 -m slow --durations=60` on a busy 2-core machine,
# 2026-11-30; each over a minute). With `-n 2` pytest-xdist hands tests out in collection order, so these start at
# once and the short tests fill the other process meanwhile, instead of two long tests meeting on
# one process at the end while the other one idles.
LONGEST = (
    "tests/test_packaging.py::test_a_wheel_install_grades_from_an_unrelated_folder",  # 355 s
    "tests/test_interrupt.py::test_ctrl_c_at_twenty_random_moments",                  # 325 s
    "tests/test_hostile.py::test_hostile_submissions_lose_nothing_for_the_good_ones",  # 227 s
    "tests/test_reference_recall.py::test_lstm_learns_and_rnn_does_not",               # 185 s
    "tests/test_hostile.py::test_print_flood",                                          # 150 s
    "tests/test_probes.py::test_at_least_ten_of_twelve_single_bug_reports_name_the_bug",  # 150 s
    "tests/test_kernelpool.py::test_grading_with_kernels_started_ahead_gives_the_same_results_as_without",
    "tests/test_hostile.py::test_metadata_counts_against_the_output_cap",
    "tests/test_interrupt.py::test_sigterm_at_random_moments",
    "tests/test_scores.py::test_the_tutor_loop_grade_review_score_import",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The longest tests first, then the other slow ones, then the fast ones (otherwise in the
    order collected: the sort is stable)."""
    def rank(item: pytest.Item) -> int:
        for i, prefix in enumerate(LONGEST):
            if item.nodeid.startswith(prefix):
                return i
        return len(LONGEST) + (item.get_closest_marker("slow") is None)
    items.sort(key=rank)
