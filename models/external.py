"""Your own network beside the zoo: ``--models`` entries that name a factory instead of a built-in model.

Forms (any ``--models`` list may mix them with built-in names, family ids, ``paper`` and ``all``)::

    path/to/my_net.py:build                 a function (or class) in a Python file, imported by path
    my_package.nets:build                   a function in an importable module (the current folder is searched too)
    my_net.py:Net.small                     an attribute path (a classmethod, a factory on an object)
    'my_net.py:build(width=2, depth=[2,4])' keyword arguments: Python literals only (ast.literal_eval)
    wide=my_net.py:build(width=2)           NAME=...: the name it gets in results (default: the factory's name;
                                            never a built-in model, a family id, ``paper`` or ``all``)
    timm:resnet18  /  'timm:vit_tiny_patch16_224(img_size=256)'   with ``pip install '.[timm]'``
    my_net.toml  /  my_net.json             a model spec (below); paths in it are relative to the spec

Commas inside ``(...)``, ``[...]``, ``{...}`` and quotes do not split the list. Shells need quotes around
parentheses. Keyword values are parsed, never evaluated, but the named file or module *is* run (imported)
and its factory called: an entry or spec is code, to be trusted like any script you run. A factory from
Python's standard library or builtins (``os:system``) is refused: it is never a network.

A model spec (TOML or JSON) holds the factory and the card facts; a factory may carry the same facts
as a dict attribute ``build.bench_card = {...}`` (the spec wins)::

    factory = "my_net.py:build"      # required in a spec: any form above but NAME= and a spec
    name = "my_net_s"                # default: the factory's name
    resolution = 224                 # default input size (default 224; --resolution overrides); > 0
    family = "MyNet"                 # family label in tables/plots; a built-in family id or label joins it
    top1 = 79.1                      # published ImageNet-1k top-1 (%)
    top1_source = "MyNet paper, Table 3"
    citation = "Doe et al., MyNet, 2026"
    params_m = 5.6                   # published parameters (M) and GMACs, shown where none are measured
    gmacs = 0.9
    [kwargs]                         # keyword arguments of the factory
    width = 2
    [preprocessing]                  # evaluation preprocessing for `bench accuracy` (default: as CAS-ViT)
    resize = 256                     # short side; default int(crop / 0.875)  (or crop_pct = 0.875)
    crop = 224                       # default: resolution
    interpolation = "bicubic"
    mean = [0.485, 0.456, 0.406]     # with std; normalize = false: RGB in [0, 1], no mean/std
    std = [0.229, 0.224, 0.225]

Failures: a file or module that cannot be imported, a missing factory, bad keyword syntax or a bad spec
stop the command before any work (one line, exit 2). A factory that raises or returns something that
is not an ``nn.Module`` fails when the model is built: ``bench run`` records that row as failed (the
line names the file) and measures the other models; export failures are recorded the same way.

Caches: the model carries a persistent buffer ``bench_source_digest`` (16 bytes: the source file or
module, the spec, the factory and its arguments) and the digest in its ``repr``, so a changed file
gives another ONNX/Core ML export key (they hash the state dict) and another GMACs key (the repr),
besides the weights digest. A checkpoint (``--checkpoint``) is loaded with the suite's safe loader; its
keys are the factory's own (the buffer is added by the model's checkpoint filter).
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import importlib.util
import inspect
import json
import math
import os
import re
import stat
import sys
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from models.errors import ModelError, one_line
from models.registry import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Family,
    ModelCard,
    Preprocessing,
    get_family,
    list_families,
    register_external,
    spare_style,
)

DIGEST_BUFFER = "bench_source_digest"
DEFAULT_RESOLUTION = 224
DEFAULT_CROP_PCT = 0.875  # CAS-ViT's (and DeiT's) eval crop: short side int(224 / 0.875) = 256
SPEC_SUFFIXES = (".toml", ".json")
CARD_KEYS = {
    "name": str,
    "variant": str,
    "resolution": int,
    "family": str,
    "top1": (int, float),
    "top1_source": str,
    "citation": str,
    "params_m": (int, float),
    "gmacs": (int, float),
    "fixed_resolution": bool,
    "preprocessing": dict,
}
SPEC_KEYS = {"factory": str, "kwargs": dict, **CARD_KEYS}
PREPROCESSING_KEYS = ("resize", "crop", "crop_pct", "interpolation", "mean", "std", "normalize", "source")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+()/ -]*")
RESERVED_NAMES = frozenset({"all", "paper", "sized"})
"""The --models keywords (``select_models`` in bench.core.arguments expands them before any name)."""
"""``--models`` keywords: a network named so could never be selected by its name."""
_DIGESTS: dict[str, str] = {}
_ATTR = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")
_CLOSING = {"(": ")", "[": "]", "{": "}"}


# ------------------------------------------------------------------------------------------ the syntax


def split_models(spec: str) -> list[str]:
    """Split a ``--models`` list on the commas that are outside brackets and quotes."""
    tokens, current, stack, quote = [], [], [], None
    for ch in spec:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in _CLOSING:
            stack.append(_CLOSING[ch])
        elif stack and ch == stack[-1]:
            stack.pop()
        elif ch == "," and not stack:
            tokens.append("".join(current).strip())
            current = []
            continue
        current.append(ch)
    tokens.append("".join(current).strip())
    return [t for t in tokens if t]


def is_external(token: str) -> bool:
    """True for a factory or spec entry (``:`` or a ``.toml``/``.json`` ending), False for zoo names."""
    return ":" in token or _split_name(token)[1].lower().endswith(SPEC_SUFFIXES)


@dataclass(frozen=True)
class Source:
    """One parsed entry: where the factory is and how to call it."""

    token: str
    kind: str
    """``file``, ``module`` or ``timm``."""
    target: str
    """The file path, module name or timm model name."""
    attr: str = ""
    kwargs: dict[str, Any] = field(default_factory=dict)
    name: str | None = None
    spec_path: Path | None = None
    facts: dict[str, Any] = field(default_factory=dict)
    """Card facts from the spec (they win over the factory's ``bench_card``)."""

    @property
    def where(self) -> str:
        """How messages name it: the file (or module) and factory, and the spec it came from."""
        text = f"timm:{self.target}" if self.kind == "timm" else f"{self.target}:{self.attr}"
        return f"{self.spec_path} ({text})" if self.spec_path else text


def _split_name(token: str) -> tuple[str | None, str]:
    """``NAME=rest`` -> (NAME, rest); anything else -> (None, token)."""
    head, sep, rest = token.partition("=")
    if sep and _NAME.fullmatch(head) and rest and not rest.startswith("="):
        return head, rest
    return None, token


def _parse_call(text: str, token: str) -> dict[str, Any]:
    """``(a=1, b=[2, 3])`` -> ``{"a": 1, "b": [2, 3]}``, literals only."""
    try:
        call = ast.parse(f"f{text}", mode="eval").body
    except SyntaxError:
        call = None
    if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Name):
        raise ModelError(f"{token}: cannot read the arguments {text}; write NAME(key=value, ...) with Python literals")
    if call.args:
        raise ModelError(f"{token}: positional arguments are not supported; name them (key=value)")
    kwargs: dict[str, Any] = {}
    for keyword in call.keywords:
        if keyword.arg is None:
            raise ModelError(f"{token}: ** is not supported in the arguments; write key=value")
        try:
            kwargs[keyword.arg] = ast.literal_eval(keyword.value)
        except (ValueError, SyntaxError, TypeError):
            raise ModelError(
                f"{token}: argument {keyword.arg}={ast.unparse(keyword.value)} is not a Python literal "
                "(numbers, strings, True/False/None, lists, tuples, dicts)"
            ) from None
    return kwargs


