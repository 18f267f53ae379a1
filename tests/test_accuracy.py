"""`bench accuracy`: exact top-1/top-5 on a synthetic ImageFolder (torch and ONNX Runtime), the official
preprocessing of every family against a reference computation, label files, bad input, and the report.

The network is known by construction: six classes at grey levels 0, 0.2, ..., 1.0, and the logits are
minus the squared distance between an image's mean value and each level. With solid-grey images whose
levels are chosen away from the midpoints, the rank of the true class of every image is fixed, so the
expected top-1/top-5 (and every per-class count) are exact.
"""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import models
from bench.commands import accuracy
from bench.core.errors import BenchError
from bench.core.report.reporting import load_report
from bench.core.report.tables import table_notes
from bench.core.scoring import accuracy_results, datasets
from models.registry import IMAGENET_MEAN, IMAGENET_STD, Preprocessing, center_box, get_preprocessing, resized_size
from tests.conftest import assert_one_line_error, run_cli
from tests.result_fixtures import environment, write_run

GREY_NET = """
import torch

import models
from torch import nn


class GreyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("levels", torch.linspace(0, 1, 6))

    def forward(self, x):
        g = x.mean(dim=(1, 2, 3))
        return -((g[:, None] - self.levels[None, :]) ** 2)


def grey_net():
    return GreyNet()


grey_net.bench_card = {"resolution": 32, "family": "Grey", "preprocessing": {"normalize": False}}
"""

# class -> grey values of its images (0, 51, ..., 255 are exactly the six levels)
IMAGES = {0: [0, 255], 1: [51, 0], 2: [102, 250], 3: [153], 4: [204], 5: [255, 10]}
# rank of the true class: 255 in class 0 -> 6th (top-5 miss); 0 in class 1 -> 2nd; 250 in class 2 -> 4th;
# 10 in class 5 -> 6th. Six images are exact levels (rank 1).
EXPECTED = {  # class: (images, top-1 correct, top-5 correct)
    0: (2, 1, 1),
    1: (2, 1, 2),
    2: (2, 1, 2),
    3: (1, 1, 1),
    4: (1, 1, 1),
    5: (2, 1, 1),
}


def _image_folder(root: Path, classes: int = 6) -> Path:
    for label, values in IMAGES.items():
        if label >= classes:
            continue
        folder = root / f"class{label}"
        folder.mkdir(parents=True)
        for i, value in enumerate(values):  # different sizes and modes, so resize and conversion both run
            size = (48 + 7 * i, 40 + 3 * label)
            if i == 0:
                Image.new("L", size, value).save(folder / f"img{i}.png")
            else:
                Image.new("RGB", size, (value, value, value)).save(folder / f"img{i}.jpg", quality=100)
    return root


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("accuracy")
    factory = root / "grey.py"
    factory.write_text(GREY_NET)
    data = _image_folder(root / "data")
    (data / "class3" / "broken.jpg").write_bytes(b"this is not a JPEG")
    checkpoint = root / "grey.pth"
    torch.save({"levels": torch.linspace(0, 1, 6)}, checkpoint)
    return {"root": root, "factory": factory, "data": data, "checkpoint": checkpoint}


@pytest.fixture(scope="module")
def evaluated(setup: dict[str, Path]) -> dict[str, object]:
    out = setup["root"] / "results"
    proc = run_cli(
        "accuracy",
        "--models",
        f"{setup['factory']}:grey_net",
        "--data",
        str(setup["data"]),
        "--checkpoint",
        str(setup["checkpoint"]),
        "--backend",
        "torch,onnx",
        "--onnx-exporter",
        "torchscript",
        "--batch-size",
        "4",
        "--skip-unreadable",
        "--out",
        str(out),
        "--cache-dir",
        str(setup["root"] / "cache"),
        "--no-progress",
    )
    assert proc.returncode == 0, proc.stderr
    (run_dir,) = [p.parent for p in out.glob(f"*/{accuracy.RESULT_FILE}")]
    return {
        "proc": proc,
        "out": out,
        "document": json.loads((run_dir / accuracy.RESULT_FILE).read_text()),
        "per_class": list(csv.DictReader((run_dir / accuracy.PER_CLASS_FILE).open())),
    }


