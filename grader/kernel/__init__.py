"""The confined kernel a notebook runs in: the sandbox, the run, kernels started ahead."""
