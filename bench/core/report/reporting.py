"""``bench report``: paper-style tables and plots from one or more results directories.

Runs from several backends and machines are merged, but a number is only ever put beside numbers
from the same environment *and sitting*: every *table column* is one (machine ``env_id``, backend,
device, precision, threads, channels-last, compile) setting, footnoted with the machine and runtime it
ran on. When one setting was measured in several runs (sittings: a quiet hour and a loaded one), each
run gets a column of its own, labelled with its run; nothing is averaged or mixed across runs.

Outputs (in ``--out``): ``table.{csv,md,tex}`` (the main table), ``columns.csv`` (what each column
is), ``measurements.csv`` (the tidy data behind the tables and plots), ``report.md`` (tables and
plots together) and the plots of :mod:`bench.core.report.plots` as PNG and SVG.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from bench.core.errors import BenchError
from bench.core.interface.runtime import Backend, registry
from bench.core.records.environment import FRAMEWORK_PACKAGE
from bench.core.records.schema import (
    CELL_FIELDS,
    DEFAULTS,
    SETTING_FIELDS,
    STATUS_FAILED,
    STATUS_NOT_TIMED,
    STATUS_OK,
    STATUS_PARITY_FAILED,
    headline_statistic,
    latest_ok,
    setting_identity,
    typed,
)
from bench.core.records.store import load_results
from bench.core.scoring.accuracy_results import measured_top1

STATUS_CELLS = {STATUS_FAILED: "fail", STATUS_PARITY_FAILED: "parity", STATUS_NOT_TIMED: "n/t"}
"""What a table cell says for a setting that has no ok row, by the row's status."""

# One table column (and one plot panel) per setting on one machine (the schema's identity with the
# environment); never merged across them. Within a column, one measurement per cell.
SETTING = ("env_id", *SETTING_FIELDS)
CELL = CELL_FIELDS


# ------------------------------------------------------------------------------------ data model


@dataclass
class Column:
    """One table column group / plot panel: a setting on one machine."""

    key: str
    """Letter that links the column to its footnote: ``A``, ``B``, ..."""
    label: str
    backend: str
    device: str
    precision: str
    calibration: str
    """What an int8 column calibrated on (empty for float precisions)."""
    threads: int | None
    channels_last: bool
    compile: bool
    backend_options: str
    weights: str
    single_head: bool
    env_id: str
    env: dict[str, object]
    machine: str
    run_ids: list[str]
    batches: list[int]
    source_tool: str = ""
    """The vendor tool an imported column's numbers come from (empty: measured by this suite)."""
    headline: str = "median"
    """The statistic shown as the column's latency (an imported tool may print only a mean or a minimum)."""

    @property
    def title(self) -> str:
        return f"{self.label} ({self.key})"

    @property
    def latency_batch(self) -> int:
        """Latency is reported at batch 1, or the smallest batch measured when 1 was not."""
        return 1 if 1 in self.batches else min(self.batches)

    @property
    def runtime_version(self) -> str | None:
        versions = self.env.get("versions")
        return _backend(self.backend).runtime_version(versions) if isinstance(versions, dict) else None

    @property
    def machine_detail(self) -> str:
        env = self.env
        if env.get("imported"):  # a device described by `bench import`, not a machine this suite ran on
            facts = env.get("device") if isinstance(env.get("device"), dict) else {}
            said = [f"{k.replace('_', ' ')} {v}" for k, v in facts.items() if k not in ("device", "this_machine") and v]
            return f"{self.machine}" + (f" ({', '.join(said)})" if said else "")
        cpu = f"{env.get('cpu_model', 'unknown CPU')} ({env.get('cpu_count', '?')} logical CPUs)"
        gpu = f", GPU {env['gpu_name']}" if env.get("gpu_name") else ""
        return f"{self.machine}: {cpu}{gpu}"

    @property
    def footnote(self) -> str:
        runtime = _backend(self.backend).label
        if self.runtime_version:
            runtime += f" {self.runtime_version}"
        extras = [self.precision, f"{self.threads} threads" if self.threads is not None else "default threads"]
        if self.channels_last:
            extras.append("channels-last")
        if self.compile:
            extras.append("torch.compile")
        extras += [f"{k} {v}" for k, v in json.loads(self.backend_options or "{}").items()]
        if self.weights != DEFAULTS["weights"]:
            extras.append(f"weights {self.weights}")
        if self.single_head:
            extras.append("single head")
        if self.source_tool:
            extras.append(f"imported from {self.source_tool} output, {self.headline} as the tool printed it")
        env = self.env
        software = [str(env.get("os", "unknown OS")), f"Python {env.get('python', '?')}"]
        versions = env.get("versions") if isinstance(env.get("versions"), dict) else {}
        framework = versions.get(FRAMEWORK_PACKAGE)
        if framework and FRAMEWORK_PACKAGE not in _backend(self.backend).packages:
            software.append(f"{FRAMEWORK_PACKAGE} {framework}")  # the exporter of every other runtime's model
        runs = ", ".join(self.run_ids)
        commit = f", suite {env['git_commit']}" if env.get("git_commit") else ""
        return (
            f"({self.key}) {runtime} on {self.device.upper()}, {', '.join(extras)}; machine "
            f"{self.machine_detail}; {', '.join(software)}; env {self.env_id}, run {runs}{commit}."
        )


