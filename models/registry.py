"""Model cards and the name -> builder registry.

Every model file registers its variants with :func:`register_model`; nothing else in the suite
needs to know which families exist. A card holds the *published* numbers so that measured values
(params, GMACs, latency) can always be shown beside what the paper or repository claims.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
from torch import nn

from models.errors import ModelError, UnknownModelError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INTERPOLATIONS = ("bicubic", "bilinear", "nearest", "lanczos", "box", "hamming")


@dataclass(frozen=True)
class Preprocessing:
    """A family's official evaluation transform (``bench accuracy``), as its training code writes it.

    Resize the short side to ``resize`` (``interpolation``), center-crop ``crop`` x ``crop``, scale RGB to
    [0, 1], then subtract ``mean`` and divide by ``std`` (both None: no normalisation). At another crop
    size the short side scales with it, as the official ``int(crop / crop_pct)`` rule does.
    """

    resize: int
    crop: int
    interpolation: str = "bicubic"
    mean: tuple[float, float, float] | None = IMAGENET_MEAN
    std: tuple[float, float, float] | None = IMAGENET_STD
    source: str = ""

    def __post_init__(self) -> None:
        if not 0 < self.crop <= self.resize:
            raise ModelError(f"preprocessing: need 0 < crop <= resize, got crop {self.crop}, resize {self.resize}")
        if self.interpolation not in INTERPOLATIONS:
            raise ModelError(
                f"preprocessing: unknown interpolation {self.interpolation!r}; choose {', '.join(INTERPOLATIONS)}"
            )
        if (self.mean is None) != (self.std is None):
            raise ModelError("preprocessing: give both mean and std, or neither")

    def at(self, crop: int) -> Preprocessing:
        """The same transform for a ``crop`` x ``crop`` input (short side ``crop * resize // self.crop``)."""
        return self if crop == self.crop else replace(self, resize=crop * self.resize // self.crop, crop=crop)

    def describe(self) -> str:
        norm = "ImageNet mean/std" if self.mean == IMAGENET_MEAN and self.std == IMAGENET_STD else None
        if norm is None:
            norm = "no mean/std ([0, 1])" if self.mean is None else f"mean {list(self.mean)} std {list(self.std)}"
        return f"short side {self.resize}, center crop {self.crop}, {self.interpolation}, {norm}"

    def apply(self, image) -> np.ndarray:
        """An RGB Pillow image -> float32 CHW array: the transform above, as torchvision computes it."""
        from PIL import Image

        resample = getattr(Image.Resampling, self.interpolation.upper())
        size = resized_size(*image.size, self.resize)
        if size != image.size:
            image = image.resize(size, resample)
        image = image.crop(center_box(*image.size, self.crop))
        x = np.asarray(image, dtype=np.float32) / np.float32(255)
        if self.mean is not None:
            x = (x - np.asarray(self.mean, dtype=np.float32)) / np.asarray(self.std, dtype=np.float32)
        return np.ascontiguousarray(x.transpose(2, 0, 1))

    def as_dict(self) -> dict[str, object]:
        """The fields as plain JSON values, with :meth:`describe`'s summary."""
        return {
            "resize": self.resize,
            "crop": self.crop,
            "interpolation": self.interpolation,
            "mean": list(self.mean) if self.mean is not None else None,
            "std": list(self.std) if self.std is not None else None,
            "source": self.source,
            "summary": self.describe(),
        }


def resized_size(width: int, height: int, short: int) -> tuple[int, int]:
    """``torchvision.transforms.Resize(short)``: the short side becomes ``short``, the long one is truncated."""
    if width <= height:
        return short, int(short * height / width)
    return int(short * width / height), short


def center_box(width: int, height: int, crop: int) -> tuple[int, int, int, int]:
    """``torchvision.transforms.CenterCrop(crop)``'s box (its offsets round half to even, like Python)."""
    left = round((width - crop) / 2.0)
    top = round((height - crop) / 2.0)
    return left, top, left + crop, top + crop


@dataclass(frozen=True)
class ModelCard:
    """Published facts about one variant (sources are given in ``top1_source`` and ``citation``)."""

    name: str
    family: str
    variant: str
    default_resolution: int
    published_params_m: float | None
    published_gmacs: float | None
    top1: float | None
    top1_source: str
    citation: str
    fixed_resolution: bool = False
    """True when the network is built for one input size (attention-bias tables sized at init)."""
    default_distillation: bool = False
    """True when the official constructor builds a distillation head by default."""
    preprocessing: Preprocessing | None = None
    """Evaluation preprocessing of this model when it differs from its family's (external models)."""
    display_name: str | None = None
    """How reports name the model; None: ``<family label>-<variant>``."""

    def as_row(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class Family:
    """How a family presents itself in tables, plots and FLOP counts; declared beside its models.

    ``counting_rule`` names how the family's published GMACs were counted (``fvcore``, ``thop``,
    ``toolbox`` for EfficientFormer's hooks, ``unstated``); ``paper_variants`` are the variants the
    CAS-ViT paper compares, which form the default ``paper`` model set; ``sized_variants`` are the
    variants whose size puts them beside a CAS-ViT size (the ``sized`` set), with ``sized_reason``
    saying which CAS-ViT size each one neighbours.
    """

    id: str
    label: str
    color: str
    marker: str
    counting_rule: str
    paper_variants: tuple[str, ...] = ()
    preprocessing: Preprocessing | None = None
    """The family's official evaluation preprocessing (``bench accuracy``)."""
    linestyle: str | tuple = "-"
    """Line style of the family's lines in print figures: with the marker it tells families apart in grayscale."""
    distillation: str = ""
    """How the published top-1 was trained: ``"hard"`` (hard distillation from a teacher) or ``""`` (none);
    papers mark distilled models, since distillation alone moves top-1 by a point or more."""
    distillation_source: str = ""
    """Where ``distillation`` comes from (the official training code or README)."""
    sized_variants: tuple[str, ...] = ()
    sized_reason: str = ""


Builder = Callable[..., nn.Module]


@dataclass(frozen=True)
class _Entry:
    card: ModelCard
    builder: Builder
    checkpoint_filter: Callable[[dict], dict] | None


_REGISTRY: dict[str, _Entry] = {}
_FAMILIES: dict[str, Family] = {}
_EXTERNAL: set[str] = set()


def register_family(family: Family) -> Family:
    if family.id in _FAMILIES:
        raise RuntimeError(f"family {family.id!r} registered twice")
    _FAMILIES[family.id] = family
    return family


def get_family(family_id: str) -> Family:
    """The family's presentation; a family without one is a bug in its model file, reported loudly."""
    _ensure_loaded()
    try:
        return _FAMILIES[family_id]
    except KeyError:
        raise UnknownModelError(
            f"family {family_id!r} has no presentation: declare register_family(Family(...)) in its model file"
        ) from None


def paper_set() -> list[str]:
    """The default comparison set: each family's ``paper_variants``, families in zoo order."""
    return [name for family in list_families() for name in get_family(family).paper_variants]


def sized_set() -> list[str]:
    """The size-matched set: each family's ``sized_variants`` (every CAS-ViT size has baselines beside it)."""
    return [name for family in list_families() for name in get_family(family).sized_variants]


def register_model(card: ModelCard, checkpoint_filter: Callable[[dict], dict] | None = None):
    """Decorator: ``builder(*, distillation, num_classes, img_size) -> nn.Module`` under ``card.name``.

    ``checkpoint_filter`` maps a state dict with the family's official key names onto this model's
    names (and drops buffers the model computes itself); it runs before strict key checking.
    """

    def wrap(builder: Builder) -> Builder:
        if card.name in _REGISTRY:
            raise RuntimeError(f"model {card.name!r} registered twice")
        _REGISTRY[card.name] = _Entry(card, builder, checkpoint_filter)
        return builder

    return wrap


def _entry(name: str) -> _Entry:
    _ensure_loaded()
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, _REGISTRY, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise UnknownModelError(f"unknown model {name!r}{hint} (see `python -m bench list`)") from None


def get_card(name: str) -> ModelCard:
    return _entry(name).card


def get_builder(name: str) -> Builder:
    return _entry(name).builder


def get_preprocessing(name: str) -> Preprocessing:
    """The model's evaluation preprocessing: its card's, else its family's."""
    card = get_card(name)
    found = card.preprocessing or get_family(card.family).preprocessing
    if found is None:
        raise ModelError(f"{name}: family {card.family!r} declares no evaluation preprocessing")
    return found


def register_external(card: ModelCard, builder: Builder, checkpoint_filter, family: Family | None) -> None:
    """Register (or replace) a network from outside the zoo (:mod:`models.external`) under ``card.name``.

    It never shadows a built-in model, and stays out of :func:`list_models` (``all`` means the zoo);
    ``family`` is added unless a family of that id exists already.
    """
    _ensure_loaded()
    if card.name in _REGISTRY and card.name not in _EXTERNAL:
        raise ModelError(f"{card.name!r} is a built-in model; give the external network another name (NAME=...)")
    if family is not None:
        _FAMILIES.setdefault(family.id, family)
    _REGISTRY[card.name] = _Entry(card, builder, checkpoint_filter)
    _EXTERNAL.add(card.name)


def is_external(name: str) -> bool:
    return name in _EXTERNAL


def get_checkpoint_filter(name: str) -> Callable[[dict], dict] | None:
    return _entry(name).checkpoint_filter


def list_models(family: str | None = None) -> list[str]:
    """Registered names, families in :func:`family_modules` order, variants in their file's order."""
    _ensure_loaded()
    order = {f"models.{module}": i for i, module in enumerate(family_modules())}
    zoo = [n for n in _REGISTRY if n not in _EXTERNAL]
    names = sorted(zoo, key=lambda n: order.get(_REGISTRY[n].builder.__module__, len(order)))
    return [n for n in names if family is None or _REGISTRY[n].card.family == family]


def list_families() -> list[str]:
    return list(dict.fromkeys(get_card(n).family for n in list_models()))


PAPER_ORDER = ("casvit", "mobilevitv2", "swiftformer", "efficientformer", "efficientformer_v2")
"""The families the CAS-ViT paper compares, in its order; any other family module follows, by name."""
NOT_FAMILIES = frozenset({"checkpoint", "errors", "external", "layers", "registry"})
"""The package's own machinery: every other module in ``models/`` is one model family."""


def family_modules() -> list[str]:
    """Every family module in ``models/`` (found on disk, so a new family is one new file), in
    :data:`PAPER_ORDER` and then by name; importing one runs its ``@register_model`` decorators."""
    here = [m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)])]
    found = [name for name in here if name not in NOT_FAMILIES and not name.startswith("_")]
    rank = {name: i for i, name in enumerate(PAPER_ORDER)}
    return sorted(found, key=lambda name: (rank.get(name, len(rank)), name))


def _ensure_loaded() -> None:
    for module in family_modules():
        importlib.import_module(f"models.{module}")


SPARE_STYLES = (("#56B4E9", "v"), ("#000000", "P"), ("#999999", "X"), ("#882255", "h"))
"""Colour and marker for families that declare none (external networks, families a report does not
know): Okabe-Ito sky blue, then black, grey and wine, none of them a zoo family's."""
_SPARE_GIVEN: dict[str, int] = {}


def spare_style(key: str) -> tuple[str, str]:
    """The spare style of ``key``, handed out in order from one pool, so two families without a declared
    style never share one (until the pool is exhausted) and a family keeps its style within a process."""
    index = _SPARE_GIVEN.setdefault(key, len(_SPARE_GIVEN))
    return SPARE_STYLES[index % len(SPARE_STYLES)]
