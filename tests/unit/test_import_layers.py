"""Imports point one way only: a module imports only from layers to its left (DESIGN.md §1)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "src" / "recfunnel"
LAYERS = [
    {"errors"},
    {"schema"},
    {"data", "metrics", "datasets", "testing"},
    {"nn", "index"},  # index sits below models: retrieval models answer top-k queries with it
    {"models", "tasks"},
    {"train"},
    {"api", "retriever", "config", "artifact", "gbdt", "ftrl", "lambdarank"},
    # the funnel composes the estimators (Ranker, Retriever) and loads their artifacts
    {"funnel"},
    {"demo"},
    {"serving"},
    {"cli"},
]
RANK = {name: i for i, group in enumerate(LAYERS) for name in group}


def _top(module: Path) -> str:
    rel = module.relative_to(ROOT).parts
    return rel[0].removesuffix(".py")


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("recfunnel."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("recfunnel.")}
    return found


def test_every_module_has_a_layer():
    tops = {_top(p) for p in ROOT.rglob("*.py") if p.name != "__init__.py" or p.parent != ROOT}
    assert tops <= set(RANK), f"modules without a layer: {tops - set(RANK)}"


def test_imports_point_left():
    wrong = []
    for path in ROOT.rglob("*.py"):
        if path.parent == ROOT and path.name == "__init__.py":
            continue
        mine = RANK[_top(path)]
        for target in _imports(path):
            if RANK[target] > mine:
                wrong.append(f"{path.relative_to(ROOT)} imports recfunnel.{target}")
    assert not wrong, "imports against the layer order:\n" + "\n".join(wrong)


def test_schema_does_not_import_torch():
    for path in (ROOT / "schema").rglob("*.py"):
        assert "torch" not in {a.split(".")[0] for a in _raw_imports(path)}, path


def _raw_imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names