# ------------------------------------------------------------------------------------ exact accuracy


def test_exact_top1_top5_on_torch_and_onnx(evaluated: dict[str, object], setup: dict[str, Path]) -> None:
    document = evaluated["document"]
    results = {r["backend"]: r for r in document["results"]}
    assert set(results) == {"torch", "onnx"}
    for r in results.values():
        assert r["status"] == "ok" and r["model"] == "grey_net"
        assert (r["images"], r["correct_top1"], r["correct_top5"]) == (10, 6, 8)
        assert (r["top1"], r["top5"]) == (60.0, 80.0)
        assert r["skipped_unreadable"] == 1 and r["skipped_examples"][0].endswith("broken.jpg")
        assert r["classes"] == 6 and r["resolution"] == 32
        assert r["preprocessing"]["mean"] is None and r["preprocessing"]["resize"] == 36  # int(32 / 0.875)
        assert r["checkpoint"]["name"] == "grey.pth"
        assert r["checkpoint"]["sha256"] == hashlib.sha256(setup["checkpoint"].read_bytes()).hexdigest()
        assert r["weights"].startswith("grey.pth@")
        assert r["baseline_backend"] == "torch" and r["top1_drop"] == 0.0
    assert results["onnx"]["backend_detail"]["runtime"].startswith("ONNX Runtime")
    assert results["torch"]["data_content_sha256"] == results["onnx"]["data_content_sha256"]
    data = document["data"]
    assert (data["layout"], data["images"], data["classes"], data["evaluated"]) == ("imagefolder", 11, 6, 11)
    assert len(data["listing_sha256"]) == 64
    per_class = {
        (r["backend"], int(r["class_index"])): (int(r["images"]), int(r["correct_top1"]), int(r["correct_top5"]))
        for r in evaluated["per_class"]
    }
    for backend in ("torch", "onnx"):
        assert {c: per_class[(backend, c)] for c in EXPECTED} == EXPECTED
    stdout = evaluated["proc"].stdout
    assert "grey_net" in stdout and "60.00" in stdout and "80.00" in stdout
    assert "skipped 1 unreadable image(s)" in evaluated["proc"].stderr


def test_report_plots_measured_top1_with_the_checkpoint(
    tmp_path: Path, evaluated: dict[str, object], setup: dict[str, Path]
) -> None:
    root = tmp_path / "results"
    write_run(root, label="onnx", env=environment(), backend="onnx", models=("casvit_xs", "swiftformer_xs"))
    run_dir = root / "acc"
    run_dir.mkdir()
    document = json.loads(json.dumps(evaluated["document"]))
    for r in document["results"]:  # the grey network's measurement, filed as casvit_xs's
        r["model"] = "casvit_xs"
    document["results"][1]["top1"] = 12.5  # onnx: not the one shown while torch fp32 exists
    (run_dir / accuracy.RESULT_FILE).write_text(json.dumps(document))
    quick = accuracy_results.measured_top1([root])["casvit_xs"]  # 10 grey images: a quick check, kept apart
    assert quick["top1"] == 60.0 and not quick["replaces"]
    rows = load_report([root]).measurements.set_index("model")
    assert rows.loc["casvit_xs", "top1"] == models.get_card("casvit_xs").top1
    assert not bool(rows.loc["casvit_xs", "top1_measured"])
    assert (
        "quick check, not an ImageNet top-1: bench accuracy measured 60.00% on 10 images of folder 'data'"
        in (rows.loc["casvit_xs", "top1_source"])
    )
    assert str(setup["data"]) not in rows.loc["casvit_xs", "top1_source"]  # the data set's name, not its path
    for r in document["results"]:  # as if it were the full ImageNet val with these weights
        r["imagenet_top1"] = True
    (run_dir / accuracy.RESULT_FILE).write_text(json.dumps(document))
    measured = accuracy_results.measured_top1([root])
    assert measured["casvit_xs"]["top1"] == 60.0 and measured["casvit_xs"]["replaces"]
    report = load_report([root])
    rows = report.measurements.set_index("model")
    assert rows.loc["casvit_xs", "top1"] == 60.0 and bool(rows.loc["casvit_xs", "top1_measured"])
    assert rows.loc["casvit_xs", "top1_source"].startswith("measured here (bench accuracy, torch fp32)")
    assert "grey.pth@" in rows.loc["casvit_xs", "top1_source"]
    assert rows.loc["swiftformer_xs", "top1"] == models.get_card("swiftformer_xs").top1 and not bool(
        rows.loc["swiftformer_xs", "top1_measured"]
    )
    assert any("Top-1 source: measured here" in note for note in table_notes(report))


