#!/usr/bin/env python
"""The package's import graph at the scale of its parts (a top-level module or package of ``diffrestore``,
and ``samplers``): the arrows between parts with their import counts, parts that import each other, and
what the layer rules of CONTRIBUTING.md forbid (the product, training included, importing evaluation's
parts: its metrics, NIQE, dlib, sweeps; a private name taken from another module). Reads the code with ``ast``; runs nothing.

    python research/import_graph.py [ROOT]            # ROOT: a checkout (default: this one)
    git worktree add /tmp/before 2678b96 && python research/import_graph.py /tmp/before   # before issue 34
"""

from __future__ import annotations

import argparse
import ast
import collections
from pathlib import Path

EVALUATION_PARTS = ("evaluation", "evaluate", "metrics", "niqe", "dlib_faces", "sweep", "ablation", "testset")


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def part(module: str) -> str:
    names = module.split(".")
    return "samplers" if names[0] == "samplers" else (names[1] if len(names) > 1 else "__init__")


def imports(root: Path, path: Path) -> list[tuple[str, list[str]]]:
    """(module, names taken) of every import of a ``diffrestore`` or ``samplers`` module in ``path``."""
    source = module_name(root, path)
    package = source.split(".") if path.name == "__init__.py" else source.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            names = [alias.name for alias in node.names]
            if module == "diffrestore":  # from diffrestore import x: x is a submodule or a name of the face
                found += [(f"diffrestore.{n}" if (root / "diffrestore" / n).exists()
                           or (root / "diffrestore" / f"{n}.py").exists() else module, [n]) for n in names]
                continue
            found.append((module, names))
        elif isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
    return [(m, n) for m, n in found if m.split(".")[0] in ("diffrestore", "samplers")]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("root", nargs="?", type=Path, default=Path(__file__).resolve().parents[1])
    root = p.parse_args().root.resolve()
    files = sorted(f for top in ("diffrestore", "samplers") for f in (root / top).rglob("*.py"))
    arrows: collections.Counter = collections.Counter()
    product_to_evaluation, private = [], []
    for path in files:
        source = module_name(root, path)
        for module, names in imports(root, path):
            a, b = part(source), part(module)
            if a != b:
                arrows[(a, b)] += 1
            if a not in EVALUATION_PARTS and b in EVALUATION_PARTS:
                product_to_evaluation.append(f"{source} -> {module} {names}")
            taken = [n for n in names if n.startswith("_") and not n.startswith("__")]
            if taken:
                private.append(f"{source} takes {taken} from {module}")
    parts = sorted({x for arrow in arrows for x in arrow})
    print(f"parts: {len(parts)}: {', '.join(parts)}")
    print(f"arrows between parts: {len(arrows)} ({sum(arrows.values())} imports)")
    mutual = sorted({tuple(sorted(arrow)) for arrow in arrows if arrow[::-1] in arrows})
    print(f"parts that import each other: {mutual or 'none'}")
    print(f"the product importing evaluation: {product_to_evaluation or 'none'}")
    print(f"private names taken from another module: {private or 'none'}")
    for (a, b), count in sorted(arrows.items()):
        print(f"  {a} -> {b} ({count})")


if __name__ == "__main__":
    main()
