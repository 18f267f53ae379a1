"""External networks in ``--models``: the syntax, their cards, the cache keys, safe checkpoints, timm, and a
factory file measured by ``bench run`` and shown by ``bench report`` and ``bench compare`` like a built-in."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

import models
from bench.backends import Workload
from bench.backends.onnx import OnnxBackend
from bench.cli import main as cli_main
from bench.core.arguments import select_models
from bench.core.errors import BenchError
from bench.core.records.store import load_results
from models import external
from models.registry import get_preprocessing, is_external
from tests.conftest import assert_one_line_error, run_cli

FAST = ("--resolution", "64", "--warmup", "1", "--warmup-time", "0", "--iters", "3", "--min-time", "0", "--no-progress",
        "--processes", "1", "--budget", "0")  # fmt: skip

TINY = """
from torch import nn


class Tiny(nn.Module):
    def __init__(self, width=4):
        super().__init__()
        self.conv = nn.Conv2d(3, width, 3, stride=4, padding=1)
        self.head = nn.Linear(width, 10)

    def forward(self, x):
        return self.head(self.conv(x).relu().mean((2, 3)))


def tiny_net(width=4, img_size=224):
    return Tiny(width)


tiny_net.bench_card = {"family": "TinyNet", "top1": 12.5, "top1_source": "made up", "resolution": 64}


def not_a_module():
    return 42


def explodes(**kwargs):
    raise ValueError("no such width")
