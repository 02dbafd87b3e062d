from __future__ import annotations

import os

# One torch/OpenMP thread everywhere: on a shared 2-core machine two threads are much slower.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)
