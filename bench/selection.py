"""Parsing of the options every sub-command shares: model selection and integer lists."""

from __future__ import annotations

import models
from bench.errors import BenchError

# The default comparison set: every CAS-ViT variant and the baselines of comparable size that the
# CAS-ViT paper (and iFormer's Table 18 reproduction of it) put beside them.
PAPER_SET = (
    "casvit_xs",
    "casvit_s",
    "casvit_m",
    "casvit_t",
    "mobilevitv2_100",
    "swiftformer_xs",
    "swiftformer_s",
    "swiftformer_l1",
    "efficientformer_l1",
    "efficientformerv2_s1",
)


def select_models(spec: str) -> list[str]:
    """Expand ``spec`` (comma-separated names, family ids, ``paper`` or ``all``) into model names."""
    chosen: list[str] = []
    families = models.list_families()
    for token in (t.strip() for t in spec.split(",")):
        if not token:
            continue
        if token == "all":
            chosen.extend(models.list_models())
        elif token == "paper":
            chosen.extend(PAPER_SET)
        elif token in families:
            chosen.extend(models.list_models(token))
        else:
            models.get_card(token)  # raises UnknownModelError with close matches
            chosen.append(token)
    if not chosen:
        raise BenchError("no models selected")
    return list(dict.fromkeys(chosen))


def positive_int_list(text: str, what: str) -> list[int]:
    """``"1,8,32"`` -> ``[1, 8, 32]``; anything else (0, -1, 'x', 1.5) is a one-line error."""
    values = []
    for token in text.split(","):
        token = token.strip()
        if not token.isdigit() or int(token) <= 0:
            raise BenchError(f"{what} must be positive integers, got {token!r}")
        values.append(int(token))
    if not values:
        raise BenchError(f"{what}: no value given")
    return values


def positive_int(text: str, what: str) -> int:
    values = positive_int_list(text, what)
    if len(values) != 1:
        raise BenchError(f"{what} takes one positive integer, got {text!r}")
    return values[0]