"""

SPEC = """
factory = "tiny.py:tiny_net"
name = "tiny_wide"
family = "TinyNet"
top1 = 70.5
top1_source = "a made-up paper, Table 1"
params_m = 0.01
[kwargs]
width = 16
[preprocessing]
resize = 80
crop = 64
normalize = false
"""


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "tiny.py").write_text(TINY)
    (tmp_path / "tiny_wide.toml").write_text(SPEC)
    return {"dir": tmp_path, "tiny": tmp_path / "tiny.py", "spec": tmp_path / "tiny_wide.toml"}


# ---------------------------------------------------------------------------------------------- syntax


def test_commas_inside_arguments_do_not_split_the_list() -> None:
    spec = "casvit_xs, a/b.py:f(w=1, d=[1, 2]), n=pkg.m:g(s='x,y', t={'k': (1, 2)}), timm:resnet18 ,"
    assert external.split_models(spec) == [
        "casvit_xs",
        "a/b.py:f(w=1, d=[1, 2])",
        "n=pkg.m:g(s='x,y', t={'k': (1, 2)})",
        "timm:resnet18",
    ]


def test_entry_forms() -> None:
    source = external.parse("wide=nets/my net.py:Net.small(width=2, dims=[32, 64], act='gelu')")
    assert (source.kind, source.target, source.attr, source.name) == ("file", "nets/my net.py", "Net.small", "wide")
    assert source.kwargs == {"width": 2, "dims": [32, 64], "act": "gelu"}
    source = external.parse("my_pkg.nets:build")
    assert (source.kind, source.target, source.attr, source.kwargs) == ("module", "my_pkg.nets", "build", {})
    source = external.parse("timm:vit_tiny_patch16_224(img_size=256)")
    assert (source.kind, source.target, source.kwargs) == ("timm", "vit_tiny_patch16_224", {"img_size": 256})
    assert external.is_external("net.py:f") and external.is_external("spec.toml") and not external.is_external("all")


@pytest.mark.parametrize(
    ("token", "fragment"),
    [
        ("net.py:f(w=print(1))", "is not a Python literal"),
        ("net.py:f(2)", "positional arguments"),
        ("net.py:f(w=1", "expected path/to/file.py:factory"),
        ("net.py:", "expected path/to/file.py:factory"),
        ("missing.toml", "model spec not found"),
    ],
)
def test_bad_entries(token: str, fragment: str) -> None:
    with pytest.raises(models.ModelError, match=fragment.replace("(", r"\(")):
        external.parse(token)


# ---------------------------------------------------------------------------------------- registration


def test_card_from_factory_attributes_and_from_a_spec(files: dict[str, Path]) -> None:
    names = select_models(f"casvit_xs,{files['tiny']}:tiny_net(width=8),{files['spec']},w2={files['tiny']}:tiny_net")
    assert names == ["casvit_xs", "tiny_net", "tiny_wide", "w2"]
    card = models.get_card("tiny_net")
    assert (card.family, card.default_resolution, card.top1, card.top1_source) == ("TinyNet", 64, 12.5, "made up")
    assert models.get_family("TinyNet").label == "TinyNet" and is_external("tiny_net")
    wide = models.get_card("tiny_wide")
    assert (wide.top1, wide.top1_source, wide.published_params_m, wide.display_name) == (
        70.5,
        "a made-up paper, Table 1",
        0.01,
        "tiny_wide",
    )
    pre = get_preprocessing("tiny_wide")
    assert (pre.resize, pre.crop, pre.mean, pre.std) == (80, 64, None, None)
    default = get_preprocessing("tiny_net")  # like CAS-ViT: int(crop / 0.875), ImageNet mean/std
    assert (default.resize, default.crop, default.interpolation) == (73, 64, "bicubic") and default.mean is not None
    assert models.create_model("tiny_wide").conv.out_channels == 16
    assert models.create_model("tiny_net").conv.out_channels == 8
    assert "tiny_net" not in models.list_models() and "TinyNet" not in models.list_families()


def test_names_must_not_clash(files: dict[str, Path]) -> None:
    with pytest.raises(BenchError, match="both named 'tiny_net'"):
        select_models(f"{files['tiny']}:tiny_net(width=8),{files['tiny']}:tiny_net(width=16)")
    with pytest.raises(models.ModelError, match="built-in model"):
        select_models(f"casvit_xs={files['tiny']}:tiny_net")


def test_a_changed_file_never_hits_a_stale_export(files: dict[str, Path], tmp_path: Path) -> None:
    token = f"{files['tiny']}:tiny_net"
    workload = Workload("tiny_net", 1, 64)

    def keys() -> tuple[str, str]:
        select_models(token)
        torch.manual_seed(0)
        model = models.create_model("tiny_net", img_size=64)
        return str(OnnxBackend().cache_path(model, workload, tmp_path)[0]), repr(model)

    first = keys()
    assert keys() == first  # the same file: the same export and GMACs keys
    files["tiny"].write_text(TINY.replace(".relu()", ".sigmoid()"))  # same weights, another network
    changed = keys()
    assert changed[0] != first[0] and changed[1] != first[1]


def test_checkpoint_loads_safely_into_an_external_model(files: dict[str, Path], tmp_path: Path) -> None:
    (name,) = select_models(f"{files['tiny']}:tiny_net")
    trained = models.create_model(name)
    state = {k: torch.randn_like(v) for k, v in trained.state_dict().items() if k != external.DIGEST_BUFFER}
    torch.save(state, tmp_path / "tiny.pth")
    loaded = models.create_model(name, checkpoint=tmp_path / "tiny.pth")
    assert torch.equal(loaded.head.weight, state["head.weight"])
    torch.save({"conv.weight": state["conv.weight"]}, tmp_path / "partial.pth")
    with pytest.raises(models.CheckpointError, match=r"missing keys: conv\.bias"):
        models.create_model(name, checkpoint=tmp_path / "partial.pth")


def test_factory_in_an_importable_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "my_nets_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "zoo.py").write_text(TINY)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert select_models("my_nets_pkg.zoo:tiny_net(width=2)") == ["tiny_net"]
    assert models.create_model("tiny_net").conv.out_channels == 2
    with pytest.raises(models.ModelError, match="has no 'nope'"):
        select_models("my_nets_pkg.zoo:nope")


def test_timm_entries_through_a_stand_in_timm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """timm itself cannot be installed beside this torch here; a stand-in with its API checks the wiring."""
    (tmp_path / "timm").mkdir()
    (tmp_path / "timm" / "__init__.py").write_text(
        TINY
        + """
__version__ = "0.0-test"


def is_model(name):
    return name == "tiny_timm"