@dataclass
class Report:
    measurements: pd.DataFrame
    """One row per (column, model, resolution, batch) that was measured: the latest ok run."""
    failures: pd.DataFrame
    """Settings with no ok measurement: the latest failed / not-timed row of each."""
    samples: pd.DataFrame
    """Per-iteration latencies of the chosen rows (``column``, ``model``, ``latency_ms`` ...)."""
    columns: list[Column]
    inputs: list[str]
    notes: list[str] = field(default_factory=list)


def _card(name: str, recorded: dict[str, dict[str, object]] | None = None):
    import models  # torch comes with it: only imported once a report is actually built

    try:
        return models.get_card(name)
    except models.ModelError:  # an external network not passed again, or a model of an older suite
        facts = (recorded or {}).get(name)
        if not isinstance(facts, dict):
            return None
        try:  # the card the run recorded for an external network (its spec's published facts)
            return models.ModelCard(name=name, **{k: v for k, v in facts.items() if k in _RECORDED_CARD_FIELDS})
        except (TypeError, ValueError):
            return None


_RECORDED_CARD_FIELDS = ("family", "variant", "default_resolution", "published_params_m", "published_gmacs", "top1",
                         "top1_source", "citation", "display_name")  # fmt: skip


def recorded_cards(environments: dict[str, dict[str, object]]) -> dict[str, dict[str, object]]:
    """External networks' cards as the runs recorded them (``external_models`` in ``environment.json``)."""
    found: dict[str, dict[str, object]] = {}
    for env in environments.values():
        cards = env.get("external_models") if isinstance(env, dict) else None
        if isinstance(cards, dict):
            found.update({str(k): v for k, v in cards.items() if isinstance(v, dict)})
    return found


def _backend(name: str) -> type[Backend]:
    """The backend's class, or a stand-in labelled with its name for rows of a backend since removed."""
    try:
        return registry().backend_class(name)
    except BenchError:
        return type(name, (), {"label": name, "packages": (), "runtime_version": staticmethod(lambda v: None)})


def _model_info(
    names: Iterable[str],
    summary: pd.DataFrame,
    measured: dict[str, dict[str, object]] | None = None,
    recorded: dict[str, dict[str, object]] | None = None,
) -> pd.DataFrame:
    """Family, display name, paper order and published numbers of every measured model.

    ``measured`` (from ``bench accuracy`` results) replaces the published top-1 and names its source.
    """
    import models

    try:
        family_order = {f: i for i, f in enumerate(models.list_families())}
        model_order = {m: i for i, m in enumerate(models.list_models())}
    except models.ModelError:
        family_order, model_order = {}, {}
    rows = []
    for name in names:
        card = _card(name, recorded)
        measured_family = summary.loc[summary["model"] == name, "family"].dropna() if "family" in summary else []
        family = card.family if card else (str(measured_family.iloc[0]) if len(measured_family) else "other")
        family_label = models.get_family(family).label if family in family_order else family
        rows.append(
            {
                "model": name,
                "name": (card.display_name or f"{family_label}-{card.variant}") if card else name,
                "family": family,
                "family_label": family_label,
                "family_order": family_order.get(family, len(family_order)),
                "model_order": model_order.get(name, len(model_order)),
                "default_resolution": card.default_resolution if card else None,
                "published_params_m": card.published_params_m if card else None,
                "published_gmacs": card.published_gmacs if card else None,
                "top1": card.top1 if card else None,
                "top1_source": card.top1_source if card and card.top1 is not None else None,
                "top1_measured": False,
            }
        )
        found = (measured or {}).get(name)
        if found is not None and found.get("replaces", True):
            rows[-1].update(top1=found["top1"], top1_source=found["source"], top1_measured=True)
        elif found is not None:  # a quick check: shown apart (in the source note), never as the ImageNet top-1
            published = rows[-1]["top1_source"]
            rows[-1]["top1_source"] = f"{published}; {found['source']}" if published else None
    numbers = {"published_params_m": float, "published_gmacs": float, "top1": float}  # external cards may lack all
    return pd.DataFrame(rows).astype(numbers)


