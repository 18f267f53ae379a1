"""``bench list``: the model zoo and its cards (published numbers with their sources)."""

from __future__ import annotations

import argparse

import pandas as pd

import models
from bench.core import arguments
from bench.core.arguments import select_models
from bench.core.report.formatting import FORMATS, render


def add_arguments(parser: argparse.ArgumentParser) -> None:
    arguments.add_models_argument(parser, default="all")
    parser.add_argument("--format", choices=FORMATS, default="table", help="output format (default: table)")
    parser.add_argument("--full", action="store_true", help="also show top-1 source and citation columns")


def cards_frame(names: list[str], full: bool = False) -> pd.DataFrame:
    rows = [models.get_card(n).as_row() for n in names]
    df = pd.DataFrame(rows).rename(
        columns={
            "default_resolution": "resolution",
            "published_params_m": "params_m",
            "published_gmacs": "gmacs",
            "default_distillation": "dist_head",
        }
    )
    columns = [
        "name",
        "family",
        "variant",
        "resolution",
        "params_m",
        "gmacs",
        "top1",
        "dist_head",
        "fixed_resolution",
    ]
    if full:
        columns += ["top1_source", "citation"]
    return df[columns]


def main(args: argparse.Namespace) -> int:
    names = select_models(args.models)
    # csv/json are for machines: always complete
    df = cards_frame(names, full=args.full or args.format in ("csv", "json"))
    print(render(df, args.format))
    return 0
