"""The layout rules that keep the suite easy to extend: checked on the source, so a slip fails here.

- the packages depend one way, with no cycle: ``commands`` -> ``backends`` -> ``core`` -> ``models``
  (the core owns the runtime interface; it never imports ``bench.backends`` or ``bench.commands``, a
  backend never imports a command, and the model zoo never imports the suite);
- no module outside ``bench/backends/`` names a specific backend (adding a runtime = one module + one
  registry line);
- commands import the core, the backends and the models, never each other;
- every model family declares its presentation beside its models;
- a summary column exists once, in the schema;
- ``bench/core`` has no import cycle (function-level imports count);
- a flag several commands take is defined once (``bench/core/arguments.py``), and a shared helper has
  one home (:data:`ONE_HOME`): a second definition fails.
"""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pandas as pd
import pytest

import models
from bench.backends import BACKENDS
from bench.core.records import schema

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


def _valid(spec) -> object:
    """A value every constraint of ``spec`` accepts."""
    kind = spec.metadata["kind"]
    if kind == "json":
        return {"list": "[1.5, 2.5]", "indices": "[0, 1, 0]"}.get(spec.metadata["json"], '{"k": "v"}')
    return {"int": 3, "float": 2.5, "bool": True}.get(kind, f"text-{spec.name}")


def test_a_summary_row_survives_the_writer_and_the_loader_column_for_column(tmp_path: Path) -> None:
    """The writer and the loader both take every column, its type and its constraints from the schema."""
    from dataclasses import fields

    from bench.core.records.store import RunWriter, load_summary

    row = schema.SummaryRow(**{f.name: _valid(f) for f in fields(schema.SummaryRow)})
    row.set(status=schema.STATUS_OK, env_id="env", backend="onnx", backend_options="{}")
    writer = RunWriter.create(tmp_path, "t", {"suite": schema.SUITE_ID, "env_id": "env", "schema_version": 2})
    writer.add(row)
    (loaded,) = load_summary(writer.directory).to_dict("records")
    expected = {**row.as_dict(), "run_id": writer.run_id}
    assert {k: loaded[k] for k in schema.SUMMARY_COLUMNS} == expected
    with pytest.raises(AttributeError, match="not a summary column"):
        schema.SummaryRow().set(latency_median=1.0)


@pytest.mark.parametrize(
    "name",
    [f.name for f in dataclasses.fields(schema.SummaryRow) if f.metadata["kind"] in ("int", "float")],
)
def test_the_loader_enforces_the_constraints_declared_beside_each_column(name: str, tmp_path: Path) -> None:
    from bench.core.records.store import Problems, RunWriter, load_summary

    spec = next(f for f in dataclasses.fields(schema.SummaryRow) if f.name == name)
    low, positive = spec.metadata["low"], spec.metadata["positive"]
    bad = "-1" if (low is not None and low >= 0) or positive else "not-a-number"
    row = schema.SummaryRow(model="m", backend="onnx", status=schema.STATUS_OK, env_id="env", row_id="r")
    row.set(settings_key="k")
    row.set(latency_median_ms=1.0, infer_batch_size=1, infer_img_size=32)
    row.set(**{name: bad})
    writer = RunWriter.create(tmp_path, "t", {"suite": schema.SUITE_ID, "env_id": "env"})
    writer.add(row)
    problems = Problems(writer.directory)
    loaded = load_summary(writer.directory, problems)
    if spec.metadata["identity"] or name == "latency_median_ms":
        assert loaded.empty and any(name in d for d in problems.dropped)  # left out, not guessed
    elif name == "latency_ms":  # a blanked headline is recomputed from the row's own medians, never kept bad
        assert len(loaded) == 1 and loaded.iloc[0][name] == 1.0 and any(name in b for b in problems.blanked)
    else:
        assert len(loaded) == 1 and pd.isna(loaded.iloc[0][name]) and any(name in b for b in problems.blanked)


def test_every_setting_field_splits_report_columns_and_is_in_every_table() -> None:
    """The setting identity comes from the schema (``role="setting"``); the report's columns, the column
    table and the measurements table all carry every field of it."""
    from dataclasses import fields

    from bench.core.report.reporting import SETTING, Column
    from bench.core.report.tables import MEASUREMENT_COLUMNS

    declared = tuple(f.name for f in fields(schema.SummaryRow) if f.metadata["role"] == "setting")
    assert declared == schema.SETTING_FIELDS and {"weights", "single_head", "backend_options"} <= set(declared)
    assert set(SETTING) == {"env_id", *declared}
    assert set(declared) <= {f.name for f in fields(Column)}
    assert set(declared) <= set(MEASUREMENT_COLUMNS)


