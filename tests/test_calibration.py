"""int8 calibrated on the user's images (``--calibration DIR``), scored with ``bench accuracy --precision
fp32,int8`` on a network whose int8 top-1 is known, and the paired drop's interval.

The network is known by construction: the six grey levels of ``tests/test_accuracy.py``'s image folder, told
apart by a linear head on the image's mean value (logit ``2 l g - l**2`` ranks the classes as ``-(g - l)**2``).
Its weights are exact in int8 (one weight per output channel), and the closest two logits of any image
differ by 0.024, three quantization steps of a uint8 range over [-1, 1]: quantized on these images, it
scores exactly what fp32 scores, image by image.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bench.core.errors import BenchError
from bench.core.interface.calibration import Calibration
from bench.core.scoring.accuracy import Tally, paired_drop
from tests.conftest import assert_one_line_error, run_cli
from tests.test_accuracy import IMAGES, _image_folder

LEVEL_NET = """
import torch
from torch import nn


class LevelNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.mix = nn.Conv2d(3, 1, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(1, 6)
        levels = torch.linspace(0, 1, 6)
        with torch.no_grad():
            self.mix.weight.fill_(1 / 3)
            self.mix.bias.zero_()
            self.head.weight.copy_(2 * levels[:, None])
            self.head.bias.copy_(-(levels**2))

    def forward(self, x):
        return self.head(self.pool(self.mix(x)).flatten(1))


def level_net():
    return LevelNet()


level_net.bench_card = {"resolution": 32, "family": "Level", "preprocessing": {"normalize": False}}
"""
TOP1_RIGHT = 6  # of the ten images: as GreyNet (tests/test_accuracy.py), the same ranking


@pytest.fixture(scope="module")
def level_setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("levels")
    (root / "levelnet.py").write_text(LEVEL_NET)
    return root / "levelnet.py", _image_folder(root / "data")


QUANTIZER = {"onnx": "quantize_static", "openvino": "nncf.quantize", "executorch": "XNNPACKQuantizer"}
"""Each runtime's own post-training tool, as its rows name it. LiteRT is not here: litert-torch cannot convert
this network even in fp32 ("'arith.constant' op integer return type must be signless", whether it pools with
a mean, an average pool or an adaptive one, its head linear or a 1x1 conv); tests/test_int8_litert.py checks
its int8 on CAS-ViT by agreement."""


@pytest.mark.parametrize("backend", sorted(QUANTIZER))
def test_int8_calibrated_on_the_images_scores_exactly_what_fp32_scores(
    level_setup: tuple[Path, Path], tmp_path: Path, backend: str
) -> None:
    net, data = level_setup
    proc = run_cli("accuracy", "--models", f"{net}:level_net", "--data", str(data), "--backend", backend,
                   "--precision", "fp32,int8", "--calibration", str(data), "--batch-size", "2", "--workers", "1",
                   "--no-progress", "--out", str(tmp_path / "acc"), "--cache-dir", str(tmp_path / "cache"))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (doc,) = (tmp_path / "acc").glob("*/accuracy.json")
    results = {r["precision"]: r for r in json.loads(doc.read_text())["results"]}
    images = sum(len(v) for v in IMAGES.values())
    assert {p: r["correct_top1"] for p, r in results.items()} == {"fp32": TOP1_RIGHT, "int8": TOP1_RIGHT}
    int8 = results["int8"]
    assert int8["images"] == images and int8["baseline_backend"] == backend and int8["baseline_precision"] == "fp32"
    assert (int8["top1_drop"], int8["top1_changed"]) == (0, 0)  # image by image, not just in total
    assert int8["top1_drop_ci_low"] == int8["top1_drop_ci_high"] == 0
    assert QUANTIZER[backend] in int8["backend_detail"]["quantization"]
    assert f"{images} images of data" in int8["backend_detail"]["quantization"]  # every image (fewer than 32)
    assert "int8" in proc.stdout and "fp32" in proc.stdout


def test_calibration_images_are_a_seeded_choice_whose_bytes_key_the_artifact(level_setup) -> None:
    _, data = level_setup
    first, again = Calibration.from_folder(data, 4, seed=3), Calibration.from_folder(data, 4, seed=3)
    assert first == again and first.images == 4 and len(set(first.files)) == 4
    assert Calibration.from_folder(data, 4, seed=4).files != first.files
    batches = first.batches((3, 3, 32, 32), "casvit_xs")
    assert [b.shape for b in batches] == [(3, 3, 32, 32), (3, 3, 32, 32)]  # 4 images, the last batch filled up
    assert np.array_equal(batches[1][1], batches[0][0])
    Path(first.files[0]).write_bytes(Path(first.files[1]).read_bytes())  # an edited image: another artifact
    assert Calibration.from_folder(data, 4, seed=3).key() != first.key()


def test_a_recipe_is_keyed_and_described_with_its_calibration_set() -> None:
    recipe = {"tool": "some quantizer", "weights": "int8"}
    synthetic = Calibration()
    assert synthetic.recipe_key(recipe) == {**recipe, "calibration": synthetic.key()}
    described = f"tool: some quantizer; weights: int8; calibration: {synthetic.describe()}"
    assert synthetic.recipe_detail(recipe) == described
    assert Calibration(images=8).recipe_key(recipe) != synthetic.recipe_key(recipe)  # another set, another artifact


def test_bad_calibration_input_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(BenchError, match="no such folder"):
        Calibration.from_folder(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BenchError, match="holds no image files"):
        Calibration.from_folder(tmp_path / "empty")
    tiny = ["--models", "casvit_xs", "--resolution", "64", "--out", str(tmp_path / "r")]
    proc = run_cli("run", "--backend", "onnx", "--calibration", str(tmp_path / "empty"), *tiny)
    assert_one_line_error(proc, "--calibration applies to quantized precisions", "--precision fp32")
    proc = run_cli("run", "--backend", "onnx", "--precision", "int8", "--calibration", str(tmp_path / "empty"), *tiny)
    assert_one_line_error(proc, "--calibration", "holds no image files")


def test_the_paired_drop_rests_on_the_images_whose_verdicts_differ() -> None:
    def tally(hits: list[bool]) -> Tally:
        t = Tally("onnx", None, 2, {})
        t.hits = np.array(hits)
        return t

    base = tally([True] * 80 + [False] * 20)
    same_total = tally([False] * 10 + [True] * 70 + [True] * 10 + [False] * 10)  # 10 lost, 10 gained
    drop, low, high, changed = paired_drop(base, same_total)  # type: ignore[misc]
    assert (drop, changed) == (0.0, 20) and low < 0 < high  # equal totals, yet not the same images
    assert paired_drop(base, base) == (0.0, 0.0, 0.0, 0)
    worse = tally([False] * 5 + [True] * 75 + [False] * 20)
    drop, low, high, changed = paired_drop(base, worse)  # type: ignore[misc]
    assert drop == pytest.approx(5.0) and changed == 5 and 0 < low < drop < high
    assert paired_drop(base, tally([True] * 10)) is None  # not the same images


def test_an_int8_top1_never_stands_in_the_report_top1_column(tmp_path: Path) -> None:
    """The tables' top-1 is the float network's: an int8 result (even a full-ImageNet one) is not picked."""
    from bench.core.records import schema
    from bench.core.scoring.accuracy_results import measured_top1

    def result(precision: str, top1: float) -> schema.AccuracyResult:
        facts = {"model": "casvit_xs", "backend": "onnx", "status": "ok", "imagenet_top1": True}
        return schema.AccuracyResult(**facts, top1=top1, precision=precision, baseline_backend="onnx",
                                     baseline_precision=precision)  # fmt: skip

    (tmp_path / "int8").mkdir()
    (tmp_path / "int8" / "accuracy.json").write_text(
        schema.AccuracyDocument(run_id="q", results=[result("int8", 77.0)]).to_json()
    )
    assert measured_top1([tmp_path]) == {}
    (tmp_path / "fp32").mkdir()
    (tmp_path / "fp32" / "accuracy.json").write_text(
        schema.AccuracyDocument(run_id="f", results=[result("fp32", 78.5)]).to_json()
    )
    assert measured_top1([tmp_path])["casvit_xs"]["top1"] == 78.5


def test_the_speedup_table_shows_the_top1_each_runtime_lost_beside_its_speedup(
    level_setup: tuple[Path, Path], tmp_path: Path
) -> None:
    """Issue 29 item 6: the speedup table carries the top-1 drop measured by ``bench accuracy --precision`` on the
    same runtime, when the accuracy results sit beside the timed sitting."""
    net, data = level_setup
    common = ["--models", f"{net}:level_net", "--backend", "onnx", "--precision", "fp32,int8", "--calibration",
              str(data), "--cache-dir", str(tmp_path / "cache")]  # fmt: skip
    proc = run_cli("accuracy", *common, "--data", str(data), "--batch-size", "2", "--workers", "1", "--no-progress",
                   "--out", str(tmp_path / "results"))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("run", *common, "--resolution", "32", "--rounds", "3", "--iters", "5", "--warmup", "1",
                   "--min-time", "0", "--no-flops", "--no-progress", "--threads", "1",
                   "--out", str(tmp_path / "results"))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("report", "--results", str(tmp_path / "results"), "--out", str(tmp_path / "report"), "--no-plots")
    assert proc.returncode == 0, proc.stderr
    table = (tmp_path / "report" / "speedup.md").read_text()
    header = next(line for line in table.splitlines() if line.startswith("| Model"))
    assert "top-1 drop (pp)" in header
    (row,) = [line for line in table.splitlines() if line.startswith("| ") and line != header and "*" not in line]
    assert row.rstrip(" |").endswith("0.0 (+0.0/−0.0)")  # int8 lost no image: drop 0 with its paired interval
    assert f"{sum(len(v) for v in IMAGES.values())} images of data" in table  # the note says what was scored
