"""The automatic checks: inputs, calls into the kernel, comparison, mistakes, probes, rules, recall, similarity."""