def _split_call(body: str, token: str) -> tuple[str, dict[str, Any]]:
    """``source:attr(args)`` -> (``source:attr``, kwargs); the call is the first ``(`` after an attribute."""
    if not body.endswith(")"):
        return body, {}
    for i, ch in enumerate(body):
        if ch != "(" or ":" not in body[:i]:
            continue
        if not _ATTR.fullmatch(body[:i].rsplit(":", 1)[1]):
            continue
        return body[:i], _parse_call(body[i:], token)
    return body, {}


def parse(token: str, base: Path | None = None) -> Source:
    """Read one ``--models`` entry (see the module doc); ``base`` resolves relative paths (a spec's folder)."""
    name, body = _split_name(token.strip())
    if body.lower().endswith(SPEC_SUFFIXES) and ":" not in body.replace("\\", "/").split("/")[-1]:
        if base is not None:
            raise ModelError(f"{token}: a spec's factory cannot be another spec")
        source = _read_spec(Path(body), token)
        return Source(**{**source.__dict__, "name": name or source.name, "token": token})
    head, kwargs = _split_call(body, token)
    if head.startswith("timm:"):
        model = head.removeprefix("timm:")
        if not _NAME.fullmatch(model):
            raise ModelError(f"{token}: not a timm model name: {model!r}")
        return Source(token, "timm", model, "", kwargs, name)
    target, sep, attr = head.rpartition(":")
    if not sep or not target or not _ATTR.fullmatch(attr):
        raise ModelError(
            f"{token}: expected path/to/file.py:factory, package.module:factory, timm:NAME or a .toml/.json spec"
        )
    if target.endswith(".py") or "/" in target or os.sep in target:
        path = Path(target).expanduser()
        if base is not None and not path.is_absolute():
            path = base / path
        return Source(token, "file", str(path), attr, kwargs, name)
    if not _ATTR.fullmatch(target):
        raise ModelError(f"{token}: {target!r} is neither a .py file nor a module name")
    return Source(token, "module", target, attr, kwargs, name)


