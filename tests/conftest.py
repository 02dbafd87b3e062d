from __future__ import annotations

import os

# One torch/OpenMP thread everywhere: on a shared 2-core machine two threads are much slower.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)

from hypothesis import settings  # noqa: E402

# CI must not depend on luck: the same examples every run (shrinking still works).
settings.register_profile("deterministic", derandomize=True, print_blob=True)
settings.load_profile("deterministic")


import pytest  # noqa: E402


@pytest.fixture(autouse=True, scope="session")
def _course_secret(tmp_path_factory: pytest.TempPathFactory):
    """Hidden cases are drawn under a course secret (grader/secret.py): tests use their own, never
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

    from grader.batch import run_batch
    folder = tmp_path_factory.mktemp("batch_of_three")
    inputs = batch_inputs(folder)
    one = run_batch(inputs, folder / "one", jobs=1)
    two = run_batch(inputs, folder / "two", jobs=2)
    return BatchOfThree(inputs, one, folder / "one", two, folder / "two")