# ------------------------------------------------------------------------------------- preprocessing


def test_families_declare_their_official_preprocessing() -> None:
    deit = Preprocessing(256, 224, "bicubic", IMAGENET_MEAN, IMAGENET_STD)
    for name in ("casvit_xs", "swiftformer_xs", "efficientformer_l1", "efficientformerv2_s1"):
        pre = get_preprocessing(name)
        assert (pre.resize, pre.crop, pre.interpolation, pre.mean, pre.std) == (
            deit.resize,
            deit.crop,
            deit.interpolation,
            deit.mean,
            deit.std,
        )
    mvit = get_preprocessing("mobilevitv2_100")
    assert (mvit.resize, mvit.crop, mvit.interpolation, mvit.mean, mvit.std) == (288, 256, "bicubic", None, None)
    assert get_preprocessing("casvit_xs").at(64).resize == int(64 / 0.875) == 73
    assert get_preprocessing("casvit_xs").at(384).resize == int(384 / 0.875)


# image size -> (resized size, crop box) as torchvision's Resize(int) and CenterCrop compute them
GEOMETRY = {
    ("casvit_xs", (500, 375)): ((341, 256), (58, 16)),  # 256 * 500 / 375 = 341.3; (341 - 224) / 2 = 58.5 -> 58
    ("casvit_xs", (375, 500)): ((256, 341), (16, 58)),
    ("casvit_xs", (300, 300)): ((256, 256), (16, 16)),
    ("casvit_xs", (230, 700)): ((256, 779), (16, 278)),  # 256 * 700 / 230 = 779.1; (779 - 224) / 2 = 277.5 -> 278
    ("mobilevitv2_100", (500, 375)): ((384, 288), (64, 16)),
    ("mobilevitv2_100", (257, 331)): ((288, 370), (16, 57)),  # 288 * 331 / 257 = 370.9; 57.0
}


@pytest.mark.parametrize(("model", "size"), list(GEOMETRY))
def test_preprocessing_matches_the_reference_pipeline(model: str, size: tuple[int, int]) -> None:
    resized, (left, top) = GEOMETRY[(model, size)]
    pre = get_preprocessing(model)
    rng = np.random.default_rng(sum(size))
    image = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    assert resized_size(*size, pre.resize) == resized
    assert center_box(*resized, pre.crop)[:2] == (left, top)
    reference = image.resize(resized, Image.Resampling.BICUBIC).crop((left, top, left + pre.crop, top + pre.crop))
    expected = np.asarray(reference, dtype=np.float32) / 255.0
    if pre.mean is not None:
        expected = (expected - np.array(IMAGENET_MEAN, np.float32)) / np.array(IMAGENET_STD, np.float32)
    got = pre.apply(image)
    assert got.shape == (3, pre.crop, pre.crop) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected.transpose(2, 0, 1), rtol=0, atol=1e-6)


# ------------------------------------------------------------------------------------ data and labels


