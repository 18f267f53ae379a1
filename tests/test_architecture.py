"""The layout rules that keep the suite easy to extend: checked on the source, so a slip fails here.

- the packages depend one way, with no cycle: ``commands`` -> ``backends`` -> ``core`` -> ``models``
  (the core owns the runtime interface; it never imports ``bench.backends`` or ``bench.commands``, a
  backend never imports a command, and the model zoo never imports the suite);
- no module outside ``bench/backends/`` names a specific backend (adding a runtime = one module + one
  registry line);
- commands import the core, the backends and the models, never each other;
- every model family declares its presentation beside its models;
- a summary column exists once, in the schema.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import models
from bench.backends import BACKENDS
from bench.core import schema

ROOT = Path(__file__).resolve().parent.parent
BACKEND_NAMES = set(BACKENDS)
BACKEND_MODULES = {target.split(":")[0] for target in BACKENDS.values()}


def _modules(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py"))


def _outside_backends() -> list[Path]:
    return [p for p in _modules("bench") if "backends" not in p.relative_to(ROOT).parts]


def _framework_constant(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    """``FRAMEWORK_PACKAGE = "torch"``: the framework's package name, which the torch backend shares."""
    parent = parents.get(node)
    return isinstance(parent, ast.Assign) and any(
        isinstance(t, ast.Name) and t.id == "FRAMEWORK_PACKAGE" for t in parent.targets
    )


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every module ``path`` imports, at any depth (function-level imports count too), with its line."""
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
    return found


FORBIDDEN = {
    "bench/core": ("bench.backends", "bench.commands", "bench.cli"),
    "bench/backends": ("bench.commands", "bench.cli"),
    "models": ("bench",),
}


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


@pytest.mark.parametrize(
    "path",
    [p for folder in FORBIDDEN for p in _modules(folder)],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_packages_depend_one_way(path: Path) -> None:
    folder = next(f for f in FORBIDDEN if path.is_relative_to(ROOT / f))
    offences = [
        f"line {line}: imports {module}"
        for line, module in _imports(path)
        if any(_within(module, banned) for banned in FORBIDDEN[folder])
    ]
    assert not offences, f"{path.relative_to(ROOT)} imports what it must not: {offences}"


def test_the_import_check_catches_a_violation(tmp_path: Path) -> None:
    """The checker itself: a core-style module importing the registry, even inside a function, is seen."""
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from bench.backends import REGISTRY\n    import bench.commands.run\n")
    found = [m for _, m in _imports(module)]
    assert any(_within(m, "bench.backends") for m in found) and "bench.commands.run" in found


@pytest.mark.parametrize("path", _outside_backends(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_outside_backends_names_a_backend(path: Path) -> None:
    tree = ast.parse(path.read_text())
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    offences = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module in BACKEND_MODULES:
            offences.append(f"line {node.lineno}: imports {node.module}")
        if isinstance(node, ast.Import):
            offences += [f"line {node.lineno}: imports {a.name}" for a in node.names if a.name in BACKEND_MODULES]
        if isinstance(node, ast.Constant) and node.value in BACKEND_NAMES and not _framework_constant(node, parents):
            offences.append(f"line {node.lineno}: names backend {node.value!r}")
    assert not offences, f"{path.relative_to(ROOT)} knows about specific backends: {offences}"


@pytest.mark.parametrize("path", _modules("bench/commands"), ids=lambda p: str(p.relative_to(ROOT)))
def test_commands_do_not_import_each_other(path: Path) -> None:
    own = path.relative_to(ROOT / "bench" / "commands").parts[0].removesuffix(".py")
    tree = ast.parse(path.read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    others = [
        m for m in imported if (m.startswith("bench.commands.") and m.split(".")[2] != own) or m == "bench.commands"
    ]
    assert not others, f"{path.relative_to(ROOT)} imports other commands: {others}"


def test_every_family_declares_its_presentation() -> None:
    for family_id in models.list_families():
        family = models.get_family(family_id)
        assert family.label and family.color.startswith("#") and family.marker
        assert set(family.paper_variants) <= set(models.list_models(family_id))
    with pytest.raises(models.ModelError, match="register_family"):
        models.get_family("a_family_nobody_declared")


def test_summary_columns_are_defined_once_in_the_schema(tmp_path: Path) -> None:
    """The writer's header is the schema's, and a column the schema lacks cannot be set on a row."""
    from bench.core.store import SUMMARY_FILE, RunWriter

    assert len(set(schema.SUMMARY_COLUMNS)) == len(schema.SUMMARY_COLUMNS)
    assert all(schema.COLUMN_DOCS[c] for c in schema.SUMMARY_COLUMNS)
    writer = RunWriter.create(tmp_path, "t", {"suite": schema.SUITE_ID, "env_id": "x"})
    header = (writer.directory / SUMMARY_FILE).read_text().splitlines()[0]
    assert tuple(header.split(",")) == schema.SUMMARY_COLUMNS
    with pytest.raises(AttributeError, match="not a summary column"):
        schema.SummaryRow().set(latency_median=1.0)