def create_model(name, pretrained=False, **kwargs):
    assert not pretrained
    return Tiny(**kwargs)


def get_pretrained_cfg(name):
    return {"input_size": (3, 96, 96), "crop_pct": 0.9, "interpolation": "bilinear", "mean": (0.5,) * 3,
            "std": (0.5,) * 3}
"""
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "timm", raising=False)
    assert select_models("timm:tiny_timm(width=3)") == ["tiny_timm"]
    card = models.get_card("tiny_timm")
    pre = get_preprocessing("tiny_timm")
    assert card.default_resolution == 96 and (pre.resize, pre.crop, pre.interpolation) == (106, 96, "bilinear")
    assert models.create_model("tiny_timm").conv.out_channels == 3
    with pytest.raises(models.ModelError, match="has no model 'resnet_nope'"):
        select_models("timm:resnet_nope")


# ------------------------------------------------------------------------------------------ command line


@pytest.mark.skipif(importlib.util.find_spec("timm") is not None, reason="timm is installed here")
def test_timm_missing_is_one_line() -> None:
    proc = run_cli("list", "--models", "timm:resnet18")
    assert_one_line_error(proc, "timm:resnet18 needs timm", "pip install '.[timm]'")


@pytest.mark.parametrize(
    ("body", "factory", "fragment"),
    [
        ("def f(:\n", "f", "SyntaxError"),
        ("import no_such_package_here\n", "f", "ModuleNotFoundError"),
        (TINY, "nope", "has no 'nope'"),
    ],
)
def test_import_problems_stop_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], body: str, factory: str, fragment: str
) -> None:
    (tmp_path / "broken.py").write_text(body)
    assert cli_main(["list", "--models", f"{tmp_path / 'broken.py'}:{factory}"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "broken.py" in lines[0] and fragment in lines[0], lines


def test_run_report_and_compare_an_external_network(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "results"
    tiny = files["tiny"]
    entries = f"{tiny}:tiny_net(width=8),{files['spec']},bad={tiny}:not_a_module,boom={tiny}:explodes"
    proc = run_cli(
        "run",
        "--backend",
        "torch",
        "--models",
        entries,
        *FAST,
        "--rounds",
        "1",
        "--out",
        str(out),
        "--cache-dir",
        str(tmp_path / "cache"),
    )
    assert proc.returncode == 1, proc.stderr  # two rows failed, the others were measured
    assert "tiny.py:not_a_module: the factory returned builtins.int, not a torch.nn.Module" in proc.stderr
    assert "tiny.py:explodes: the factory raised ValueError: no such width" in proc.stderr
    summary, _, _ = load_results([out])
    status = dict(zip(summary["model"], summary["status"], strict=True))
    assert status == {"tiny_net": "ok", "tiny_wide": "ok", "bad": "failed", "boom": "failed"}
    row = summary.set_index("model").loc["tiny_wide"]
    assert row["family"] == "TinyNet" and row["param_count"] > 0 and row["infer_gmacs"] > 0

    capsys.readouterr()
    report_dir = tmp_path / "report"
    assert cli_main(["report", "--results", str(out), "--out", str(report_dir), "--models", entries]) == 0
    table = (report_dir / "table.md").read_text()
    assert "tiny_net" in table and "tiny_wide" in table and "TinyNet" in table
    facts = pd.read_csv(report_dir / "measurements.csv").set_index("model")
    assert facts.loc["tiny_wide", "top1"] == 70.5 and facts.loc["tiny_wide", "family"] == "TinyNet"
    assert (report_dir / "latency_vs_top1.png").stat().st_size > 0
    assert "a made-up paper, Table 1" in table

    capsys.readouterr()
    argv = ["compare", str(out), str(out), "--models", entries, "--format", "json", "--allow-untested"]
    assert cli_main(argv) == 0  # one round each: a headline, but no interval to judge a change by
    compared = json.loads(capsys.readouterr().out)
    assert {r["model"] for r in compared} == {"tiny_net", "tiny_wide"}
    assert {r["verdict"] for r in compared} <= {"untested (no interval)", "not judged (unstable)"}
