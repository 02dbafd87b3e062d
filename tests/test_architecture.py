"""The package's shape: no import cycle between the project's modules, counted with the imports
inside functions too (a function-local import hides a cycle from Python, not from a reader)."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("grader", "reference")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph() -> dict[str, set[str]]:
    """module -> the project modules it imports (anywhere in its body)."""
    files = {_module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [base] + [f"{base}.{a.name}" for a in node.names]
            for target in targets:
                # the longest project module the import names
                while target and target not in files:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_import_graph_has_no_cycle() -> None:
    found = cycles(import_graph())
    assert not found, "import cycles (function-local imports included): " + "; ".join(
        " <-> ".join(c) for c in found)


def test_the_cycle_finder_finds_a_planted_cycle() -> None:
    # The check above must be able to fail: a three-module ring and a self-contained pair.
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [["a", "b", "c"]]


def test_the_graph_sees_function_local_imports() -> None:
    graph = import_graph()
    assert graph["grader.cli.main"], "the CLI imports project modules; the graph must see them"


# The wings of grader/, lowest first. A module may import the top-level modules of its own layer or
# below, its own wing, and the wings of lower layers; never a wing of its own layer or above.
# kernel/ never imports pages/, pages/ never imports kernel/ (both sit on layer 1 and 3 with no
# path between them), and only cli/ sees every wing.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("grader", "grader.errors", "grader.resources", "grader.cleantext", "grader.outputs", "grader.rubric",
     "grader.result"),
    ("grader.submission", "grader.written", "grader.kernel"),
    ("grader.checks",),
    ("grader.pages",),
    ("grader.grade",),
    ("grader.folder",),
    ("grader.tutors",),
    ("grader.batch", "grader.students"),
    ("grader.cli",),
)


def place(module: str) -> tuple[int, str]:
    """(layer, wing) of a grader module: its wing package, or itself at the top level."""
    parts = module.split(".")
    for depth in (2, 1):
        key = ".".join(parts[:depth])
        for layer, members in enumerate(LAYERS):
            if key in members:
                return layer, key
    raise AssertionError(f"{module} has no layer: add its wing to LAYERS in tests/test_architecture.py")


def layer_breaks(graph: dict[str, set[str]]) -> list[str]:
    out = []
    for module, targets in sorted(graph.items()):
        if not module.startswith("grader"):
            continue
        mine = place(module)
        for target in sorted(t for t in targets if t.startswith("grader")):
            theirs = place(target)
            if theirs[0] > mine[0] or (theirs[0] == mine[0] > 0 and theirs[1] != mine[1]):
                out.append(f"{module} -> {target}")
    return out


def test_wings_import_only_downwards() -> None:
    breaks = layer_breaks(import_graph())
    assert not breaks, "imports against the layers of tests/test_architecture.py: " + "; ".join(breaks)


def test_the_layer_rule_finds_a_planted_break() -> None:
    # The rule must be able to fail: the kernel reaching up into the pages, and a sibling wing.
    graph = {"grader.kernel.execute": {"grader.pages.report", "grader.rubric"},
             "grader.written.rules": {"grader.kernel.sandbox"},
             "grader.cli.main": {"grader.batch.run"}}
    assert layer_breaks(graph) == ["grader.kernel.execute -> grader.pages.report",
                                   "grader.written.rules -> grader.kernel.sandbox"]


def test_the_top_level_stays_small() -> None:
    top = sorted(p.name for p in (ROOT / "grader").glob("*.py"))
    assert len(top) <= 12, f"grader/ holds {len(top)} modules at the top level; put new ones in a wing: {top}"
