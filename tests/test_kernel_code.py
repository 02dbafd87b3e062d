"""The grader's code that runs in a kernel is real, checked modules (grader/kernel/kernelcode.py):
no string literal of grader/ holds such code, and the kernel-side modules (``*_kernel.py``) import
nothing of the project (the sandbox hides it from the kernel)."""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: What a kernel-side module may import besides the standard library.
KERNEL_IMPORTS = {"numpy", "torch", "IPython", "ipykernel"}


def _text_of(node: ast.AST) -> str | None:
    """A string literal's text; an f-string's with each placeholder as a name."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "x" for v in node.values)
    return None


def _is_code(text: str) -> bool:
    """Several lines of Python that define or import something (prose does not compile)."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if len(lines) < 3 or not any(w in text for w in ("def ", "class ", "import ")):
        return False
    try:
        compile(text, "<literal>", "exec", dont_inherit=True)
    except (SyntaxError, ValueError):
        try:  # a template whose %-placeholders stand for numbers
            compile(text.replace("%d", "0").replace("%r", "0").replace("%s", "0"), "<literal>", "exec",
                    dont_inherit=True)
        except (SyntaxError, ValueError):
            return False
    return True


def code_literals(source: str) -> list[int]:
    """The lines where a string literal of ``source`` holds Python code."""
    return sorted(node.lineno for node in ast.walk(ast.parse(source))
                  if (text := _text_of(node)) is not None and _is_code(text))


def test_no_string_literal_of_the_grader_holds_kernel_code() -> None:
    found = {str(p.relative_to(ROOT)): lines for p in sorted((ROOT / "grader").rglob("*.py"))
             if (lines := code_literals(p.read_text(encoding="utf-8")))}
    assert found == {}, ("Python code in string literals (move it into a *_kernel.py module, sent with "
                         f"grader/kernel/kernelcode.py): {found}")


@pytest.mark.parametrize("planted", [
    # as the bridge's kernel code was
    'CODE = r"""\ndef __sheet11_call(folder):\n    import json as _json\n    return _json.load(folder)\n"""\n',
    # implicit concatenation, as the launch guard was
    'GUARD = (\n    "import ctypes, os, sys\\n"\n    "if os.getppid() != 1:\\n"\n    "    sys.exit(98)\\n"\n)\n',
    # a %-template, as the output cap was
    'CAP = """\ndef cap(limit):\n    import sys\n    return limit\ncap(%d)\n""" % 5\n',
    # an f-string
    'def f(n):\n    return f"""\nimport os\ndef g():\n    return {n}\n"""\n',
])
def test_the_scan_finds_planted_kernel_code(planted: str) -> None:
    assert code_literals(planted) != []


def test_the_scan_leaves_prose_and_one_liners_alone() -> None:
    source = ('"""A module docstring that says what to import and where def lines go.\n\nMore prose.\n"""\n'
              'PREIMPORT = "import numpy as _np; del _np"\n'
              'SCRIPT = \'while [ "$1" != "--" ]; do echo $$ > "$1"; shift; done\'\n')
    assert code_literals(source) == []


def kernel_side_modules() -> list[Path]:
    return sorted((ROOT / "grader").rglob("*_kernel.py"))


def test_kernel_side_modules_import_only_what_the_kernel_has() -> None:
    modules = kernel_side_modules()
    assert {p.name for p in modules} >= {"bridge_kernel.py", "recall_kernel.py", "recall_train_kernel.py",
                                         "identity_kernel.py", "output_cap_kernel.py", "launch_guard_kernel.py"}
    allowed = set(sys.stdlib_module_names) | KERNEL_IMPORTS
    wrong = {}
    for path in modules:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or "."] if isinstance(node, ast.ImportFrom) and not node.level
                     else ["." * node.level] if isinstance(node, ast.ImportFrom) else [])
            bad = [n for n in names if n.split(".")[0] not in allowed]
            if bad:
                wrong.setdefault(path.name, []).extend(bad)
    assert wrong == {}


def test_every_kernel_side_module_runs_stand_alone() -> None:
    """Executed in a fresh namespace, as the kernel does, each defines its functions without the grader."""
    from grader.kernel.kernelcode import kernel_source
    for path in kernel_side_modules():
        namespace: dict = {"__name__": "sheet11_test"}
        exec(kernel_source(".".join(path.parent.relative_to(ROOT).parts), path.name), namespace)
        assert any(callable(v) and getattr(v, "__module__", "") == "sheet11_test" for v in namespace.values())


def test_a_request_sends_the_module_text_and_literal_arguments_only(tmp_path: Path) -> None:
    from grader.kernel.kernelcode import fresh_call, kernel_source
    request = fresh_call("grader.checks", "bridge_kernel.py", "call", str(tmp_path), "f(**__args)", True, 5,
                         ["1-x"], notebook=True)
    tree = ast.parse(request, mode="eval")
    sent = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    assert kernel_source("grader.checks", "bridge_kernel.py") in sent
    # No path of the grader's files reaches the kernel: only the module's text and the call's folder.
    assert not any(str(ROOT) in s for s in sent if s != str(tmp_path))
    with pytest.raises(TypeError):
        fresh_call("grader.checks", "bridge_kernel.py", "call", object())  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        fresh_call("grader", "resources.py", "kernel_module")