def _read_spec(path: Path, token: str) -> Source:
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # a named pipe would block, a device never end
            raise ModelError(f"model spec {path} is not a regular file")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ModelError(f"model spec not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelError(f"cannot read model spec {path}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    except RecursionError:
        raise ModelError(f"model spec {path} is not valid {path.suffix[1:].upper()}: nested too deeply") from None
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise ModelError(
            f"model spec {path} is not valid {path.suffix[1:].upper()}: {one_line(exc, with_type=False)}"
        ) from None
    if not isinstance(data, dict):
        raise ModelError(f"model spec {path}: expected a table of keys, found {type(data).__name__}")
    _check_keys(data, SPEC_KEYS, f"model spec {path}")
    if "factory" not in data:
        raise ModelError(f'model spec {path}: no factory (e.g. factory = "my_net.py:build")')
    inner = parse(data["factory"], base=path.parent)
    facts = {k: v for k, v in data.items() if k not in ("factory", "kwargs")}
    kwargs = {**inner.kwargs, **data.get("kwargs", {})}
    return Source(token, inner.kind, inner.target, inner.attr, kwargs, facts.get("name"), path, facts)


def _check_keys(data: dict, known: dict[str, Any], where: str) -> None:
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ModelError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(known)}")
    for key, kind in known.items():
        value = data.get(key)
        if value is None:
            continue
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise ModelError(f"{where}: {key} must be {_kind_name(kind)}, got {value!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ModelError(f"{where}: {key} must be finite, got {value!r}")


def _kind_name(kind: Any) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {str: "text", int: "a whole number", float: "a number", bool: "true or false", dict: "a table"}
    return " or ".join(dict.fromkeys(names.get(k, k.__name__) for k in kinds))


# ----------------------------------------------------------------------------------------- importing


_MODULES: dict[tuple[str, str], Any] = {}


@contextmanager
def _on_path(folder: str) -> Iterator[None]:
    """``folder`` first on ``sys.path`` while a file runs (as for a script), so its sibling modules import."""
    sys.path.insert(0, folder)
    try:
        yield
    finally:
        if folder in sys.path:
            sys.path.remove(folder)


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _import_file(source: Source) -> tuple[Any, str]:
    path = Path(source.target)
    if not path.is_file():
        raise ModelError(f"{source.where}: file not found: {path}")
    try:
        digest = _file_digest(path)
    except OSError as exc:
        raise ModelError(f"{source.where}: cannot read {path}: {exc.strerror or exc}") from None
    key = (str(path.resolve()), digest)
    if key in _MODULES:
        return _MODULES[key], digest
    stem = re.sub(r"\W", "_", path.stem)
    module_name = f"_bench_external_{stem}_{digest[:12]}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ModelError(f"{source.where}: {path} cannot be imported as a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses and pickling look their module up here
    try:
        with _on_path(str(path.resolve().parent)):
            spec.loader.exec_module(module)
    except BaseException as exc:
        sys.modules.pop(module_name, None)
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise ModelError(f"cannot import {path}: {one_line(exc)}") from None
    _MODULES[key] = module
    return module, digest


def _import_module(source: Source) -> tuple[Any, str]:
    try:
        try:
            module = importlib.import_module(source.target)
        except ModuleNotFoundError as exc:
            top = source.target.split(".")[0]
            if exc.name not in (top, source.target) or os.getcwd() in sys.path:
                raise
            with _on_path(os.getcwd()):  # `bench` (the script) does not search the current folder; python -m does
                module = importlib.import_module(source.target)
    except Exception as exc:
        raise ModelError(f"cannot import {source.target}: {one_line(exc)}") from None
    h = hashlib.sha256(source.target.encode())
    file = getattr(module, "__file__", None)
    if file and Path(file).is_file():
        h.update(Path(file).read_bytes())
    top = sys.modules.get(source.target.split(".")[0])
    h.update(str(getattr(top, "__version__", "")).encode())
    return module, h.hexdigest()


def _attribute(module: Any, source: Source) -> Callable[..., Any]:
    obj = module
    for part in source.attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            where = source.target
            raise ModelError(f"{where} has no {source.attr!r} (looked up for {source.token})") from None
    if not callable(obj):
        raise ModelError(f"{source.where}: {source.attr} is a {type(obj).__name__}, not a callable factory")
    home = str(getattr(obj, "__module__", None) or getattr(module, "__name__", "")).split(".")[0]
    if home in sys.stdlib_module_names or source.target.split(".")[0] in sys.stdlib_module_names:
        raise ModelError(
            f"{source.where}: {source.attr} comes from Python's standard library ({home}), not a network "
            "factory; name a function or class that builds an nn.Module"
        )
    return obj


def _timm(source: Source) -> tuple[Callable[..., Any], str, dict[str, Any]]:
    try:
        import timm  # an optional extra: it needs a torchvision built for the installed torch
    except Exception as exc:
        raise ModelError(
            f"{source.token} needs timm, which cannot be imported here ({one_line(exc)}); "
            "install it with pip install '.[timm]' (and a torchvision that matches your torch)"
        ) from None
    is_model = getattr(timm, "is_model", None)
    if is_model is not None and not is_model(source.target):
        raise ModelError(f"{source.token}: timm {getattr(timm, '__version__', '')} has no model {source.target!r}")
    name = source.target

    def factory(**kwargs: Any) -> nn.Module:
        return timm.create_model(name, pretrained=kwargs.pop("pretrained", False), **kwargs)

    factory.__name__ = name
    facts: dict[str, Any] = {"citation": f"timm {getattr(timm, '__version__', '?')} model {name}"}
    try:  # the model's own eval settings, where timm knows them
        cfg = timm.get_pretrained_cfg(name)
        cfg = cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg or {})
    except Exception:
        cfg = {}
    size = cfg.get("test_input_size") or cfg.get("input_size")
    if size:
        facts["resolution"] = int(size[-1])
        pre = {k: cfg[k] for k in ("crop_pct", "interpolation", "mean", "std") if cfg.get(k) is not None}
        if pre.get("interpolation") not in (None, "bicubic", "bilinear", "nearest", "lanczos", "box", "hamming"):
            pre.pop("interpolation")
        facts["preprocessing"] = {**pre, "source": f"timm pretrained_cfg of {name}"}
    return factory, hashlib.sha256(f"timm {getattr(timm, '__version__', '')}".encode()).hexdigest(), facts


