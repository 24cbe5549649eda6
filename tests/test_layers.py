"""The package's house: imports run one way, down the layers, with no cycles."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[1] / "src" / "hybridland"

# Bottom to top. A module may import its own layer's modules and any lower layer.
LAYERS: list[set[str]] = [
    {"contract", "io", "logs", "jaxcache", "imports"},
    {"model"},
    {"data"},
    {"training"},
    {"analysis"},
    {"studies"},
    {"config", "cli"},
]
MAX_LINES = 700


def _layer(module: str) -> int:
    """Layer index of ``hybridland.<top>...`` by its first component under the package."""
    top = module.split(".")[1] if "." in module else ""
    for index, names in enumerate(LAYERS):
        if top in names:
            return index
    raise AssertionError(f"{module} is in no layer; add it to LAYERS in tests/test_layers.py")


def _modules() -> dict[str, Path]:
    found = {}
    for path in SOURCE.rglob("*.py"):
        parts = path.relative_to(SOURCE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _imports(path: Path) -> set[str]:
    """hybridland modules imported anywhere in the file (lazy imports count too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return {n for n in names if n.startswith("hybridland.")}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {m: {i for i in _imports(p) if i in modules and i != m} for m, p in modules.items()}


def test_no_import_runs_up_a_layer():
    upward = [
        f"{module} -> {target}"
        for module, targets in _graph().items()
        if module != "hybridland"
        for target in targets
        if _layer(target) > _layer(module)
    ]
    assert upward == []


def test_no_import_cycles():
    graph = _graph()
    state: dict[str, int] = {}  # 1 visiting, 2 done
    cycles: list[str] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                cycles.append(" -> ".join([*path[path.index(target) :], target]))
            elif target not in state:
                visit(target, [*path, target])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_the_layer_test_sees_an_upward_import(tmp_path):
    """The check above can fail: a model module importing the analyses is caught."""
    assert _layer("hybridland.analysis.pca") > _layer("hybridland.model.dalec")
    with pytest.raises(AssertionError, match="is in no layer"):
        _layer("hybridland.nowhere.module")


@pytest.mark.parametrize("module", sorted(_modules()))
def test_no_module_is_a_warehouse(module):
    lines = len(_modules()[module].read_text().splitlines())
    assert lines <= MAX_LINES, f"{module} has {lines} lines (at most {MAX_LINES})"


def test_importing_the_config_checker_does_not_import_jax():
    code = "import sys, hybridland.config; print('jax' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
