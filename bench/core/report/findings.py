"""Findings computed from the results: the claims a README or paper text makes, each with the numbers behind it.

``report`` writes them to ``findings.md``; the README's results section quotes that file word for word (a
test compares them), so no sentence about the measurements can drift from the data it describes.

A claim must hold beyond the sitting it was measured in, so every number is computed **within each sitting**
(one results folder: its cells were interleaved over the same stretch of time, so ratios between them mean
something) at the latency batch, and stated with its spread across the sittings (the median over sittings, then
the smallest and largest); a claim whose direction differs between sittings (a ratio on both sides of 1, a
different fastest runtime) is not made, and the text says which were dropped. Nothing is typed in.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bench.core.measure.stats import headline_note
from bench.core.records.schema import UNSTABLE
from bench.core.report.formatting import markdown_cell, markdown_line
from bench.core.report.reporting import Column, Report
from bench.core.report.tables import UNSTABLE_MARK, latency_interval

NEIGHBOUR_RATIO = 1.5
"""A baseline is a CAS-ViT model's size-matched neighbour when their parameter counts differ by at most this
factor (the sized set puts one of each family beside every CAS-ViT size)."""
CASVIT = "casvit"
CLOSE = 0.05
"""Two runtimes are "within 5%" of each other on a model when their latencies differ by at most this share."""


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def _x(x: float) -> str:
    return f"{x:.2f}x"


def _spread(values: Sequence[float], fmt=_x) -> str:
    """``1.35x (1.30-1.41)``: the median over sittings, then the range; a single sitting gives the value alone."""
    v = [float(x) for x in values if x is not None and not math.isnan(float(x))]
    if not v:
        return "-"
    if len(v) == 1:
        return fmt(v[0])
    unit = fmt(1.0)[-1]
    return f"{fmt(float(np.median(v)))} ({fmt(min(v)).rstrip(unit)}-{fmt(max(v))})"


def _one_way(values: Sequence[float]) -> bool:
    """True when every sitting's ratio is on the same side of 1 (the claim's direction holds)."""
    v = [float(x) for x in values if not math.isnan(float(x))]
    return bool(v) and (all(x < 1 for x in v) or all(x > 1 for x in v))


Runtime = str
"""A runtime setting across sittings, ``backend/device/precision/threads`` (a sitting's columns map onto these)."""


def _runtime(c: Column) -> Runtime:
    return f"{c.backend}/{c.device}/{c.precision}/{c.threads}"


@dataclass
class Sittings:
    """Every sitting's cells at its latency batch, one row per (sitting, runtime, model)."""

    cells: pd.DataFrame
    names: dict[Runtime, str]
    runs: list[str]

    @property
    def count(self) -> int:
        return len(self.runs)

    def at_precision(self, precision: str) -> Sittings:
        """The cells of the runtimes that ran ``precision`` (runtimes are compared at one precision)."""
        keep = self.cells["runtime"].str.split("/").str[2] == precision
        names = {r: n for r, n in self.names.items() if r.split("/")[2] == precision}
        return Sittings(self.cells[keep], names, self.runs)

    def latency(self, sitting: str) -> pd.DataFrame:
        """Models x runtimes of one sitting (models measured on every runtime of it)."""
        mine = self.cells[self.cells["sitting"] == sitting]
        return mine.pivot_table(index="model", columns="runtime", values="latency", aggfunc="first").dropna()


def _sitting_cells(sitting: Report, run: str) -> pd.DataFrame:
    m = sitting.measurements
    measured_here = {c.key for c in sitting.columns if not c.source_tool}  # an import is no sitting of this suite
    rows = m[m["latency_batch"] & m["column"].isin(measured_here)].copy()
    interval = latency_interval(rows)
    by_key = {c.key: _runtime(c) for c in sitting.columns}
    return pd.DataFrame(
        {
            "sitting": run,
            "runtime": rows["column"].map(by_key),
            "model": rows["model"],
            "name": rows["name"],
            "family": rows["family"],
            "params_m": rows["params_m"],
            "top1": rows["top1"],
            "resolution": rows["resolution"],
            "batch": rows["batch"],
            "latency": interval["value"].to_numpy(),
            "low": interval["low"].to_numpy(),
            "high": interval["high"].to_numpy(),
            "unstable": rows["validity"].eq(UNSTABLE) if "validity" in rows else False,
            "round_spread": rows.get("round_spread", np.nan),
        }
    )


def collect(report: Report, sittings: Sequence[Report]) -> Sittings:
    """The cells of every sitting (each a report of one results folder), runtimes named as ``report`` names them."""
    names: dict[Runtime, str] = {}
    for c in report.columns:
        if not c.source_tool:
            names.setdefault(_runtime(c), markdown_line(f"{c.label} ({c.key})"))  # a device name may hold a newline
    frames, runs = [], []
    for s in sittings:
        measured_here = [c for c in s.columns if not c.source_tool]
        if not measured_here:
            continue
        run = ", ".join(sorted({r for c in measured_here for r in c.run_ids}))
        for c in measured_here:
            names.setdefault(_runtime(c), markdown_line(c.label))
        frames.append(_sitting_cells(s, run))
        runs.append(run)
    cells = pd.concat(frames, ignore_index=True) if frames else _sitting_cells(report, "").iloc[:0]
    cells = cells[cells["model"].isin(set(report.measurements["model"]))]
    return Sittings(cells, names, runs)


def findings_markdown(report: Report, sittings: Sequence[Report] | None = None, reference: Column | None = None) -> str:
    """The findings as markdown (no top heading: it is quoted inside the README's results section).

    ``sittings``: one report per sitting (results folder) to compute every claim in (default: ``report`` itself, one
    sitting); ``reference``: the runtime the others are divided by (default: the one fastest for most models).
    """
    data = collect(report, sittings or [report])
    imported = [f"{c.label} ({c.key})" for c in report.columns if c.source_tool]
    aside = (
        f"*Imported columns ({markdown_line('; '.join(imported))}) are the vendor tools' own numbers, not sittings of "
        "this suite (no interleaved rounds, no clean rounds): no finding is computed from them.*"
    )
    if not data.runs:
        return f"*Generated by `bench report`: no sitting of this suite in the results, no finding.*\n\n{aside}\n"
    batches = "/".join(str(b) for b in sorted(data.cells["batch"].unique()))
    lines = [
        f"*Generated by `bench report`: every number is computed within each of {data.count} sitting(s) "
        f"({'; '.join(data.runs)}) at batch {batches}"
        + (", then given as the median over sittings (smallest-largest)" if data.count > 1 else "")
        + ". A claim whose direction differs between sittings is not made. Do not edit: regenerate.*",
        "",
        f"*{headline_note()}*",
        "",
        *([aside, ""] if imported else []),
    ]
    lines += _stability(data)
    # runtimes are compared at one precision (the reference's); other precisions get their own section
    precision = reference.precision if reference is not None else _main_precision(data)
    same = data.at_precision(precision)
    fastest = _most_wins(same)
    base = _runtime(reference) if reference is not None else fastest  # what the ratios divide by
    lines += _fastest(same, fastest)
    lines += _relative(same, base)
    lines += _casvit_neighbours(same)
    lines += _fronts(same)
    lines += _precision_speedups(data, precision, report)
    return "\n".join(lines).rstrip() + "\n"


def _main_precision(data: Sittings) -> str:
    """fp32 where it was measured, else the precision of most cells."""
    precisions = data.cells["runtime"].str.split("/").str[2]
    return "fp32" if (precisions == "fp32").any() else str(precisions.mode().iloc[0]) if len(precisions) else "fp32"


def _precision_speedups(data: Sittings, base: str, report: Report) -> list[str]:
    """For each runtime timed in ``base`` and another precision in one sitting: how many times faster the other
    precision runs each model there (``base`` latency over its), which models gain most and least, which do not
    gain in every sitting, and which it could not time (a quantized network that failed parity, say)."""
    by_key = {c.key: _runtime(c) for c in report.columns}
    failed: dict[Runtime, list[tuple[str, str]]] = {}
    for r in report.failures.itertuples(index=False):
        if getattr(r, "column", None) in by_key:
            failed.setdefault(by_key[r.column], []).append((str(r.model), str(r.status).replace("_", " ")))
    parts = data.cells["runtime"].str.split("/", expand=True) if len(data.cells) else None
    if parts is None or parts.shape[1] < 4:
        return []
    pairs = []
    for runtime in dict.fromkeys(data.cells["runtime"]):
        backend, device, precision, threads = runtime.split("/")
        fp = f"{backend}/{device}/{base}/{threads}"
        if precision != base and fp in data.names:
            pairs.append((runtime, fp))
    label = data.cells.drop_duplicates("model").set_index("model")["name"]
    out = []
    for runtime, fp in pairs:
        speedups = _pair_ratios(data, fp, runtime)  # base latency over this precision's: above 1, faster
        if speedups.empty:
            continue
        if not out:
            out = [f"**Precisions against {base}** (each model's {base} latency on a runtime divided by its latency "
                   "there in the other precision, within each sitting):", ""]  # fmt: skip
        per_model = speedups.median(axis=1)
        hi, lo = per_model.idxmax(), per_model.idxmin()
        gain = [m for m, row in speedups.iterrows() if (row > 1 + CLOSE).all()]
        no_gain = [m for m, row in speedups.iterrows() if not (row > 1 + CLOSE).all()]
        precision = runtime.split("/")[2]
        text = (
            f"- {data.names[runtime]}: {precision} is {_spread(speedups.median().tolist())} as fast as {base} (median "
            f"over models), most for {label[hi]} ({_spread(speedups.loc[hi].tolist())}), least for {label[lo]} "
            f"({_spread(speedups.loc[lo].tolist())}); more than {_pct(CLOSE)} faster in every sitting for "
            f"{len(gain)} of {len(speedups)} models"
        )
        if no_gain:
            text += f" (not for {', '.join(label[m] for m in no_gain)})"
        untimed = failed.get(runtime, [])
        if untimed:  # a failed or parity-failed cell: said, not silently left out of the count
            text += f"; {precision} not timed for " + ", ".join(f"{label.get(m, m)} ({why})" for m, why in untimed)
        out.append(text + ".")
    return [*out, ""] if out else []


def _stability(data: Sittings) -> list[str]:
    out = ["**How steady the sittings were.**"]
    shaky = data.cells.groupby("sitting", sort=False)["unstable"].agg(["sum", "size"])
    shaky = shaky.reindex(data.runs)
    counts = ", ".join(f"{int(r['sum'])} of {int(r['size'])}" for _, r in shaky.iterrows())
    out.append(f"- Cells flagged unstable ({UNSTABLE_MARK}): {counts}" + (" (by sitting)." if data.count > 1 else "."))
    spread = data.cells.groupby("sitting", sort=False)["round_spread"].median().reindex(data.runs).dropna()
    if len(spread):
        out.append(
            f"- Round medians of one cell differ by {_spread(spread.tolist(), _pct)} (median over cells"
            + (" in each sitting)." if data.count > 1 else ").")
        )
    out.append("")
    return out


def _most_wins(data: Sittings) -> Runtime:
    wins = pd.concat([data.latency(s).idxmin(axis=1) for s in data.runs])
    return wins.value_counts().index[0]


def _fastest(data: Sittings, best: Runtime) -> list[str]:
    """Which runtime is fastest for how many models, in each sitting, and for how many its interval is clear
    (``best``: the one fastest for most models over every sitting, whatever the ratios are divided by)."""
    counts, clear, totals, leaders = [], [], [], set()
    for s in data.runs:
        table = data.latency(s)
        if table.shape[1] < 2 or best not in table:
            return []
        winners = table.idxmin(axis=1)
        leaders.add(winners.value_counts().index[0])
        mine = data.cells[(data.cells["sitting"] == s)].set_index(["model", "runtime"])
        won = winners[winners == best].index
        counts.append(len(won))
        totals.append(len(table))
        n_clear = 0
        for model in won:
            runner = table.loc[model].drop(best).idxmin()
            high, low = mine.at[(model, best), "high"], mine.at[(model, runner), "low"]
            n_clear += bool(not math.isnan(high) and not math.isnan(low) and high < low)
        clear.append(n_clear)
    name = data.names[best]
    out = ["**Which runtime is fastest.**"]
    if leaders != {best}:
        others = ", ".join(sorted(data.names[r] for r in leaders))
        out += [f"- The runtime fastest for most models differs between sittings ({others}): no claim.", ""]
        return out
    by = " (by sitting)" if data.count > 1 else ""
    out.append(
        f"- {name} has the lowest latency for {', '.join(map(str, counts))} of {totals[0]} models{by}; its interval "
        f"lies entirely below the runner-up's for {', '.join(map(str, clear))} of them: for the others the "
        "difference is within what the rounds can tell apart."
    )
    out.append("")
    return out


def _ratios(data: Sittings, runtime: Runtime, base: Runtime) -> pd.DataFrame:
    """Models x sittings: ``runtime``'s latency over ``base``'s, within each sitting."""
    out = {}
    for s in data.runs:
        table = data.latency(s)
        if runtime in table and base in table:
            out[s] = table[runtime] / table[base]
    return pd.DataFrame(out)


def _pair_ratios(data: Sittings, runtime: Runtime, base: Runtime) -> pd.DataFrame:
    """As :func:`_ratios`, over the models both runtimes measured (another runtime's failure drops none)."""
    out = {}
    for s in data.runs:
        mine = data.cells[(data.cells["sitting"] == s) & data.cells["runtime"].isin([runtime, base])]
        table = mine.pivot_table(index="model", columns="runtime", values="latency", aggfunc="first").dropna()
        if runtime in table and base in table:
            out[s] = table[runtime] / table[base]
    return pd.DataFrame(out)


def _relative(data: Sittings, best: Runtime) -> list[str]:
    runtimes = [r for r in data.names if r != best and r in set(data.cells["runtime"])]
    if not runtimes:
        return []
    label = data.cells.drop_duplicates("model").set_index("model")["name"]
    over = "; median over sittings (smallest-largest)" if data.count > 1 else ""
    out = [
        f"**Latency relative to {data.names[best]}** (each model's latency divided by its latency there, within each "
        f"sitting{over}):",
        "",
        "| runtime | median over models | smallest (model) | largest (model) | models slower in every sitting |",
        "|:---|---:|---:|---:|---:|",
    ]
    if all(_ratios(data, r, best).empty for r in runtimes):  # no sitting timed another runtime beside it
        return []
    runner, runner_median = None, math.inf
    for r in runtimes:
        ratios = _ratios(data, r, best)
        if ratios.empty:
            continue
        per_model = ratios.median(axis=1)
        lo, hi = per_model.idxmin(), per_model.idxmax()
        slower = int((ratios > 1).all(axis=1).sum())
        out.append(
            f"| {markdown_cell(data.names[r])} | {_spread(ratios.median().tolist())} | "
            f"{_spread(ratios.loc[lo].tolist())} ({label[lo]}) | {_spread(ratios.loc[hi].tolist())} ({label[hi]}) | "
            f"{slower} of {len(ratios)} |"
        )
        if ratios.median().median() < runner_median:
            runner, runner_median = r, ratios.median().median()
    out.append("")
    if runner is None:
        return out
    ratios = _ratios(data, runner, best)
    near = [m for m, row in ratios.iterrows() if (row - 1).abs().max() <= CLOSE]
    faster = [m for m, row in ratios.iterrows() if (row < 1).all()]
    flips = [m for m, row in ratios.iterrows() if not _one_way(row.tolist())]
    text = f"- Next fastest is {data.names[runner]}"
    parts = []
    if near:
        parts.append(
            f"within {_pct(CLOSE)} of {data.names[best]} in every sitting for "
            + ", ".join(f"{label[m]} ({_spread(ratios.loc[m].tolist())})" for m in near)
        )
    if faster:
        parts.append(
            "faster in every sitting for "
            + ", ".join(f"{label[m]} ({_spread(ratios.loc[m].tolist())})" for m in faster)
        )
    if flips:
        parts.append("faster in some sittings and slower in others for " + ", ".join(label[m] for m in flips))
    out += [text + (": " + "; ".join(parts) if parts else "") + ".", ""]
    return out


def _casvit_neighbours(data: Sittings) -> list[str]:
    facts = data.cells.drop_duplicates("model").set_index("model")
    ours = facts[facts["family"] == CASVIT]
    others = facts[facts["family"] != CASVIT]
    if ours.empty or others.empty:
        return []
    runtimes = [r for r in data.names if r in set(data.cells["runtime"])]
    keys = {r: data.names[r].rsplit("(", 1)[-1].rstrip(")") for r in runtimes}
    out = [
        "**CAS-ViT against baselines of its size** (parameters within "
        f"{NEIGHBOUR_RATIO:g}x; ratio = CAS-ViT latency / baseline latency within each sitting, below 1: CAS-ViT "
        f"faster; {UNSTABLE_MARK}: either cell unstable in some sitting; a ratio on both sides of 1 across sittings "
        "is given as its range only, with no direction).",
        "",
        "| CAS-ViT | baseline | params (M) | top-1 diff (pp) | "
        + " | ".join(f"ratio {keys[r]}" for r in runtimes)
        + " |",
        "|:---|:---|---:|---:|" + "---:|" * len(runtimes),
    ]
    shaky = set(zip(data.cells.loc[data.cells["unstable"], "model"], data.cells.loc[data.cells["unstable"], "runtime"],
                    strict=True))  # fmt: skip
    lonely, pixels, dropped = [], [], 0
    for model, r in ours.iterrows():
        near = others[(others["params_m"] / r["params_m"]).between(1 / NEIGHBOUR_RATIO, NEIGHBOUR_RATIO)]
        if near.empty:
            lonely.append(str(r["name"]))
            continue
        for other, o in near.sort_values("params_m").iterrows():
            diff = r["top1"] - o["top1"] if not (pd.isna(r["top1"]) or pd.isna(o["top1"])) else math.nan
            cells = []
            for rt in runtimes:
                per = [
                    t.at[model, rt] / t.at[other, rt]
                    for t in (data.latency(s) for s in data.runs)
                    if rt in t and model in t.index and other in t.index
                ]
                mark = UNSTABLE_MARK if {(model, rt), (other, rt)} & shaky else ""
                if not per:
                    cells.append("-")
                elif _one_way(per):
                    cells.append(_spread(per) + mark)
                else:
                    dropped += 1
                    cells.append(f"{_x(min(per)).rstrip('x')}-{_x(max(per))}{mark}")
            out.append(
                f"| {r['name']} | {o['name']} | {r['params_m']:.1f} / {o['params_m']:.1f} | "
                f"{'-' if math.isnan(diff) else f'{diff:+.1f}'} | " + " | ".join(cells) + " |"
            )
            if int(r["resolution"]) != int(o["resolution"]):
                pixels.append((str(r["name"]), int(r["resolution"]), str(o["name"]), int(o["resolution"])))
    out.append("")
    out.append("Columns: " + "; ".join(f"{keys[r]} = {data.names[r]}" for r in runtimes) + ".")
    for ours_name, ours_res, theirs, res in pixels:
        more = (res / ours_res) ** 2 - 1
        out.append(
            f"{theirs} runs at {res}x{res} and {ours_name} at {ours_res}x{ours_res}: the baseline processes "
            f"{_pct(abs(more))} {'more' if more > 0 else 'fewer'} pixels, and its ratios include that."
        )
    if dropped:
        out.append(f"{dropped} ratio(s) change direction between sittings: no claim is made for them.")
    if lonely:
        out.append(
            f"No baseline of its size was measured for {', '.join(lonely)}: run the size-matched set "
            "(`--models sized`) to compare it."
        )
    out.append("")
    return out


def _fronts(data: Sittings) -> list[str]:
    from bench.core.report.plot_style import front_within_intervals, pareto_front

    out = ["**Pareto front (latency vs top-1) per runtime**, fastest first"
           + (": on the front in every sitting (and in some only)" if data.count > 1 else "")
           + "; then the models no front model beats clearly (its latency interval apart from theirs)."]  # fmt: skip
    rows = data.cells[data.cells["top1"].notna()]
    for runtime in [r for r in data.names if r in set(rows["runtime"])]:
        members: list[set[str]] = []
        within: set[str] = set()
        order: dict[str, float] = {}
        for s in data.runs:
            grp = rows[(rows["sitting"] == s) & (rows["runtime"] == runtime)]
            if grp.empty:
                continue
            x, y = grp["latency"].to_numpy(float), grp["top1"].to_numpy(float)
            front = pareto_front(x, y, smaller_x_better=True)
            loose = front_within_intervals(x, y, grp["low"].to_numpy(float), grp["high"].to_numpy(float), True)
            members.append({str(grp["name"].iloc[i]) for i in front})
            within |= {str(grp["name"].iloc[i]) for i in loose}
            for i in loose:
                order.setdefault(str(grp["name"].iloc[i]), float(grp["latency"].iloc[i]))
        always = set.intersection(*members) if members else set()
        sometimes = set.union(*members) - always if members else set()
        text = ", ".join(sorted(always, key=order.get))
        if sometimes:
            text += f" (in some sittings only: {', '.join(sorted(sometimes, key=order.get))})"
        unclear = within - always - sometimes
        if unclear:
            text += f"; not clearly off it: {', '.join(sorted(unclear, key=order.get))}"
        out.append(f"- {data.names[runtime]}: {text}.")
    out.append("")
    return out
