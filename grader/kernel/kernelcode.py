"""The grader's own code that runs in a student's kernel: real modules, sent as their source.

Code the grader runs in a kernel (the bridge's call, the output cap, the recall harness, the
identity report) lives in kernel-side modules named ``*_kernel.py`` beside the grader code that
uses them. They are ordinary modules of the package, checked by ruff and mypy like the rest,
but stand-alone: they import only the standard library, numpy, torch and (for the output cap)
IPython's own kernel, never ``grader``, since the kernel cannot import the grader (the sandbox
hides it). tests/test_kernel_code.py holds both rules: no kernel code in a string literal of
``grader/``, no import of the project from a kernel-side module.

The grader reads such a module's source (:func:`grader.resources.kernel_module`) and sends the
*text*, never a path: the kernel learns nothing of where the grader's files are. :func:`fresh_call`
writes the one request that executes that text in a fresh namespace (so nothing a notebook bound
can stand in for it) and calls one of its functions with plain literal arguments, optionally
preceded by the notebook's globals. The request is defined anew each time; a notebook that
changed builtins changes only what its own kernel reports, as before.
"""
from __future__ import annotations

import functools

from grader.resources import kernel_module

#: What may be passed to a kernel-side function: values whose ``repr`` is a Python literal.
Literal = str | int | bool | None | list[str]


@functools.cache
def kernel_source(package: str, name: str) -> str:
    """The source of kernel-side module ``name`` of ``package`` (read once per process)."""
    if not name.endswith("_kernel.py"):
        raise ValueError(f"{package}/{name} is not a kernel-side module (*_kernel.py)")
    return kernel_module(package, name)


def fresh_call(package: str, name: str, function: str, *args: Literal, notebook: bool = False) -> str:
    """A request that runs module ``name``'s source in a fresh namespace and calls ``function``.

    With ``notebook``, the notebook's globals (the kernel's user namespace, where the request
    runs) come first in the call. The request is one expression: nothing is bound in the
    notebook's namespace, and in silent mode nothing is displayed.
    """
    for arg in args:
        _check_literal(arg)
    source = kernel_source(package, name)
    module = "sheet11_" + name.removesuffix(".py")
    passed = ", ".join((["globals()"] if notebook else []) + [repr(a) for a in args])
    return (f"(lambda __sheet11_ns: (exec({source!r}, __sheet11_ns), __sheet11_ns[{function!r}]({passed})))"
            f"({{'__name__': {module!r}}})")


def _check_literal(value: object) -> None:
    """Only values whose ``repr`` reads back as the same value go into a request."""
    if isinstance(value, list):
        if not all(isinstance(v, str) for v in value):
            raise TypeError("a list sent to the kernel holds only strings")
        return
    if value is not None and not isinstance(value, (str, int, bool)):
        raise TypeError(f"cannot send {type(value).__name__} to the kernel as a literal")