def test_every_environment_field_is_declared() -> None:
    from bench.core.records import environment

    env = environment.collect({"backend": "onnx", "device": "cpu", "threads": 1, "backend_versions": {}})
    assert set(env) <= set(schema.ENVIRONMENT_FIELDS), set(env) - set(schema.ENVIRONMENT_FIELDS)
    assert all(name in env for name, (_, required) in schema.ENVIRONMENT_FIELDS.items() if required)


def test_round_records_load_by_their_declaration() -> None:
    good = {"round": "1", "iterations": "5", "median_ms": "2.5", "reference_ms": "1.0", "timestamp": "t"}
    record = schema.RoundRecord.load(good)
    assert record is not None and record.round == 1 and record.median_ms == 2.5 and record.busy_cpu is None
    for broken in ({"round": "-1"}, {"median_ms": "0"}, {"reference_ms": "x"}, {"warmup_s": "-2"}, {"round": None}):
        assert schema.RoundRecord.load({**good, **broken}) is None, broken
    assert schema.ROUND_COLUMNS[2:] == tuple(schema.RoundRecord().as_dict())


def test_accuracy_documents_load_by_their_declaration(tmp_path: Path) -> None:
    """``accuracy.json`` is declared in the schema like every other record: what the writer writes the
    one loader reads back unchanged, and a result that breaks a declared constraint loses that value
    (or, without its identity, the whole result)."""
    import json

    from bench.core.scoring.accuracy_results import load_document

    result = schema.AccuracyResult(model="m", backend="onnx", status="ok", threads=2, images=4, correct_top1=3)
    result.top1, result.checkpoint, result.skipped_examples = 75.0, {"name": "w.pth"}, ["a.png"]
    document = schema.AccuracyDocument(run_id="r", environment={"env_id": "e"}, data={"images": 4}, results=[result])
    path = tmp_path / "accuracy.json"
    path.write_text(document.to_json())
    assert load_document(path) == document and json.loads(path.read_text())["format"] == schema.ACCURACY_FORMAT
    raw = json.loads(document.to_json())
    raw["results"] += [{"model": "m", "backend": "onnx"}, {**raw["results"][0], "top1": -5, "threads": 0}]
    path.write_text(json.dumps(raw))
    loaded = load_document(path)
    assert loaded is not None and len(loaded.results) == 2  # the result without a status is left out
    assert loaded.results[1].top1 is None and loaded.results[1].threads is None and loaded.results[1].images == 4


# ------------------------------------------------------------------------------------ shared flags

SHARED_FLAGS = ("--models", "--resolution", "--device", "--threads", "--cache-dir", "--warmup", "--iters")
"""Flags several commands take: each defined once, in ``bench/core/arguments.py`` (one type, one default)."""
NOT_YET_SHARED = {
    ("bench/commands/report.py", "--models"),  # a filter over result folders (default: every model)
    ("bench/commands/compare.py", "--models"),  # the same filter
    ("bench/commands/import_results.py", "--resolution"),  # what a vendor tool measured, without a manifest
    ("bench/commands/import_results.py", "--device"),  # the deprecated, hidden spelling of --device-name
}
"""Declarations outside ``arguments.py`` that remain, each with why; a new one fails the test below."""


def _declared_flags(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "add_argument"
        and node.args
        and isinstance(node.args[0], ast.Constant)
    }


def test_shared_flags_are_declared_once_in_arguments() -> None:
    home = ROOT / "bench" / "core" / "arguments.py"
    assert set(SHARED_FLAGS) - {"--warmup", "--iters"} <= _declared_flags(home)  # those two: one loop there
    found = {
        (str(path.relative_to(ROOT)), flag)
        for path in _modules("bench")
        if path != home
        for flag in _declared_flags(path) & set(SHARED_FLAGS)
    }
    assert found <= NOT_YET_SHARED, f"declare these with bench.core.arguments.add_*: {sorted(found - NOT_YET_SHARED)}"


def test_older_accuracy_documents_load_under_the_renamed_fields(tmp_path: Path) -> None:
    """Format 2 called the baseline runtime ``reference_backend``; such a document still loads, under the
    new name, and is written back in the current format."""
    import json

    from bench.core.scoring.accuracy_results import load_document, measured_top1

    result = schema.AccuracyResult(model="casvit_xs", backend="onnx", status="ok", top1=70.0, precision="fp32")
    raw = json.loads(schema.AccuracyDocument(run_id="r", results=[result]).to_json())
    raw["format"] = 2
    del raw["results"][0]["baseline_backend"]
    raw["results"][0]["reference_backend"] = "onnx"
    path = tmp_path / "accuracy.json"
    path.write_text(json.dumps(raw))
    loaded = load_document(path)
    assert loaded is not None and loaded.results[0].baseline_backend == "onnx"
    assert "reference_backend" not in loaded.to_json() and loaded.format == schema.ACCURACY_FORMAT == 4
    assert measured_top1([tmp_path])["casvit_xs"]["top1"] == 70.0


