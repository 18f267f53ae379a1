"""Cost vs tokens, CATM vs MSA: counts over square maps and log-log exponents."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench.complexity.counting import fvcore_pass, meta_pass, single_threaded
from bench.complexity.instruments import MIXERS


def slope(tokens: np.ndarray, values: np.ndarray) -> float:
    """Least-squares exponent p of values ∝ tokens^p on log-log axes."""
    return float(np.polyfit(np.log(tokens), np.log(values), 1)[0])


def token_costs(width: int, sizes: list[int], fvcore_max: int) -> pd.DataFrame:
    """CATM and MSA counts at one width over square maps: FlopCounterMode on meta tensors for every
    size, fvcore (which executes the module) up to ``fvcore_max``."""
    rows = []
    for mixer in ("CATM", "MSA"):
        module = MIXERS[mixer](width).eval()
        for h in sizes:
            with single_threaded():
                fcm, shapes, _ = meta_pass(MIXERS[mixer], 1, h, width)
                row = {"mixer": mixer, "C": width, "H": h, "tokens": h * h, "flopcounter": fcm, "fvcore": np.nan}
                if h <= fvcore_max:
                    row["fvcore"] = fvcore_pass(module, 1, h, shapes)["fvcore"]
            rows.append(row)
    return pd.DataFrame(rows)


def upper_half(xs: np.ndarray) -> np.ndarray:
    """Points at or above the geometric middle of the range (at least the last two): where fixed per-call
    costs matter least, so the exponent there is the one that extrapolates."""
    mask = xs >= np.sqrt(xs.min() * xs.max())
    mask[-2:] = True
    return mask


def exponent_table(frame: pd.DataFrame, group: list[str], x: str, columns: list[str]) -> pd.DataFrame:
    """Exponents of each column vs ``x`` per group: over the whole range and over its upper half."""
    rows = []
    for keys, d in frame.groupby(group, sort=False):
        d = d.sort_values(x)
        for col in columns:
            ok = d[d[col].notna() & (d[col] > 0)]
            if len(ok) < 2:
                continue
            xs, ys = ok[x].to_numpy(float), ok[col].to_numpy(float)
            upper = upper_half(xs)
            rows.append(
                {
                    **dict(zip(group, keys if isinstance(keys, tuple) else (keys,), strict=True)),
                    "measure": col,
                    "exponent_all": slope(xs, ys),
                    "exponent_upper": slope(xs[upper], ys[upper]),
                    "from_tokens": int(xs[0]),
                    "to_tokens": int(xs[-1]),
                }
            )
    return pd.DataFrame(rows)