# ------------------------------------------------------------------------------------------ the card


def _preprocessing(facts: dict[str, Any], resolution: int, where: str) -> Preprocessing:
    given = facts.get("preprocessing") or {}
    unknown = sorted(set(given) - set(PREPROCESSING_KEYS))
    if unknown:
        known = ", ".join(PREPROCESSING_KEYS)
        raise ModelError(f"{where}: unknown preprocessing key(s) {', '.join(unknown)}; known: {known}")
    try:
        crop = int(given.get("crop", resolution))
        if "resize" in given:
            resize = int(given["resize"])
        else:
            resize = int(crop / float(given.get("crop_pct", DEFAULT_CROP_PCT)))
        normalize = given.get("normalize", True)
        mean = given.get("mean", IMAGENET_MEAN if normalize else None)
        std = given.get("std", IMAGENET_STD if normalize else None)
        if not normalize:
            mean = std = None
        mean = None if mean is None else tuple(float(v) for v in mean)
        std = None if std is None else tuple(float(v) for v in std)
        if (mean is not None and len(mean) != 3) or (std is not None and len(std) != 3):
            raise ValueError("mean and std take three values (R, G, B)")
        if std is not None and min(std) <= 0:
            raise ValueError("std must be positive")
        default = "default (as CAS-ViT): short side int(crop / 0.875), center crop, bicubic, ImageNet mean/std"
        return Preprocessing(
            resize=resize,
            crop=crop,
            interpolation=str(given.get("interpolation", "bicubic")),
            mean=mean,  # type: ignore[arg-type]
            std=std,  # type: ignore[arg-type]
            source=str(given.get("source") or (f"declared by {where}" if given else default)),
        )
    except (TypeError, ValueError, ZeroDivisionError, ModelError) as exc:
        raise ModelError(f"{where}: bad preprocessing: {one_line(exc, with_type=False)}") from None


