"""The hybridland modules a file imports, directly or through each other.

The workflow lists them among a rule's inputs, so editing a module reruns exactly the
rules whose code reads it. Parsing (not importing) keeps this free of JAX.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

PACKAGE = "hybridland"


def _module_file(module: str, source_root: Path) -> Path | None:
    """The file of a dotted module name under ``source_root``, or None if it is not one."""
    base = source_root / Path(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _direct_imports(path: Path, source_root: Path) -> set[str]:
    """Dotted hybridland modules that the file at ``path`` imports (``from a import b``
    counts ``a.b`` when that is a module, else ``a``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == PACKAGE)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] != PACKAGE:
                continue
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if _module_file(sub, source_root) else node.module)
    return found


@cache
def _closure(path: Path, source_root: Path) -> frozenset[Path]:
    seen: set[Path] = set()
    todo = [path]
    while todo:
        for module in _direct_imports(todo.pop(), source_root):
            parts = module.split(".")
            # a module's parent packages run too (their __init__)
            for depth in range(1, len(parts) + 1):
                file = _module_file(".".join(parts[:depth]), source_root)
                if file is not None and file not in seen:
                    seen.add(file)
                    todo.append(file)
    return frozenset(seen)


def imported_modules(script: str | Path, source_root: str | Path = "src") -> list[str]:
    """Files of every hybridland module that ``script`` imports, directly or not, found
    under ``source_root`` (the folder holding ``hybridland/``) and named as
    ``source_root/hybridland/...``, sorted."""
    root = Path(source_root).resolve()
    files = _closure(Path(script).resolve(), root)
    return sorted(str(Path(source_root) / p.relative_to(root)) for p in files)
