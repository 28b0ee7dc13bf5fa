"""The package's layers (CONTRIBUTING.md): a module imports only its own layer and those below it;
evaluation may import the product, never the reverse; training never imports evaluation; no private
(underscore) name crosses a module; the package imports neither ``samplers`` nor ``research``."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "diffrestore"
LAYERS = [  # lowest first
    ("base", {"config", "io", "geometry", "measures"}),
    ("models", {"models", "perception"}),
    ("sampling", {"sampling"}),
    ("pipeline and data", {"pipeline", "data"}),
    ("product face", {"__init__"}),
    ("training, the restore CLI and deployment", {"training", "cli", "deploy"}),
    ("evaluation", {"evaluation"}),
]


def layer_of(module: str) -> int:
    part = module.split(".")[1] if "." in module else "__init__"
    for rank, (_, parts) in enumerate(LAYERS):
        if part in parts:
            return rank
    raise AssertionError(f"diffrestore.{part} belongs to no layer: add it to LAYERS and CONTRIBUTING.md")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[tuple[str, list[str], int]]:
    """(imported module, names taken from it, line) of every import in ``path``, relative ones resolved."""
    tree = ast.parse(path.read_text())
    package = module_name(path).split(".") if path.name == "__init__.py" else module_name(path).split(".")[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, [], node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            found.append((module, [alias.name for alias in node.names], node.lineno))
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))


def violations(source: str, found: list[tuple[str, list[str], int]]) -> list[str]:
    """What breaks the rules among the imports ``found`` of the module ``source``."""
    broken = []
    for module, names, line in found:
        if module.split(".")[0] in ("samplers", "research"):
            broken.append(f"{line}: imports {module}")
        if module.split(".")[0] != "diffrestore":
            continue
        targets = [module] if module != "diffrestore" else [
            f"diffrestore.{n}" if (PACKAGE / n).is_dir() or (PACKAGE / f"{n}.py").is_file() else module for n in names]
        broken += [f"{line}: {source} ({LAYERS[layer_of(source)][0]}) imports {target} ({LAYERS[layer_of(target)][0]})"
                   for target in targets if layer_of(target) > layer_of(source)]
        private = [n for n in names if n.startswith("_") and not n.startswith("__")]
        if private:
            broken.append(f"{line}: takes the private {private} from {module}")
    return broken


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE.parent)))
def test_imports_follow_the_layers(path):
    assert violations(module_name(path), imports(path)) == [], path


def test_no_private_attribute_of_another_module_is_used():
    for path in MODULES:
        tree = ast.parse(path.read_text())
        aliases = {alias.asname or alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                   for alias in node.names}
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                    and node.attr.startswith("_") and not node.attr.startswith("__")):
                raise AssertionError(f"{path}:{node.lineno} uses {node.value.id}.{node.attr}")


def test_the_layer_check_sees_each_kind_of_violation():
    assert violations("diffrestore.training.losses", [("diffrestore.evaluation.metrics", ["psnr"], 3)])
    assert violations("diffrestore.pipeline.options", [("diffrestore.training", ["Trainer"], 3)])
    assert violations("diffrestore.models.codec", [("diffrestore.config", ["_read"], 3)])
    assert violations("diffrestore.pipeline.restore", [("samplers", ["SAMPLERS"], 3)])
    assert not violations("diffrestore.evaluation.scoring", [("diffrestore.pipeline", ["DiffRestorePipeline"], 3)])
