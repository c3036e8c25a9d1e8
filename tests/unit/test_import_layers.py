"""The import graph of src/: no cycles, and every import points left in DESIGN.md's layer order (§1)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "src"
PACKAGE = ROOT / "recfunnel"
# DESIGN.md §1: errors -> schema -> data, metrics, datasets -> nn, index -> models, tasks -> train ->
# estimators -> funnel -> config -> serving -> cli. Within a tier the order below is the one the
# code follows; `testing` (toy data and training checks for tests) sits on train, `demo` on the funnel,
# and `__main__` (`python -m recfunnel`) calls the command line.
ORDER = ["errors", "schema", "data", "metrics", "datasets", "nn", "index", "tasks", "models", "train", "testing",
         "estimators", "funnel", "config", "demo", "serving", "cli", "__main__"]
RANK = {name: i for i, name in enumerate(ORDER)}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _layer(module: str) -> str:
    return module.split(".")[1] if "." in module else ""


def _type_checking_only(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and getattr(node.test, "id", getattr(node.test, "attr", None)) == "TYPE_CHECKING"


def _walk(tree: ast.AST):
    """Every node except those under ``if TYPE_CHECKING:`` (annotations only; they never run)."""
    for child in ast.iter_child_nodes(tree):
        if _type_checking_only(child):
            continue
        yield child
        yield from _walk(child)


def _targets(module: str, path: Path) -> set[str]:
    """The recfunnel modules ``module`` imports, at the top or inside functions."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in _walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            for alias in node.names:
                name = f"{base}.{alias.name}"
                found.add(name if name in MODULES else base)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return {name for name in found if name in MODULES and name != module}


GRAPH = {module: _targets(module, path) for module, path in MODULES.items()}


def _cycles() -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(GRAPH[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(GRAPH):
        if node not in index:
            visit(node)
    return found


def test_the_graph_sees_imports_inside_functions():
    # regression: the old test read top-level names only and missed the cycles lazy imports made
    assert "recfunnel.estimators.loading" in GRAPH["recfunnel.funnel.storage"]
    assert "recfunnel.cli.commands" in GRAPH["recfunnel.cli.main"]  # imported inside main()


def test_no_import_cycles():
    assert not _cycles(), "import cycles:\n" + "\n".join(" <-> ".join(c) for c in _cycles())


def test_every_module_has_a_layer():
    layers = {_layer(m) for m in MODULES if m != "recfunnel"}
    assert layers <= set(RANK), f"modules without a layer: {sorted(layers - set(RANK))}"


def test_imports_point_left():
    wrong = [f"{module} imports {target}"
             for module, targets in GRAPH.items() if module != "recfunnel"
             for target in targets if target != "recfunnel" and RANK[_layer(target)] > RANK[_layer(module)]]
    assert not wrong, "imports against DESIGN.md's layer order:\n" + "\n".join(sorted(wrong))


def test_serving_imports_no_training_code():
    wrong = [f"{m} imports {t}" for m, targets in GRAPH.items() if _layer(m) == "serving"
             for t in targets if _layer(t) == "train"]
    assert not wrong, "\n".join(wrong)


def test_schema_does_not_import_torch():
    for path in (PACKAGE / "schema").rglob("*.py"):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module.split(".")[0])
        assert "torch" not in names, path
