"""``bench flops``: GMACs of models with two counters beside the published numbers
(see :mod:`bench.core.measure.counting`)."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import pandas as pd

from bench.core import arguments
from bench.core.arguments import select_models
from bench.core.errors import BenchError
from bench.core.measure.counting import (
    FVCORE_RULE,
    GIGA,
    THOP_RULE,
    TOOLBOX_RULE,
    UNSTATED_RULE,
    FlopReport,
    count_gmacs,
    op_category,
    published_decimals,
)
from bench.core.report.formatting import FORMATS, markdown_table, render, write_csv
from bench.core.util import check_writable_dir, one_line
from models.errors import CheckpointError

# ---------------------------------------------------------------------------------------------------------


def _uncounted_text(uncounted: dict[str, int]) -> str:
    return " ".join(f"{op}:{n}" for op, n in sorted(uncounted.items(), key=lambda kv: -kv[1])) or "-"


def published_match(published: float | None, rule_gmacs: float | None) -> str:
    """ "yes" when the re-applied rule rounds to the published figure, else the gap in units of its last digit."""
    if published is None or rule_gmacs is None:
        return "-"
    unit = 10.0 ** -published_decimals(published)
    off = (rule_gmacs - published) / unit
    return "yes" if abs(off) <= 0.5 + 1e-9 else f"no ({off:+.1f} last-digit units)"


def summary_frame(reports: list[FlopReport]) -> pd.DataFrame:
    """One row per model: both counts, their gap explained, the published value and the % difference.

    ``rule_gmacs`` re-counts with the rules the family's authors used (``published_rule``); where it rounds
    to the published number, the fvcore-vs-published gap is fully explained by counting rules.
    """
    rows = []
    for r in reports:
        published = r.published_gmacs if r.resolution == r.published_resolution else None
        fv = r.fvcore_macs / GIGA
        fc = r.flopcounter_macs / GIGA
        rule = r.rule_macs / GIGA if r.rule_macs is not None else None
        rows.append(
            {
                "model": r.model,
                "resolution": r.resolution,
                "batch": r.batch_size,
                "params_m": r.params / 1e6,
                "fvcore_gmacs": fv,
                "flopcounter_gmacs": fc,
                "fc_vs_fvcore_pct": 100 * (fc - fv) / fv if fv else float("nan"),
                "gap_by_category": r.difference_explained(),
                "published_gmacs": published,
                "vs_published_pct": 100 * (fv - published) / published if published else None,
                "published_rule": r.rule.name if r.rule else "-",
                "rule_gmacs": rule,
                "rule_vs_published_pct": 100 * (rule - published) / published if published and rule else None,
                "rule_matches_published": published_match(published, rule),
                "uncounted_by_fvcore": _uncounted_text(r.uncounted),
            }
        )
    return pd.DataFrame(rows)


def _module_rows(r: FlopReport) -> list[dict[str, object]]:
    return [
        {
            "model": r.model,
            "module": name or "(total)",
            "fvcore_gmacs": macs / GIGA,
            "flopcounter_gmacs": r.flopcounter_by_module.get(name, 0.0) / GIGA,
            "share_pct": 100 * macs / r.fvcore_macs if r.fvcore_macs else 0.0,
        }
        for name, macs in r.fvcore_by_module.items()
    ]


def _operator_rows(r: FlopReport) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = [
        {
            "model": r.model,
            "operator": op,
            "category": op_category(op),
            "fvcore_gmacs": macs / GIGA,
            "share_pct": 100 * macs / r.fvcore_macs if r.fvcore_macs else 0.0,
        }
        for op, macs in sorted(r.fvcore_by_op.items(), key=lambda kv: -kv[1])
    ]
    rows += [
        {"model": r.model, "operator": f"{op} (uncounted, x{n})", "category": "-"} for op, n in r.uncounted.items()
    ]
    return rows


def breakdown_frame(reports: list[FlopReport], by: str) -> pd.DataFrame:
    """Per module (up to ``--depth``; depth 2 = stages) or per operator, GMACs per image."""
    rows_of = _module_rows if by == "module" else _operator_rows
    return pd.DataFrame([row for r in reports for row in rows_of(r)])


def uncounted_frame(reports: list[FlopReport]) -> pd.DataFrame:
    rows = [
        {"model": r.model, "operator": op, "occurrences": n}
        for r in reports
        for op, n in sorted(r.uncounted.items(), key=lambda kv: -kv[1])
    ]
    return pd.DataFrame(rows, columns=["model", "operator", "occurrences"])


def category_frame(reports: list[FlopReport]) -> pd.DataFrame:
    return pd.concat([r.by_category() for r in reports], ignore_index=True)


# ---------------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    arguments.add_models_argument(parser)
    arguments.add_resolution_argument(parser, several=True)
    parser.add_argument(
        "--batch-size",
        type=arguments.count("--batch-size", 4096),
        default=1,
        metavar="N",
        help="batch the counters run at; results are per image (default: 1)",
    )
    parser.add_argument("--by", choices=("module", "operator"), default="module", help="breakdown (default: module)")
    parser.add_argument(
        "--depth",
        type=arguments.count("--depth", 64),
        default=2,
        metavar="N",
        help="module-name depth of the breakdown (default: 2 = stages)",
    )
    parser.add_argument("--no-dist-head", action="store_true", help="count the single-head deployable networks")
    parser.add_argument("--format", choices=FORMATS, default="table", help="terminal format (default: table)")
    parser.add_argument(
        "--out",
        default="reports/flops",
        help="directory for CSV + markdown (default: %(default)s, git-ignored; the committed reference is "
        "reports/reference/flops)",
    )
    parser.add_argument("--no-save", action="store_true", help="print only, write nothing")


def regenerate_command(args: argparse.Namespace) -> str:
    """The command that writes this report again, every option that shapes it spelled out (defaults may change)."""

    def text(value: object) -> str:
        return shlex.quote(",".join(map(str, value)) if isinstance(value, list | tuple) else str(value))

    parts = ["python -m bench flops", f"--models {text(args.models)}"]
    if args.resolution:
        parts.append(f"--resolution {text(args.resolution)}")
    parts += [f"--batch-size {text(args.batch_size)}", f"--by {args.by}", f"--depth {text(args.depth)}"]
    if args.no_dist_head:
        parts.append("--no-dist-head")
    return " ".join([*parts, f"--out {text(args.out)}"])


def _markdown_report(
    summary: pd.DataFrame, cats: pd.DataFrame, breakdown: pd.DataFrame, by: str, command: str = ""
) -> str:
    diffs = cats[cats["why"] != "identical"]
    rules = {r.name: r.source for r in (FVCORE_RULE, THOP_RULE, TOOLBOX_RULE, UNSTATED_RULE)}
    lines = [
        "# FLOPs: fvcore vs FlopCounterMode vs published",
        "",
        *([f"Made by `{command}`.", ""] if command else []),
        "GMACs per image (1 fused multiply-add = 1). FlopCounterMode's FLOPs are halved to MACs. "
        "`vs_published_pct` compares fvcore with the model card's published GMACs (at the published "
        "resolution only); `rule_gmacs` re-counts with the tool the family's authors used "
        "(`published_rule`) and `rule_matches_published` says whether it rounds to the published figure. "
        "`uncounted_by_fvcore` lists the ops fvcore priced 0, with their occurrences.",
        "",
        markdown_table(summary, 4),
        "",
        "Counting rules:",
        "",
        *[f"- **{name}**: {source}" for name, source in rules.items()],
        "",
        "## Where the two counters differ, by operator category",
        "",
        markdown_table(diffs, 4) if len(diffs) else "The two counters agree on every category.",
        "",
        f"## Breakdown by {by}",
        "",
        markdown_table(breakdown, 4),
        "",
    ]
    return "\n".join(lines)


def _save(out: Path, reports: list[FlopReport], by: str, tables: dict[str, pd.DataFrame], command: str) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        write_csv(out / "flops.csv", tables["summary"])
        write_csv(out / "flops_by_category.csv", tables["categories"])
        write_csv(out / f"flops_by_{by}.csv", tables["breakdown"])
        write_csv(out / "uncounted_ops.csv", uncounted_frame(reports))
        (out / "flops.md").write_text(
            _markdown_report(tables["summary"], tables["categories"], tables["breakdown"], by, command)
        )
    except OSError as exc:
        raise BenchError(f"cannot write to {out}: {exc.strerror or exc}") from None


def main(args: argparse.Namespace) -> int:
    names = select_models(args.models)
    resolutions = args.resolution or [None]
    batch, depth = args.batch_size, args.depth
    if not args.no_save:
        check_writable_dir(Path(args.out), "--out")  # before minutes of counting, not after
    distillation = False if args.no_dist_head else None
    reports, failed = [], 0
    for name in names:
        for res in resolutions:
            try:
                reports.append(count_gmacs(name, res, batch, depth, distillation))
            except (BenchError, CheckpointError):
                raise
            except Exception as exc:  # a model that cannot be built or run: said, the others are counted
                failed += 1
                print(f"{name}: cannot count: {one_line(exc)}", file=sys.stderr)
    if not reports:
        return 1
    tables = {
        "summary": summary_frame(reports),
        "categories": category_frame(reports),
        "breakdown": breakdown_frame(reports, args.by),
    }
    print(render(tables["summary"], args.format, 4))
    if args.format == "table":
        print(f"\nbreakdown by {args.by} (GMACs per image):")
        print(render(tables["breakdown"], args.format, 4))
    if not args.no_save:
        out = Path(args.out)
        _save(out, reports, args.by, tables, regenerate_command(args))
        if args.format == "table":
            print(f"\nwritten: {out}/flops.csv, flops.md, flops_by_{args.by}.csv, flops_by_category.csv")
    return 1 if failed else 0
