"""grader/resources.py is the one place that finds the grader's files: no other module of grader/
builds a path from ``__file__`` or from where a module was imported."""
from __future__ import annotations

import ast
from pathlib import Path

from grader import resources

ROOT = Path(__file__).resolve().parent.parent


def path_builders(source: str) -> list[int]:
    """Lines that read ``__file__``, a module's ``__path__``/``__spec__`` or ``find_spec``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Name) and node.id in ("__file__", "__path__", "__spec__"):
            found.append(node.lineno)
        elif isinstance(node, ast.Attribute) and node.attr in ("__file__", "__path__", "__spec__", "find_spec",
                                                               "getsourcefile", "getfile"):
            found.append(node.lineno)
    return found


def test_only_resources_finds_the_graders_files() -> None:
    found = {str(p.relative_to(ROOT)): lines for p in sorted((ROOT / "grader").rglob("*.py"))
             if p.name != "resources.py" and (lines := path_builders(p.read_text(encoding="utf-8")))}
    assert found == {}, f"paths built outside grader/resources.py: {found}"


def test_the_scan_finds_a_planted_path_builder() -> None:
    assert path_builders("from pathlib import Path\nHERE = Path(__file__).parent\n") == [2]
    assert path_builders("import importlib.util\nimportlib.util.find_spec('grader').origin\n") == [2]
    assert path_builders("import grader\nroot = grader.__path__[0]\n") == [2]


def test_the_package_folders_are_the_imported_packages() -> None:
    import grader
    import reference
    assert resources.package_folders() == [Path(grader.__file__).resolve().parent,
                                           Path(reference.__file__).resolve().parent]