def test_limit_spreads_over_every_class(setup: dict[str, Path]) -> None:
    data = datasets.scan(setup["data"], None)
    assert data.classes == [f"class{i}" for i in range(6)]
    assert [i.label for i in data.items] == [0, 0, 1, 1, 2, 2, 3, 3, 4, 5, 5]
    assert [i.label for i in datasets.subset(data.items, 5)] == [0, 1, 2, 3, 4]


def test_flat_folder_with_ilsvrc_label_files(tmp_path: Path) -> None:
    flat = tmp_path / "val"
    flat.mkdir()
    for n in (1, 2, 3):
        Image.new("RGB", (8, 8)).save(flat / f"ILSVRC2012_val_{n:08d}.JPEG")
    index_file = tmp_path / "val.txt"
    index_file.write_text(
        "ILSVRC2012_val_00000001.JPEG 65\nILSVRC2012_val_00000002.JPEG 970\nILSVRC2012_val_00000003.JPEG 0\n"
    )
    data = datasets.scan(flat, index_file)
    assert [i.label for i in data.items] == [65, 970, 0] and data.classes is None
    kaggle = tmp_path / "LOC_val_solution.csv"
    kaggle.write_text(
        "ImageId,PredictionString\nILSVRC2012_val_00000001,n01751748 1 2 3 4\n"
        "ILSVRC2012_val_00000002,n01440764 5 6 7 8\nILSVRC2012_val_00000003,n09999999 1 1 1 1\n"
    )
    data = datasets.scan(flat, kaggle)
    assert data.classes == ["n01440764", "n01751748", "n09999999"] and [i.label for i in data.items] == [1, 0, 2]
    from scipy.io import savemat

    devkit = tmp_path / "devkit"
    devkit.mkdir()
    synsets = np.zeros(4, dtype=[("ILSVRC2012_ID", "O"), ("WNID", "O"), ("num_children", "O")])
    for i, (sid, wnid, children) in enumerate([(1, "n02", 0), (2, "n01", 0), (3, "n00", 0), (1001, "n99", 3)]):
        synsets[i] = (sid, wnid, children)
    savemat(devkit / "meta.mat", {"synsets": synsets})
    truth = devkit / "ILSVRC2012_validation_ground_truth.txt"
    truth.write_text("1\n3\n2\n")
    data = datasets.scan(flat, truth)
    assert data.classes == ["n00", "n01", "n02"] and [i.label for i in data.items] == [2, 0, 1]
    (devkit / "meta.mat").unlink()
    with pytest.raises(BenchError, match=r"meta\.mat"):
        datasets.scan(flat, truth)
    index_file.write_text("ILSVRC2012_val_00000001.JPEG 65\n")
    with pytest.raises(BenchError, match="no label for 2 image"):
        datasets.scan(flat, index_file)


# ---------------------------------------------------------------------------------------- bad input


def _accuracy(setup: dict[str, Path], data: Path, *extra: str):
    return run_cli(
        "accuracy",
        "--models",
        f"{setup['factory']}:grey_net",
        "--data",
        str(data),
        "--out",
        str(setup["root"] / "bad-results"),
        "--no-progress",
        *extra,
    )


def test_missing_folder_and_no_images(setup: dict[str, Path], tmp_path: Path) -> None:
    assert_one_line_error(_accuracy(setup, tmp_path / "nowhere"), "no such folder", "nowhere")
    (tmp_path / "empty" / "class0").mkdir(parents=True)
    (tmp_path / "empty" / "class0" / "notes.txt").write_text("no images here")
    assert_one_line_error(_accuracy(setup, tmp_path / "empty"), "holds no images")


def test_unreadable_image_names_the_file(setup: dict[str, Path]) -> None:
    assert_one_line_error(_accuracy(setup, setup["data"]), "cannot read image", "broken.jpg", "--skip-unreadable")


def test_class_count_must_match_the_head(setup: dict[str, Path], tmp_path: Path) -> None:
    data = _image_folder(tmp_path / "four", classes=4)
    assert_one_line_error(_accuracy(setup, data), "4 class folders", "grey_net has 6 outputs")