def _family(label: str | None, name: str, preprocessing: Preprocessing) -> tuple[str, Family | None]:
    """The family id: a built-in family named by id or label, else a new family labelled ``label``."""
    label = label or name
    for family_id in list_families():
        if label in (family_id, get_family(family_id).label):
            return family_id, None
    color, marker = spare_style(label)
    return label, Family(
        id=label, label=label, color=color, marker=marker, counting_rule="unstated", preprocessing=preprocessing
    )


@dataclass(frozen=True)
class External:
    """A resolved external network: its card, how to build it and what identifies its source."""

    card: ModelCard
    family: Family | None
    source: Source
    factory: Callable[..., Any]
    digest: str
    """Hex digest of source file/module, spec, factory and arguments (16 bytes)."""

    def build(self, *, distillation: bool = False, num_classes: int = 1000, img_size: int | None = None) -> nn.Module:
        """Call the factory (``img_size`` is passed where it takes one); distillation/num_classes are the zoo's."""
        kwargs = dict(self.source.kwargs)
        if img_size is not None and "img_size" not in kwargs and _accepts(self.factory, "img_size"):
            kwargs["img_size"] = img_size
        folder = str(Path(self.source.target).resolve().parent) if self.source.kind == "file" else None
        try:
            if folder is None:
                model = self.factory(**kwargs)
            else:
                with _on_path(folder):
                    model = self.factory(**kwargs)
        except Exception as exc:
            raise ModelError(f"{self.source.where}: the factory raised {one_line(exc)}") from None
        if not isinstance(model, nn.Module):
            raise ModelError(
                f"{self.source.where}: the factory returned {type(model).__module__}.{type(model).__qualname__}, "
                "not a torch.nn.Module"
            )
        return self.mark(model)

    def digest_tensor(self) -> torch.Tensor:
        return torch.tensor(list(bytes.fromhex(self.digest)), dtype=torch.uint8)

    def mark(self, model: nn.Module) -> nn.Module:
        """Put the source digest into the state dict (export keys) and the repr (GMACs key)."""
        if DIGEST_BUFFER in model._buffers or not hasattr(model, DIGEST_BUFFER):
            model.register_buffer(DIGEST_BUFFER, self.digest_tensor(), persistent=True)
        inner = type(model).extra_repr
        digest = self.digest

        def extra_repr() -> str:
            own = inner(model)
            return f"{own}, source={digest}" if own else f"source={digest}"

        object.__setattr__(model, "extra_repr", extra_repr)
        return model

    def checkpoint_filter(self, state: dict) -> dict:
        """A checkpoint of the factory's network has no digest buffer; the model's own is used."""
        return {**state, DIGEST_BUFFER: self.digest_tensor()}


