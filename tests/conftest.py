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
