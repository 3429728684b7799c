"""The package's layering: a module may import modules of its own layer or below, never above.

Imports inside functions count too; those under `if TYPE_CHECKING:` do not, as they never run. Lower layers
know nothing of the commands, experiments or strategies built on them, so each can be used and tested alone.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "layerdrop"

# Module (or package: it covers everything inside) -> layer. A new module gets one line here.
LAYERS: dict[str, int] = {
    "layerdrop": 0,  # the package's own __init__ only: version and lazy exports
    "layerdrop.errors": 0,
    "layerdrop.outputs": 0,
    "layerdrop.settings": 0,
    "layerdrop.cache": 0,
    "layerdrop.architectures": 1,
    "layerdrop.bundled": 1,
    "layerdrop.surgery": 2,
    "layerdrop.checkpoint": 3,
    "layerdrop.summary": 3,
    "layerdrop.glue": 3,
    "layerdrop.calibration": 3,
    "layerdrop.corpora": 3,
    "layerdrop.perplexity": 3,
    "layerdrop.strategies": 4,
    "layerdrop.training": 5,
    "layerdrop.evaluation": 5,
    "layerdrop.healing": 5,
    "layerdrop.distillation": 6,
    "layerdrop.embeddings": 6,
    "layerdrop.experiment": 6,
    "layerdrop.analysis": 6,
    "layerdrop.harness": 6,
    "layerdrop.bench": 6,
    "layerdrop.generation_bench": 6,
    "layerdrop.sweep": 7,
    "layerdrop.sweep_progress": 7,
    "layerdrop.engines": 7,
    "layerdrop.cost": 7,
    "layerdrop.report": 7,
    "layerdrop.cli": 8,
    "layerdrop.__main__": 8,
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def covers(name: str, module: str) -> bool:
    """Whether table entry `name` is `module` or a package holding it (the root entry covers only itself)."""
    return module == name or (name != "layerdrop" and module.startswith(name + "."))


def layer_of(module: str) -> int | None:
    """The layer of the table's longest entry that covers `module`."""
    owners = [name for name in LAYERS if covers(name, module)]
    return LAYERS[max(owners, key=len)] if owners else None


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imported_modules(module: str, path: Path) -> set[str]:
    """Every layerdrop module `module` imports at run time, at any depth of its code."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in MODULES)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return {name for name in found if name == "layerdrop" or name.startswith("layerdrop.")}


def test_every_module_has_a_layer() -> None:
    missing = [module for module in MODULES if layer_of(module) is None]
    assert not missing, f"modules missing from LAYERS in tests/test_layering.py: {missing}"
    stale = [name for name in LAYERS if not any(covers(name, m) for m in MODULES)]
    assert not stale, f"LAYERS names modules that do not exist: {stale}"


def test_no_module_imports_one_above_it() -> None:
    upward = {}
    for module, path in MODULES.items():
        for imported in imported_modules(module, path):
            if layer_of(imported) is None:
                pytest.fail(f"{module} imports {imported}, which is not a module of layerdrop")
            if layer_of(imported) > layer_of(module):
                upward[(module, imported)] = f"layer {layer_of(module)} imports layer {layer_of(imported)}"
    assert not upward, f"upward imports: {upward}"


def test_surgery_does_not_import_the_strategies() -> None:
    assert not {
        m
        for m in imported_modules("layerdrop.surgery", MODULES["layerdrop.surgery"])
        if m.startswith("layerdrop.strategies")
    }


def test_the_checker_sees_lazy_imports_and_skips_type_checking_ones(tmp_path: Path) -> None:
    source = tmp_path / "probe.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "from layerdrop import errors\n"
        "if TYPE_CHECKING:\n    from layerdrop.cli import app\n"
        "def f():\n    import layerdrop.sweep\n    from layerdrop.strategies import positional\n"
    )
    assert imported_modules("layerdrop.probe", source) == {
        "layerdrop",
        "layerdrop.errors",
        "layerdrop.sweep",
        "layerdrop.strategies",
        "layerdrop.strategies.positional",
    }
    assert (
        layer_of("layerdrop.strategies.positional") == 4
        and layer_of("layerdrop.cli.drop") == 8
        and layer_of("layerdrop.no_such_module") is None
    )