def _accepts(factory: Callable[..., Any], name: str) -> bool:
    try:
        return name in inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False


def resolve(token: str) -> External:
    """Import an entry's file or module and read its card facts (the factory is not called yet)."""
    source = parse(token)
    if source.kind == "timm":
        factory, source_digest, defaults = _timm(source)
    else:
        module, source_digest = _import_file(source) if source.kind == "file" else _import_module(source)
        factory = _attribute(module, source)
        defaults = {}
    attached = getattr(factory, "bench_card", None) or {}
    if not isinstance(attached, dict):
        raise ModelError(f"{source.where}: bench_card must be a dict, got {type(attached).__name__}")
    _check_keys(attached, CARD_KEYS, f"{source.where} bench_card")
    facts = {**defaults, **attached, **source.facts}
    where = str(source.spec_path) if source.spec_path else source.where
    name = source.name or facts.get("name") or getattr(factory, "__name__", None) or source.target
    if not _NAME.fullmatch(str(name)):
        raise ModelError(f"{where}: {name!r} cannot name a model (letters, digits, _ . -); set NAME=... or name")
    if str(name) in RESERVED_NAMES or str(name) in list_families():
        raise ModelError(
            f"{where}: {name!r} is a family id or a --models keyword, so --models {name} could not reach this "
            "network; give it another name (NAME=... or name)"
        )
    resolution = facts.get("resolution", DEFAULT_RESOLUTION)
    if resolution is None:
        resolution = DEFAULT_RESOLUTION
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution <= 0:
        raise ModelError(f"{where}: resolution must be a positive whole number of pixels, got {resolution!r}")
    label = facts.get("family")
    if label is not None and not _LABEL.fullmatch(str(label)):
        raise ModelError(
            f"{where}: family {label!r} cannot label a family (letters, digits, spaces and _ . - + ( ) /, "
            "starting with a letter or digit)"
        )
    preprocessing = _preprocessing(facts, resolution, where)
    family_id, family = _family(facts.get("family"), str(name), preprocessing)
    h = hashlib.sha256()
    h.update(source_digest.encode())
    spec_bytes = source.spec_path.read_bytes() if source.spec_path else b""
    h.update(hashlib.sha256(spec_bytes).digest())
    call = [source.kind, source.target, source.attr, source.kwargs]
    h.update(json.dumps(call, sort_keys=True, default=repr).encode())
    top1 = facts.get("top1")
    card = ModelCard(
        name=str(name),
        family=family_id,
        variant=str(facts.get("variant") or name),
        default_resolution=resolution,
        published_params_m=facts.get("params_m"),
        published_gmacs=facts.get("gmacs"),
        top1=None if top1 is None else float(top1),
        top1_source=str(facts.get("top1_source") or (f"as declared by {where}" if top1 is not None else "")),
        citation=str(facts.get("citation") or f"external network {source.where}"),
        fixed_resolution=bool(facts.get("fixed_resolution", False)),
        preprocessing=preprocessing,
        display_name=str(name),
    )
    return External(card, family, source, factory, h.hexdigest()[:32])


def register(token: str) -> tuple[str, str]:
    """Resolve ``token`` and register it like a built-in model; returns (name, source digest)."""
    external = resolve(token)

    def builder(*, distillation: bool, num_classes: int, img_size: int) -> nn.Module:
        return external.build(distillation=distillation, num_classes=num_classes, img_size=img_size)

    builder.__module__ = __name__
    builder.__qualname__ = builder.__name__ = external.card.name
    register_external(external.card, builder, external.checkpoint_filter, external.family)
    _DIGESTS[external.card.name] = external.digest
    return external.card.name, external.digest


def source_digest(name: str) -> str | None:
    """The source digest of the external network registered as ``name`` (None for zoo models): part of
    its ``--resume`` key, so an edited file is measured again."""
    return _DIGESTS.get(name)
