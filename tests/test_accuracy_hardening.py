"""`bench accuracy` on hostile folders and broken models (issue 20, classes 1-6): each probe builds its bad
input and goes through the command line; the expected answer is a one-line error (exit 2), a failed
result with the other models kept (exit 1), or correct counts with what was skipped said.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from bench.core.scoring.accuracy_results import PARTIAL_FILE, PER_CLASS_FILE, RESULT_FILE
from tests.conftest import REPO, assert_one_line_error, pause_env, signal_when_paused
from tests.test_accuracy import GREY_NET, _image_folder

NETS = (
    GREY_NET
    + '''

class Broken(nn.Module):
    def forward(self, x):
        raise RuntimeError("this network cannot run at this size")


def broken_forward():
    return Broken()


def not_a_network():
    return 3


def raising_factory():
    raise RuntimeError("factory exploded")


class Wide(nn.Module):
    """1000 ImageNet classes: the logit of class i is minus the distance of the image's mean to i / 999."""

    def forward(self, x):
        g = x.mean(dim=(1, 2, 3))
        return -((g[:, None] - torch.linspace(0, 1, 1000)[None, :]) ** 2)


def wide_net():
    return Wide()


wide_net.bench_card = {"resolution": 32, "family": "Wide", "preprocessing": {"normalize": False}}
'''
)


@pytest.fixture(scope="module")
def nets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("nets") / "nets.py"
    path.write_text(NETS)
    return path


def _args(nets: Path, data: Path, out: Path, *extra: str, model: str = "grey_net") -> list[str]:
    return ["accuracy", "--models", f"{nets}:{model}", "--data", str(data), "--out", str(out), "--no-progress",
            "--batch-size", "4", "--workers", "1", *extra]  # fmt: skip


def _document(out: Path) -> dict:
    (path,) = out.glob(f"*/{RESULT_FILE}")
    return json.loads(path.read_text())


# ---------------------------------------------------------------------------------- class 1: tracebacks


def test_folder_and_image_names_that_are_not_utf8(nets: Path, tmp_path: Path, cli) -> None:
    data = _image_folder(tmp_path / "data")
    odd = os.path.join(os.fsencode(data), b"class\xff-odd")
    os.rename(os.fsencode(data / "class5"), odd)  # still sorts after class4: label 5
    os.rename(os.path.join(odd, b"img0.png"), os.path.join(odd, b"\xfe.png"))
    proc = cli(*_args(nets, data, tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    (result,) = _document(tmp_path / "out")["results"]
    assert (result["images"], result["correct_top1"]) == (10, 6)
    names = {r["class_name"] for r in csv.DictReader((next((tmp_path / "out").glob("*")) / PER_CLASS_FILE).open())}
    assert "class\\xff-odd" in names


def test_dangling_symlink_is_an_unreadable_image(nets: Path, tmp_path: Path, cli) -> None:
    data = _image_folder(tmp_path / "data")
    (data / "class0" / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    assert_one_line_error(cli(*_args(nets, data, tmp_path / "out")), "gone.jpg", "dangling symbolic link")
    proc = cli(*_args(nets, data, tmp_path / "out", "--skip-unreadable"))
    assert proc.returncode == 0, proc.stderr
    (result,) = _document(tmp_path / "out")["results"]
    assert result["images"] == 10 and result["skipped_unreadable"] == 1
    assert result["skipped_examples"][0].endswith("gone.jpg")


def test_a_broken_model_is_a_failed_result_and_the_next_model_goes_on(nets: Path, tmp_path: Path, cli) -> None:
    data = _image_folder(tmp_path / "data")
    models = ",".join(f"{nets}:{f}" for f in ("grey_net", "broken_forward", "not_a_network", "raising_factory"))
    proc = cli("accuracy", "--models", models, "--data", str(data), "--out", str(tmp_path / "out"), "--no-progress")
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    results = {r["model"]: r for r in _document(tmp_path / "out")["results"]}
    assert results["grey_net"]["status"] == "ok" and results["grey_net"]["correct_top1"] == 6
    for name, fragment in (
        ("broken_forward", "cannot run at this size"),
        ("not_a_network", "int"),
        ("raising_factory", "factory exploded"),
    ):
        assert results[name]["status"] == "failed" and fragment in results[name]["error"], results[name]
        assert f"{name}: failed" in proc.stderr
    assert "results:" in proc.stdout and "grey_net" in proc.stdout


def test_flops_of_a_model_whose_forward_fails_is_one_line(nets: Path, cli) -> None:
    proc = cli("flops", "--models", f"{nets}:broken_forward")
    assert proc.returncode in (1, 2) and "Traceback" not in proc.stderr, proc.stderr
    assert "cannot run at this size" in proc.stderr


# --------------------------------------------------------------------------- class 2: wrong accuracy


def test_symlink_loop_inside_a_class_folder_counts_each_image_once(nets: Path, tmp_path: Path, cli) -> None:
    data = _image_folder(tmp_path / "data")
    (data / "class2" / "again").symlink_to(data / "class2", target_is_directory=True)
    proc = cli(*_args(nets, data, tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    (result,) = _document(tmp_path / "out")["results"]
    assert result["images"] == 10


def test_every_image_unreadable_is_an_error_not_zero_images_scored(nets: Path, tmp_path: Path, cli) -> None:
    data = tmp_path / "data"
    for folder in range(6):
        (data / f"c{folder}").mkdir(parents=True)
        (data / f"c{folder}" / "x.jpg").write_bytes(b"not an image")
    proc = cli(*_args(nets, data, tmp_path / "out", "--skip-unreadable"))
    assert_one_line_error(proc, "no image", "could be read", "nothing was scored")


def test_labels_file_listing_an_image_twice_with_two_labels(nets: Path, tmp_path: Path, cli) -> None:
    flat = tmp_path / "flat"
    flat.mkdir()
    Image.new("RGB", (8, 8)).save(flat / "a.png")
    labels = tmp_path / "val.txt"
    labels.write_text("a.png 1\nb.png 2\na.png 3\n")
    assert_one_line_error(cli(*_args(nets, flat, tmp_path / "out", "--labels", str(labels))), "a.png twice", "1", "3")


def test_images_per_second_is_each_runtimes_own_rate(nets: Path, tmp_path: Path, cli) -> None:
    data = _image_folder(tmp_path / "data")
    proc = cli(*_args(nets, data, tmp_path / "out", "--backend", "torch,onnx", "--onnx-exporter", "torchscript",
                      "--cache-dir", str(tmp_path / "cache")))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    for r in _document(tmp_path / "out")["results"]:
        assert r["images_per_s"] == pytest.approx(r["images"] / r["predict_seconds"], rel=0.02, abs=0.02)


# ------------------------------------------------------------------------- class 3: bounded work


def test_a_long_thin_png_and_a_named_pipe_are_refused_not_decoded(nets: Path, tmp_path: Path) -> None:
    data = _image_folder(tmp_path / "data")
    Image.new("L", (1, 20000)).save(data / "class1" / "thin.png")
    os.mkfifo(data / "class3" / "pipe.jpg")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    base = [sys.executable, "-m", "bench", *_args(nets, data, tmp_path / "out")]
    proc = subprocess.run(base, env=env, capture_output=True, text=True, timeout=120)
    assert_one_line_error(proc, "pipe.jpg", "named pipe")
    proc = subprocess.run([*base, "--skip-unreadable"], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    (result,) = _document(tmp_path / "out")["results"]
    assert result["images"] == 10 and result["skipped_unreadable"] == 2
    assert any(e.endswith("thin.png") for e in result["skipped_examples"])


# ------------------------------------------------------------------------ class 4: misleading messages


def test_labels_with_an_image_folder_says_so(nets: Path, tmp_path: Path, cli) -> None:
    data = _image_folder(tmp_path / "data")
    labels = tmp_path / "val.txt"
    labels.write_text("img0.png 0\n")
    assert_one_line_error(cli(*_args(nets, data, tmp_path / "out", "--labels", str(labels))), "is an ImageFolder")


def test_kaggle_solution_with_a_byte_order_mark(nets: Path, tmp_path: Path, cli) -> None:
    flat = tmp_path / "flat"
    flat.mkdir()
    for n, value in ((1, 0), (2, 255)):
        Image.new("L", (40, 40), value).save(flat / f"ILSVRC2012_val_{n:08d}.png")
    solution = tmp_path / "LOC_val_solution.csv"
    solution.write_bytes(
        "\ufeffImageId,PredictionString\nILSVRC2012_val_00000001,n01440764 1 2 3 4\n"
        "ILSVRC2012_val_00000002,n15075141 5 6 7 8\n".encode()
    )
    proc = cli(*_args(nets, flat, tmp_path / "out", "--labels", str(solution), model="wide_net"))
    assert proc.returncode == 0, proc.stderr
    (result,) = _document(tmp_path / "out")["results"]
    assert (result["images"], result["correct_top1"]) == (2, 2)  # standard indices 0 and 999


# ------------------------------------------------------------------ class 5: interrupt and resume


def test_ctrl_c_keeps_the_images_scored_and_resume_finishes_them(nets: Path, tmp_path: Path) -> None:
    data = _image_folder(tmp_path / "data")
    out, marker = tmp_path / "out", tmp_path / "paused"
    argv = [sys.executable, "-m", "bench", *_args(nets, data, out, "--batch-size", "1")]
    # the command holds after its third image is scored (bench.core.measure.pause): Ctrl-C arrives at a known point
    env = pause_env("batch:3", marker)
    # a test runner started in the background ignores SIGINT, and the child would inherit that (the command
    # then never hears the Ctrl-C): the child gets the default disposition, as from a terminal
    proc = subprocess.Popen(
        argv,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    err = signal_when_paused(proc, marker, signal.SIGINT)
    assert proc.returncode == 130, err
    assert "3 image(s) of" in err and "--resume" in err and "Traceback" not in err
    (partial,) = out.glob(f"*/{PARTIAL_FILE}")
    assert json.loads(partial.read_text())["progress"]["position"] == 3
    assert not list(out.glob(f"*/{RESULT_FILE}")) or not _document(out)["results"]
    plain = {k: v for k, v in env.items() if not k.startswith("BENCH_PAUSE")}
    done = subprocess.run([*argv, "--resume"], env=plain, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "3 image(s) resumed" in done.stderr
    (result,) = _document(out)["results"]
    assert (result["images"], result["correct_top1"], result["correct_top5"]) == (10, 6, 8)
    assert not list(out.glob(f"*/{PARTIAL_FILE}"))


# ----------------------------------------------------------- class 6: a quick look is not ImageNet top-1


def test_synset_folders_holding_a_subset_get_the_standard_indices(nets: Path, tmp_path: Path, cli) -> None:
    data = tmp_path / "val"
    for wnid, value in (("n01440764", 0), ("n01443537", 0), ("n15075141", 255)):
        (data / wnid).mkdir(parents=True)
        Image.new("L", (40, 40), value).save(data / wnid / "a.png")
    proc = cli(*_args(nets, data, tmp_path / "out", model="wide_net"))
    assert proc.returncode == 0, proc.stderr
    document = _document(tmp_path / "out")
    (result,) = document["results"]
    assert result["classes"] == 1000 and result["correct_top1"] == 2  # n01440764 -> 0, n15075141 -> 999
    assert not result["imagenet_top1"]  # three images: never an ImageNet top-1
    assert document["data"]["name"].startswith("ImageNet-1k classes")
    rows = list(csv.DictReader((next((tmp_path / "out").glob("*")) / PER_CLASS_FILE).open()))
    assert {r["class_index"] for r in rows} == {"0", "1", "999"}
