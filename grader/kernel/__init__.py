"""The confined kernel a notebook runs in: the sandbox, the run, kernels started ahead, and the
grader's own code sent into it (the ``*_kernel.py`` modules, as source: kernelcode.py)."""