def _machines(env_ids: Sequence[str], environments: dict[str, dict[str, object]]) -> dict[str, str]:
    """Short machine names: the hostname, with the env id where one host has several environments."""
    hosts = {e: str(environments.get(e, {}).get("hostname") or e[:8]) for e in env_ids}
    counts = pd.Series(list(hosts.values())).value_counts()
    return {e: (h if counts[h] == 1 else f"{h} [{e[:6]}]") for e, h in hosts.items()}


def _value(v: object) -> object:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA else v


def build_report(
    summary: pd.DataFrame,
    samples: pd.DataFrame,
    environments: dict[str, dict[str, object]],
    model_names: Sequence[str] | None = None,
    inputs: Sequence[str] = (),
) -> Report:
    """Choose one measurement per setting and cell, and describe every column (see module doc)."""
    df = _with_headline(typed(summary))
    df["_setting"] = [setting_identity(r, with_env=True) for r in df.to_dict("records")]
    if model_names is not None:
        df = df[df["model"].isin(model_names)]
    if df.empty:
        raise BenchError("no results for the selected models")
    sittings = _split_sittings(df)
    chosen, failures = _chosen_and_failed(df)
    columns, column_of = _columns(chosen, environments)
    chosen["column"] = chosen["_setting"].map(column_of)
    failures = failures.assign(column=[column_of.get(k) for k in failures["_setting"]])
    names = list(dict.fromkeys([*chosen["model"], *failures["model"]]))
    info = _model_info(names, df, measured_top1(inputs), recorded_cards(environments))
    m = _derived(_with_model_facts(chosen, info), {c.key: c for c in columns})
    picked = m[m["latency_batch"]][["run_id", "row_id", "column", "model", "name", "family", "family_order"]]
    return Report(
        measurements=m,
        failures=_with_model_facts(failures, info),
        samples=samples.merge(picked, on=["run_id", "row_id"], how="inner"),  # for the distribution plot
        columns=columns,
        inputs=list(inputs),
        notes=_notes(sittings, len({c.env_id for c in columns}), failures),
    )


