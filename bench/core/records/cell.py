"""One cell as the suite reads it back: what it measured (its key) and what it found (its estimators).

A row of ``summary.csv`` is a cell's stored form; :class:`Cell` is the typed form every reader of results
takes: ``compare`` judges two cells, the ratio tables divide two cells of one sitting, the machine's
sitting history keeps their headlines, the loader keeps one row per cell. Its key is the schema's identity
(:func:`bench.core.records.schema.cell_identity` and :func:`~bench.core.records.schema.setting_identity`),
so "the same cell" is defined once; its numbers are named estimators (:data:`ESTIMATORS`), so a reader
never takes one statistic for another.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from bench.core.measure.stats import Headline, json_numbers, only_wide, stored_headline
from bench.core.records.schema import (
    CELL_FIELDS,
    SETTING_FIELDS,
    SHARED_SETTING_FIELDS,
    UNSTABLE,
    cell_identity,
    finite_number,
    setting_identity,
)
from bench.core.util import json_digest

Estimator = Literal["headline", "pooled_median", "fastest_round"]
ESTIMATORS: dict[Estimator, str] = {
    "headline": "mean of the fastest half of the cell's clean round medians (the number every table cites)",
    "pooled_median": "median of every timed iteration of every round (what single-run tools print)",
    "fastest_round": "the fastest round's median (a lower bound of what the machine gave)",
}
"""The statistics a cell offers, by the name reports and ``compare`` print them under."""


@dataclass(frozen=True)
class CellKey:
    """What a cell measured, without the machine: the model cell (model, resolution, batch) and the setting
    (runtime, device, precision, threads and every other ``role="setting"`` column of the schema)."""

    cell: tuple[str, ...]
    setting: tuple[str, ...]

    @classmethod
    def of(cls, row: Mapping[str, object]) -> CellKey:
        return cls(cell_identity(row), setting_identity(row, with_env=False))

    def digest(self) -> str:
        """A short stable name of the key (the sitting history's, kept across sittings in the cache)."""
        return json_digest([list(self.setting), list(self.cell)], "sha1", 16)

    def without(self, axis: str) -> tuple[str, ...]:
        """The key with ``axis`` (``backend`` or ``precision``) and every runtime's own setting left out: two
        cells of one sitting that agree here differ only along ``axis`` (a runtime ratio, a precision's speedup)."""
        shared = dict(zip(SETTING_FIELDS, self.setting, strict=True))
        kept = [shared[f] for f in (*SHARED_SETTING_FIELDS, "backend") if f != axis]
        return (*self.cell, *kept)


PAIR_FIELDS = (*CELL_FIELDS, *SHARED_SETTING_FIELDS)
"""The summary columns :meth:`CellKey.without` keeps (besides ``backend``): a report's frame needs them to pair."""


@dataclass(frozen=True)
class Cell:
    """One measured cell of one run: its key, where it ran, its estimators, interval and validity."""

    key: CellKey
    model: str
    backend: str
    device: str
    precision: str
    batch: int
    resolution: int
    threads: object
    run_id: str
    env_id: str
    headline: Headline
    """:data:`ESTIMATORS` ``headline`` with its prediction interval (for another sitting's headline)."""
    pooled_median_ms: float | None
    round_medians_ms: tuple[float, ...]
    clean_rounds: int | None
    validity: str
    validity_reason: str
    machine_floor_ms: float | None
    source_tool: str

    @classmethod
    def from_row(cls, row: Mapping[str, object]) -> Cell:
        """The cell of a summary row that measured (status ok, a latency). Rows older than the headline, and
        imports of tools that print one aggregate, have no ``latency_ms``: their pooled median stands in."""
        median = finite_number(row.get("latency_median_ms"))
        value = finite_number(row.get("latency_ms"))
        value = value if value is not None and value > 0 else median
        if value is None:
            raise ValueError(f"{row.get('model')} {row.get('backend')}: a cell needs a latency")
        clean = finite_number(row.get("clean_rounds"))
        rounds = clean or finite_number(row.get("rounds")) or 0
        low, high = finite_number(row.get("latency_ci_low_ms")), finite_number(row.get("latency_ci_high_ms"))
        return cls(
            key=CellKey.of(row),
            model=str(row.get("model")),
            backend=str(row.get("backend")),
            device=str(row.get("device")),
            precision=str(row.get("precision")),
            batch=int(row.get("infer_batch_size") or 0),  # type: ignore[call-overload]
            resolution=int(row.get("infer_img_size") or 0),  # type: ignore[call-overload]
            threads=row.get("threads"),
            run_id=_text(row.get("run_id")),
            env_id=_text(row.get("env_id")),
            headline=stored_headline(value, low, high, int(rounds)),
            pooled_median_ms=median,
            round_medians_ms=tuple(json_numbers(row.get("round_medians_ms"))),
            clean_rounds=None if clean is None else int(clean),
            validity=_text(row.get("validity")) or "-",
            validity_reason=_text(row.get("validity_reason")),
            machine_floor_ms=finite_number(row.get("machine_floor_ms")),
            source_tool=_text(row.get("source_tool")),
        )

    def estimate(self, name: Estimator) -> float | None:
        """The named estimator's value in ms (None when the row did not record it)."""
        if name == "headline":
            return self.headline.value
        if name == "pooled_median":
            return self.pooled_median_ms
        if name == "fastest_round":
            return min(self.round_medians_ms) if self.round_medians_ms else None
        raise ValueError(f"unknown estimator {name!r}; one of {', '.join(ESTIMATORS)}")

    @property
    def unstable(self) -> bool:
        return self.validity == UNSTABLE

    @property
    def judgeable(self) -> bool:
        """Whether its headline may be judged against another's: stable, or unstable only because its
        interval is too wide to promise 5% (that interval is then the evidence)."""
        return not self.unstable or only_wide(self.validity_reason)


def _text(value: object) -> str:
    """A text column's value; '' when absent (pandas reads an empty CSV cell as NaN, which is no text)."""
    return value if isinstance(value, str) else ""
