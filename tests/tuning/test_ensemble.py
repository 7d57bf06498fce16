"""`steelinspect ensemble` (tuning/ensemble.py) and ensembles of members at different sizes (runs/ensemble.py)."""

import json
import shutil

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from steelinspect.data.images import read_gray
from steelinspect.data.transforms import Preprocess, area_shrink
from steelinspect.infer.cascade import Cascade, PredictConfig, predict
from steelinspect.infer.engines import make_engine
from steelinspect.runs.ensemble import Ensemble, average_as_logits, load_model, member_input
from steelinspect.runs.store import load_run
from tests.cli_runner import run_main

TINY = ("--epochs", "1", "--batch-size", "8", "--workers", "0", "--device", "cpu", "--seed", "0")


@pytest.fixture(scope="module")
def tiled_run(synth_dir, tmp_path_factory):
    """Step 2 on 64-wide tiles of 64x256 images, the same data and seed as tiny_runs' 64x128 step 2 (so the same
    split). Shared by this module, do not modify."""
    out = tmp_path_factory.mktemp("tiled") / "multiclass"
    code, _, err = run_main("train", "multiclass", synth_dir, "--out", out, "--image-size", "64x256",
                            "--tile-width", "64", *TINY)
    assert code == 0, err
    return out


@pytest.fixture(scope="module")
def combined(tiny_runs, tiled_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("combined") / "step2"
    code, stdout, err = run_main("ensemble", tiny_runs["multiclass"], tiled_run, "--out", out, "--workers", "0",
                                 "--device", "cpu")
    assert code == 0, err
    assert "64x128, 64x256 in 64-wide tiles" in stdout and "the ensemble" in stdout
    return out


def test_area_shrink_is_opencvs_inter_area():
    image = np.random.default_rng(0).integers(0, 256, (100, 700)).astype(np.float32)
    for size in ((50, 350), (37, 213), (100, 416)):  # a multiple, neither side a multiple, one side unchanged
        want = cv2.resize(image, size[::-1], interpolation=cv2.INTER_AREA)
        got = area_shrink(torch.from_numpy(image), size).numpy()
        assert got.shape == size and np.abs(got - want).max() < 1e-3


@pytest.mark.parametrize("norm", ["image", "fixed"])
def test_a_smaller_members_input_is_its_own_preprocessing(synth_dir, norm):
    big, small = Preprocess(256, 1600, norm=norm), Preprocess(128, 416, norm=norm)
    gray = read_gray(sorted((synth_dir / "train_images").iterdir())[0])
    own = small(gray)
    via = member_input(torch.from_numpy(big(gray))[None], big, small)[0].numpy()
    # What remains is OpenCV's rounding to 8 bits after its own resize (half a grey level).
    assert via.shape == own.shape and np.abs(via - own).mean() < 0.02 and np.abs(via - own).max() < 0.15


def test_members_at_different_sizes_are_each_fed_their_own(tiny_runs, tiled_run, synth_dir):
    ensemble = load_model([tiny_runs["multiclass"], tiled_run])
    assert isinstance(ensemble, Ensemble) and ensemble.preprocess.size == (64, 256)  # the largest member's
    paths = sorted((synth_dir / "train_images").iterdir())[:6]
    grays = [read_gray(p) for p in paths]
    x = torch.from_numpy(np.stack([ensemble.preprocess(g) for g in grays]))
    members = [load_run(tiny_runs["multiclass"]), load_run(tiled_run)]
    with torch.inference_mode():
        alone = [m.model(torch.from_numpy(np.stack([m.preprocess(g) for g in grays]))) for m in members]
        got = torch.sigmoid(ensemble.model(x))
    want = torch.sigmoid(average_as_logits(alone, "multilabel"))
    assert torch.allclose(got, want, atol=0.02)  # 8-bit rounding apart, each member sees its own input
    # Every engine feeds the members the same way, a member on ONNX Runtime included.
    engine = make_engine(ensemble, PredictConfig(device="cpu", engine="torch"))
    assert np.allclose(torch.sigmoid(torch.from_numpy(engine(x.numpy()))), got, atol=1e-5)


def test_an_ensemble_at_two_sizes_runs_on_onnx_runtime(tiny_runs, tiled_run, synth_dir, tmp_path):
    pytest.importorskip("onnxruntime")
    runs = [shutil.copytree(tiny_runs["multiclass"], tmp_path / "strip"), shutil.copytree(tiled_run, tmp_path / "tiles")]
    for run in runs:
        code, _, err = run_main("export", run, "--format", "onnx")
        assert code == 0, err
    ensemble = load_model(runs)
    x = np.stack([ensemble.preprocess(read_gray(p)) for p in sorted((synth_dir / "train_images").iterdir())[:4]])
    torch_engine = make_engine(ensemble, PredictConfig(device="cpu", engine="torch"))
    onnx_engine = make_engine(ensemble, PredictConfig(device="cpu", engine="onnx"))
    assert onnx_engine.name == "onnx"
    assert np.allclose(torch_engine(x), onnx_engine(x), atol=1e-4)


def test_members_that_cannot_share_an_input_are_refused_in_one_line(tiny_runs, tiled_run, synth_dir, tmp_path):
    fixed = shutil.copytree(tiny_runs["multiclass"], tmp_path / "fixed")
    blob = torch.load(fixed / "model.pt", weights_only=True)
    blob["preprocess"]["norm"] = "fixed"
    torch.save(blob, fixed / "model.pt")
    tall = shutil.copytree(tiny_runs["multiclass"], tmp_path / "tall")
    blob = torch.load(tall / "model.pt", weights_only=True)
    blob["preprocess"]["height"] = 96  # taller than the 64x256 member, yet smaller in area
    torch.save(blob, tall / "model.pt")
    for other, says in ((fixed, "must share their normalisation"), (tall, "must fit inside its largest input")):
        code, _, err = run_main("evaluate", tiled_run, other, "--data", synth_dir, "--out", tmp_path / "e.json")
        assert code == 1 and says in err and len(err.strip().splitlines()) == 1, err


def test_the_ensemble_folder_is_tuned_on_the_shared_validation_split(combined, tiny_runs, tiled_run, synth_dir):
    data = json.loads((combined / "ensemble.json").read_text())
    assert data["head"] == "multilabel" and len(data["thresholds"]) == 4
    assert [(combined / m).resolve() for m in data["members"]] == [tiny_runs["multiclass"].resolve(),
                                                                  tiled_run.resolve()]
    assert not any(m.startswith("/") for m in data["members"])  # relative: the folder moves with its members
    member_splits = json.loads((tiled_run / "splits.json").read_text())
    splits = json.loads((combined / "splits.json").read_text())
    assert splits["val"] == member_splits["val"] and splits["test"] == member_splits["test"]
    assert data["tuned_on"] == f"the members' shared validation split ({len(splits['val'])} images)"
    metrics = json.loads((combined / "metrics.json").read_text())
    assert metrics["thresholds"] == data["thresholds"] and metrics["val"]["n"] == len(splits["val"])
    assert len(metrics["members_test"]["f1"]) == 2
    # Loaded, it decides with its own thresholds; evaluate on the training data re-scores its splits.
    ensemble = load_model(combined)
    assert ensemble.thresholds == data["thresholds"] and ensemble.parent == combined
    code, _, err = run_main("evaluate", combined, "--data", synth_dir, "--workers", "0", "--device", "cpu")
    assert code == 0, err
    evaluation = json.loads((combined / "evaluation.json").read_text())
    assert evaluation["test"]["f1"] == pytest.approx(metrics["test"]["f1"])
    assert evaluation["val"]["f1"] == pytest.approx(metrics["val"]["f1"])
    # Predict takes the folder as --multiclass.
    images = sorted((synth_dir / "train_images").iterdir())[:4]
    config = PredictConfig(batch_size=2, workers=1, device="cpu", engine="torch")
    rows = pd.DataFrame(predict(images, Cascade.from_runs(tiny_runs["binary"], combined, config), config))
    assert len(rows) == 4 and rows["p_class_3"].between(0, 1).all()


def test_runs_that_do_not_share_a_split_are_refused_in_one_line(combined, tiny_runs, tiled_run, synth_dir, tmp_path,
                                                                 tiny_segment_run):
    other_seed = tmp_path / "seed1"
    code, _, err = run_main("train", "multiclass", synth_dir, "--out", other_seed, "--image-size", "64x128",
                            *TINY[:-2], "--seed", "1")
    assert code == 0, err
    cases = [
        ((tiny_runs["multiclass"], other_seed), tmp_path / "a", "split differs"),
        ((tiny_runs["multiclass"],), tmp_path / "b", "at least two run directories"),
        ((tiny_runs["multiclass"], combined), tmp_path / "c", "an ensemble folder"),
        ((tiny_runs["multiclass"], tiled_run), tiled_run, "--out is one of the members"),
        ((tiny_segment_run, tiny_segment_run), tmp_path / "d", "combines classifiers"),
    ]
    for runs, out, says in cases:
        code, _, err = run_main("ensemble", *runs, "--out", out, "--workers", "0", "--device", "cpu")
        assert code == 1 and says in err and len(err.strip().splitlines()) == 1, (says, err)
    assert not any((tmp_path / name).exists() for name in "abcd")


def test_tuned_thresholds_are_stored_in_the_folder(combined, tmp_path):
    # tune-gate / tune-bands store into an ensemble folder as into a --folds parent.
    parent = shutil.copytree(combined, tmp_path / "moved" / "step2", symlinks=True)
    data = json.loads((parent / "ensemble.json").read_text())
    data["members"] = [str((combined / m).resolve()) for m in data["members"]]  # moved without its members
    (parent / "ensemble.json").write_text(json.dumps(data))
    from steelinspect.runs.ensemble import store_params

    store_params(load_model(parent), thresholds=[0.1, 0.2, 0.3, 0.4])
    assert load_model(parent).thresholds == [0.1, 0.2, 0.3, 0.4]