def _chosen_and_failed(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The latest successful row of each (setting, cell), and the latest failed row of each cell that none
    measured."""
    key = ["_setting", *CELL]
    chosen = latest_ok(df, key)  # one per cell: the loader keeps one row per cell and setting in a run
    failed = df[df["status"] != STATUS_OK]
    if len(chosen):
        done = pd.MultiIndex.from_frame(chosen[key].astype(str))
        failed = failed[~pd.MultiIndex.from_frame(failed[key].astype(str)).isin(done)]
    failures = failed.groupby(key, dropna=False, sort=False).tail(1)
    if chosen.empty:
        states = ", ".join(sorted(failures["status"].unique()))
        raise BenchError(f"no successful measurement in the results (status: {states})")
    return chosen.copy(), failures


def _columns(chosen: pd.DataFrame, environments: dict[str, dict[str, object]]) -> tuple[list[Column], dict[str, str]]:
    """One column per setting of ``chosen`` (in the registry's runtime order), and each setting's column key."""
    order = {name: i for i, name in enumerate(registry().names)}
    settings = chosen.drop_duplicates("_setting")
    settings = settings.assign(
        _backend=settings["backend"].map(lambda b: order.get(b, len(order))),
        _env=settings["env_id"].map({e: i for i, e in enumerate(dict.fromkeys(chosen["env_id"]))}),
    ).sort_values(["_backend", "backend", "device", "_env", "precision", "threads", "channels_last", "compile"])
    machines = _machines(list(dict.fromkeys(settings["env_id"])), environments)
    stamps = {r: _run_stamp(r) for r in settings.loc[settings["_sitting"], "sitting"]}
    if len(set(stamps.values())) < len(stamps):  # two runs started in the same second: name them in full
        stamps = {r: str(r) for r in stamps}
    label = _ColumnLabeller(settings, machines, stamps)
    columns: list[Column] = []
    column_of: dict[str, str] = {}
    rows_of = zip(settings.itertuples(index=False), settings["_setting"], settings["_sitting"], strict=True)
    headline_of = dict(zip(settings["_setting"], settings["_headline"], strict=True))
    for i, (s, setting, sitting) in enumerate(rows_of):
        rows = chosen[chosen["_setting"] == setting]  # itertuples renames columns that start with "_"
        columns.append(
            Column(
                key=_letters(i),
                label=label(s, sitting, _STAT_NAMES[headline_of[setting]]),
                backend=s.backend,
                device=s.device,
                precision=s.precision,
                calibration="" if pd.isna(s.calibration) else str(s.calibration),
                threads=None if pd.isna(s.threads) else int(s.threads),
                channels_last=bool(s.channels_last),
                compile=bool(s.compile),
                backend_options=s.backend_options,
                weights=s.weights,
                single_head=bool(s.single_head),
                env_id=s.env_id,
                env=dict(environments.get(s.env_id, {})),
                machine=machines[s.env_id],
                run_ids=list(dict.fromkeys(rows["run_id"])),
                batches=sorted(int(b) for b in rows["infer_batch_size"].dropna().unique()),
                source_tool=str(s.source_tool or ""),
                headline=_STAT_NAMES[headline_of[setting]],
            )
        )
        column_of[setting] = columns[-1].key
    return columns, column_of


@dataclass
class _ColumnLabeller:
    """A column's label: the runtime and device, then only what sets it apart from the report's other columns."""

    settings: pd.DataFrame
    machines: dict[str, str]
    stamps: dict[object, str]

    def __post_init__(self) -> None:
        self.varying = {a for a in SETTING if self.settings[a].nunique(dropna=False) > 1}
        self.calibrations = self.settings["calibration"].replace("", pd.NA).nunique()  # named where two differ

    def __call__(self, s, sitting: bool, headline: str) -> str:
        varying = self.varying
        parts = [_backend(s.backend).label, s.device.upper()]
        if "precision" in varying or s.precision != "fp32":
            parts.append(s.precision)
        if self.calibrations > 1 and isinstance(s.calibration, str) and s.calibration:
            parts.append("cal. " + s.calibration.split(" (")[0])  # "cal. 32 images of val"
        if "threads" in varying and not pd.isna(s.threads):
            parts.append(f"{s.threads}T")
        if "channels_last" in varying and s.channels_last:
            parts.append("CL")
        if "compile" in varying and s.compile:
            parts.append("compiled")
        same_backend = self.settings[self.settings["backend"] == s.backend]
        if same_backend["backend_options"].nunique() > 1:  # other backends have other options: not a difference
            parts.append(" ".join(f"{k}={v}" for k, v in json.loads(s.backend_options or "{}").items()))
        if "weights" in varying:
            parts.append(s.weights)
        if "single_head" in varying and s.single_head:
            parts.append("single-head")
        if "env_id" in varying:
            parts.append(f"@ {self.machines[s.env_id]}")
        if sitting:
            parts.append(f"run {self.stamps[s.sitting]}")
        if s.source_tool:  # an imported sitting: always say on what and by which tool
            if "env_id" not in varying:
                parts.append(f"@ {self.machines[s.env_id]}")
            parts.append(f"via {s.source_tool}" + ("" if headline == "median" else f" ({headline})"))
        return " ".join(parts)


def _derived(m: pd.DataFrame, by_key: dict[str, Column]) -> pd.DataFrame:
    """The measurements with their column's label and machine, throughput, achieved FLOP/s and whether the row is
    at its column's latency batch, in the tables' order."""
    m["column_label"] = m["column"].map(lambda k: by_key[k].label)
    m["machine"] = m["column"].map(lambda k: by_key[k].machine)
    step_ms = m["latency_ms"].fillna(m["latency_median_ms"]) if "latency_ms" in m else m["latency_median_ms"]
    m["throughput_ips"] = m["batch"] * 1000.0 / step_ms  # from the cited latency, so table and plots agree
    m["achieved_gflops"] = 2.0 * m["gmacs"] * m["throughput_ips"]  # 1 MAC = 2 FLOPs
    m["latency_batch"] = m["column"].map(lambda k: by_key[k].latency_batch) == m["batch"]
    return m.sort_values(["column", "family_order", "model_order", "model", "resolution", "batch"]).reset_index(
        drop=True
    )


def _notes(sittings: int, machines: int, failures: pd.DataFrame) -> list[str]:
    """What a reader must know about the report as a whole: several sittings, several machines, cells not measured."""
    notes = []
    if sittings:
        notes.append(
            f"{sittings} setting(s) were measured in several runs (sittings); each run has a column of its own, "
            "labelled with the run's start, so numbers from different sittings never share a column."
        )
    if machines > 1:
        notes.append(
            f"Results come from {machines} machines/software environments; each column is from one "
            "of them (see its footnote) and numbers are never combined across them."
        )
    if len(failures):
        lines = []
        for r in failures.head(6).itertuples(index=False):
            err = f": {r.error}" if isinstance(r.error, str) and r.error else ""
            lines.append(f"{r.model} {r.backend}/{r.device} b={r.infer_batch_size} {r.status}{err}")
        more = f"; and {len(failures) - 6} more" if len(failures) > 6 else ""
        notes.append(f"Not measured ({len(failures)}): {'; '.join(lines)}{more}.")
    return notes


_STAT_NAMES = {"latency_median_ms": "median", "latency_mean_ms": "mean", "latency_min_ms": "minimum"}


def _with_headline(df: pd.DataFrame) -> pd.DataFrame:
    """Rows with ``_headline`` (the column their latency is shown from); an aggregate-only imported
    row whose tool printed no median is shown by its mean (or minimum) -- said in its column's label
    and footnote, so it never passes for a median."""
    df = df.copy()
    df["_headline"] = [headline_statistic(r) or "latency_median_ms" for r in df.to_dict("records")]
    for name in ("latency_mean_ms", "latency_min_ms"):
        use = df["_headline"] == name
        df.loc[use, "latency_median_ms"] = df.loc[use, name]
    if "latency_ms" in df:  # rows without rounds (imported aggregates) are shown and plotted by that statistic
        df["latency_ms"] = df["latency_ms"].fillna(df["latency_median_ms"])
    return df


def _split_sittings(df: pd.DataFrame) -> int:
    """Give each sitting of a setting measured in several sittings a setting of its own (in place); returns how
    many were split.

    A sitting (a run, with the run that ``--resume`` continued it in: the loader's ``sitting``) interleaved its
    rounds across its models, so its numbers are comparable with each other, while another sitting of the same
    setting may have met a quieter or a busier machine. ``_sitting`` marks the rows whose column is one sitting
    of a split setting.
    """
    ok = df[df["status"] == STATUS_OK]
    runs = ok.groupby("_setting", sort=False)["sitting"].nunique()
    split = set(runs[runs > 1].index)
    df["_sitting"] = df["_setting"].isin(split)
    df["_setting"] = [
        (*setting, str(run)) if sitting else setting
        for setting, run, sitting in zip(df["_setting"], df["sitting"], df["_sitting"], strict=True)
    ]
    return len(split)


def _run_stamp(run_id: str) -> str:
    """``20261125-035221-onnx-cpu-24899`` -> ``20261125-035221`` (when the run started), else the whole id."""
    parts = str(run_id).split("-")
    stamp = "-".join(parts[:2])
    return stamp if len(parts) > 2 and stamp.replace("-", "").isdigit() else str(run_id)


def _with_model_facts(rows: pd.DataFrame, info: pd.DataFrame) -> pd.DataFrame:
    """Add the model's card facts; params/GMACs as measured, else published (GMACs only at its resolution)."""
    m = rows.drop(columns=[c for c in info.columns if c != "model" and c in rows]).merge(info, on="model", how="left")
    m["batch"] = m["infer_batch_size"].astype(int)
    m["resolution"] = m["infer_img_size"].astype("Int64")
    m["params_m"] = m["param_count"] if "param_count" in m else float("nan")
    m["gmacs"] = m["infer_gmacs"] if "infer_gmacs" in m else float("nan")
    at_default = m["resolution"] == m["default_resolution"]
    m["params_m"] = m["params_m"].fillna(m["published_params_m"])
    m["gmacs"] = m["gmacs"].fillna(m["published_gmacs"].where(at_default))
    return m


def _letters(i: int) -> str:
    out = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        out = chr(65 + r) + out
    return out


def load_report(result_paths: Sequence[Path | str], model_spec: str | None = None) -> Report:
    paths = [Path(p) for p in result_paths]
    summary, samples, environments = load_results(paths)
    names = None
    if model_spec:
        from bench.core.arguments import select_models

        names = select_models(model_spec, known=set(summary["model"].astype(str)))
    return build_report(summary, samples, environments, names, inputs=[str(p) for p in paths])