# ------------------------------------------------------------------------------------ no cycle in core


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph(folder: str) -> dict[str, set[str]]:
    """module -> the modules of ``folder`` it imports, at any depth (function-level imports count too)."""
    names = {_module_name(p): p for p in _modules(folder)}
    return {name: {m for _, m in _imports(path) if m in names and m != name} for name, path in names.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (its modules in order, the first repeated at the end), or None."""
    state: dict[str, str] = {}
    trail: list[str] = []

    def visit(name: str) -> list[str] | None:
        state[name] = "open"
        trail.append(name)
        for target in sorted(graph[name]):
            if state.get(target) == "open":
                return [*trail[trail.index(target) :], target]
            if target not in state and (found := visit(target)):
                return found
        state[name] = "done"
        trail.pop()
        return None

    return next((found for name in sorted(graph) if name not in state and (found := visit(name))), None)


def test_no_import_cycle_inside_core() -> None:
    """``bench/core`` is a tree of imports: each module can be read knowing only what it imports."""
    cycle = _cycle(_import_graph("bench/core"))
    assert cycle is None, f"import cycle in bench/core: {' -> '.join(cycle or [])}"


def test_the_cycle_check_sees_a_function_level_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}
    assert _cycle(graph) == ["a", "b", "c", "a"] and _cycle({"a": {"b"}, "b": set()}) is None


# ------------------------------------------------------------------------------------ one home each

ONE_HOME = {
    "bench/core/util.py": ("json_digest", "timestamp", "sha256_file", "atomic_write_text"),
    "models/errors.py": ("one_line",),  # the models cannot import the suite; bench.core.util re-exports it
    "bench/core/records/schema.py": ("finite_number", "settings_key", "setting_identity", "headline_statistic"),
    "bench/core/arguments.py": ("select_models", "default_threads", "default_cache_dir"),
    "bench/backends/__init__.py": ("backend_list",),
    "bench/core/records/store.py": ("new_run_dir",),
    "bench/core/interface/artifact_backend.py": ("ArtifactBackend",),
}
"""Helpers shared across the suite, each with one home: a second definition elsewhere is a copy that
will drift."""


def _definitions(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    return {node.name for node in ast.walk(tree) if isinstance(node, kinds)}


def test_shared_helpers_are_defined_in_their_home_only() -> None:
    homes = {name: home for home, names in ONE_HOME.items() for name in names}
    copies = [
        f"{path.relative_to(ROOT)} defines {name} (its home: {homes[name]})"
        for path in _modules("bench", "models", "tests")
        for name in _definitions(path) & set(homes)
        if str(path.relative_to(ROOT)) != homes[name]
    ]
    assert not copies, copies
    for home, names in ONE_HOME.items():  # the list itself stays true: each helper is where it says
        missing = set(names) - _definitions(ROOT / home)
        assert not missing, f"{home} no longer defines {sorted(missing)}: update ONE_HOME"


ROOMS = ("interface", "measure", "records", "report", "scoring")
"""Issue 26: ``bench/core`` grouped so that its folder tree reads as the architecture."""


def test_core_is_grouped_into_rooms_whose_docstrings_name_every_module() -> None:
    """A newcomer finds the room for a change from its name: the core's modules live in its rooms (only the
    shared flags, errors and utilities beside them), and each room's docstring names each of its modules."""
    core = ROOT / "bench" / "core"
    assert sorted(p.stem for p in core.glob("*.py") if p.stem != "__init__") == ["arguments", "errors", "util"]
    packages = sorted(d.name for d in core.iterdir() if (d / "__init__.py").is_file())
    assert packages == sorted([*ROOMS, "importers"])
    for room in ROOMS:
        doc = ast.get_docstring(ast.parse((core / room / "__init__.py").read_text())) or ""
        modules = [p.stem for p in (core / room).glob("*.py") if p.stem != "__init__"]
        unnamed = [m for m in modules if f"``{m}``" not in doc]
        assert modules and not unnamed, (room, unnamed)


MAX_FUNCTION_LINES = 80
"""Issue 26: a function a reader can hold (its docstring included)."""


def test_no_function_in_bench_is_longer_than_a_reader_can_hold() -> None:
    long = []
    for path in _modules("bench"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({length} lines)")
    assert not long, long


def test_one_meaning_of_cell_a_measured_cell_is_the_records_type() -> None:
    """Issue 26: 'cell' means a measured cell; the one type of it is records.cell.Cell (the sitting's live one is
    OpenCell, a table's formatted text an Entry)."""
    defined = [
        f"{path.relative_to(ROOT)}: Cell"
        for path in _modules("bench")
        for node in ast.walk(ast.parse(path.read_text()))
        if (isinstance(node, ast.ClassDef) and node.name == "Cell")
        or (isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "Cell" for t in node.targets))
    ]
    assert defined == ["bench/core/records/cell.py: Cell"], defined
