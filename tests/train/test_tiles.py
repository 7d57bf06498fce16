"""Classifiers trained on tiles (--tile-width): the tiling, the tiles' labels from the masks, and a run end to end."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from steelinspect import rle
from steelinspect.constants import IMAGE_SHAPE
from steelinspect.data.dataset import Augment
from steelinspect.data.master import RLE_COLUMNS
from steelinspect.data.tile_dataset import TileDataset, column_profile, tile_labels
from steelinspect.data.transforms import Preprocess
from steelinspect.models.factory import build_model
from steelinspect.models.tiling import tile_starts
from tests.cli_runner import run_main


def test_tiles_cover_the_width_evenly():
    starts = tile_starts(1600, 256)
    assert len(starts) == 7 and starts[0] == 0 and starts[-1] == 1600 - 256
    assert all(0 < b - a <= 256 for a, b in zip(starts, starts[1:]))
    assert tile_starts(512, 256) == [0, 256] and tile_starts(200, 256) == [0]


def test_a_tiled_classifier_scores_each_output_by_its_largest_tile():
    torch.manual_seed(0)
    model = build_model("vgg", 4, tile_width=64).eval()
    x = torch.randn(3, 1, 32, 200)
    with torch.no_grad():
        tiles = torch.stack([model.forward_image(x[..., s : s + 64]) for s in tile_starts(200, 64)])
        assert torch.allclose(model(x), tiles.amax(dim=0), atol=1e-5)
        assert torch.allclose(model(x[..., :64]), model.forward_image(x[..., :64]))  # one tile: the image itself
        # The same weights without tiles see the whole image at once: a different answer.
        whole = build_model("vgg", 4).eval()
        whole.load_state_dict(model.state_dict())  # a setting, not a weight: the keys are the same
        assert not torch.allclose(whole(x), model(x))
    with pytest.raises(Exception, match="classifiers"):
        build_model("unet_resnet18", 4, tile_width=64)


def _mask(columns: range, rows: range = range(IMAGE_SHAPE[0])) -> str:
    mask = np.zeros(IMAGE_SHAPE, dtype=bool)
    mask[rows.start : rows.stop, columns.start : columns.stop] = True
    return rle.encode(mask)


def test_a_tile_is_labelled_from_the_mask_pixels_inside_it():
    # Class 1: a 10x10 spot at columns 500-509 (100 px); class 3: a band over columns 800-1599.
    rles = [_mask(range(500, 510), range(100, 110)), "", _mask(range(800, 1600)), ""]
    profile = column_profile(rles, 1600)
    assert profile.sum(axis=1).tolist() == [100, 0, 800 * 256, 0]
    assert tile_labels(profile, 0, 256).tolist() == [0, 0, 0, 0]
    assert tile_labels(profile, 400, 256).tolist() == [1, 0, 0, 0]  # the spot whole
    assert tile_labels(profile, 505, 320).tolist() == [1, 0, 1, 0]  # half the spot (50 px: half of a small mask)
    assert tile_labels(profile, 507, 320).tolist() == [0, 0, 1, 0]  # a 3-column sliver of the spot is not it
    # At a working width of 400 the columns shrink 4:1 and the pixels add up.
    assert column_profile(rles, 400).sum(axis=1).tolist() == profile.sum(axis=1).tolist()


def _bright_defect_data(tmp_path):
    """One image, dark except where its class 2 mask is (columns 1200-1239): the pixels say where the mask is."""
    image = np.full(IMAGE_SHAPE, 40, np.uint8)
    image[:, 1200:1240] = 250
    (tmp_path / "train_images").mkdir()
    cv2.imwrite(str(tmp_path / "train_images" / "a.jpg"), image)
    row = {"ImageId": "a.jpg", **{c: "" for c in RLE_COLUMNS}}
    row["EncodedPixels_2"] = _mask(range(1200, 1240))
    return pd.DataFrame([row])


@pytest.mark.parametrize("head, positive", [("multilabel", 1.0), ("binary", 0.5)])
def test_training_tiles_keep_their_labels_aligned_with_the_pixels(tmp_path, head, positive):
    frame = _bright_defect_data(tmp_path)
    targets = np.zeros((1, 4 if head == "multilabel" else 1), np.float32)
    data = TileDataset(tmp_path / "train_images", frame, targets, Preprocess(64, 400), head, 64,
                       Augment(), seed=3, positive=positive)
    seen = set()
    for epoch in range(24):  # flips and placements vary by epoch
        data.set_epoch(epoch)
        x, y, item = data[0]
        assert x.shape == (1, 64, 64) and item == 0
        bright = bool((x > x.mean() + 1).any())  # the defect's columns, wherever the flip put them
        assert bool(y.max()) == bright
        if head == "multilabel":
            assert y.tolist() == ([0, 1, 0, 0] if bright else [0, 0, 0, 0])
        seen.add(bright)
    assert seen == ({True} if positive == 1.0 else {True, False})
    data.set_epoch(5)
    assert torch.equal(data[0][0], data[0][0])  # reproducible: (seed, epoch, index)


def test_a_tiled_run_trains_predicts_and_exports(synth_dir, tmp_path):
    run = tmp_path / "multiclass"
    code, out, err = run_main("train", "multiclass", str(synth_dir), "--out", str(run), "--epochs", "1",
                              "--batch-size", "8", "--image-size", "64x384", "--tile-width", "96", "--workers", "0")
    assert code == 0, err
    assert json.loads((run / "config.json").read_text())["tile_width"] == 96
    # Step 2 says each class's F1 beside naming it on every image, and which classes are no better than that.
    from steelinspect.metrics.classification import classes_at_chance

    scored = json.loads((run / "metrics.json").read_text())["test"]
    assert "test F1 per class (naming it on every image): class " in out
    assert ("no better than naming" in out) == bool(classes_at_chance(scored))
    from steelinspect.runs.store import load_run

    assert load_run(run).model.tile_width == 96
    # The ONNX export is checked against PyTorch on whole images, the tiling included.
    code, out, err = run_main("export", str(run), "--format", "onnx")
    assert code == 0, err
    code, out, err = run_main("evaluate", str(run), "--data", str(synth_dir))
    assert code == 0, err
    assert "per class (chance: the F1 of naming the class on every image)" in out
    evaluated = json.loads((run / "evaluation.json").read_text())
    assert all("chance_f1" in c for c in evaluated["test"]["per_class"].values())


@pytest.mark.parametrize("extra, says", [
    (["--tile-width", "100"], "--tile-width must be a multiple of 32 below the --image-size width 384, got 100"),
    (["--tile-width", "384"], "--tile-width must be a multiple of 32 below the --image-size width 384, got 384"),
    (["--tile-width", "96", "--protocol", "seed"], "--tile-width needs --protocol full"),
])
def test_bad_tile_widths_are_refused_in_one_line(synth_dir, tmp_path, extra, says):
    code, _, err = run_main("train", "multiclass", str(synth_dir), "--out", str(tmp_path / "r"), "--image-size",
                            "64x384", *extra)
    assert code == 1 and says in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "r").exists()
