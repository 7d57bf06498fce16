"""Copy-paste of defects (data/paste.py, `train ... --paste`)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from steelinspect.constants import IMAGE_SHAPE
from steelinspect.data.dataset import Augment, ImageDataset
from steelinspect.data.master import RLE_COLUMNS
from steelinspect.data.paste import DefectPaste, Donor, defect_ratio, donors_of, plate_grain_removed
from steelinspect.data.seg_dataset import SegAugment, SegmentDataset, SegSample
from steelinspect.data.tile_dataset import TileDataset
from steelinspect.data.transforms import Preprocess
from steelinspect.runs.config import TrainConfig
from tests.cli_runner import run_main
from tests.data.fixtures import box_rle

CRACK = (slice(40, 200), slice(300, 304))  # the donor's class 2 crack: rows 40-199, columns 300-303


def _plates(tmp_path, level: int = 200):
    """donor.png: a plate at grey 100 with a crack at 50 (its class 2 mask a box a few pixels around it);
    plate.png: an even plate at `level`; black.png: an unlit plate. PNG, so the pixels are exact."""
    folder = tmp_path / "train_images"
    folder.mkdir()
    donor = np.full(IMAGE_SHAPE, 100, np.uint8)
    donor[CRACK] = 50
    cv2.imwrite(str(folder / "donor.png"), donor)
    cv2.imwrite(str(folder / "plate.png"), np.full(IMAGE_SHAPE, level, np.uint8))
    cv2.imwrite(str(folder / "black.png"), np.zeros(IMAGE_SHAPE, np.uint8))
    return folder, Donor("donor.png", 2, box_rle(36, 296, 168, 12))


def test_the_ratio_is_the_defect_over_the_plate_around_it():
    image = np.full((64, 400), 120, np.uint8)
    image[10:50, 100:160] = 60  # a large defect: a plain blur would darken its own background
    mask = np.zeros(image.shape, bool)
    mask[8:52, 98:162] = True
    ratio = defect_ratio(image, mask, sigma=8.0)
    assert np.allclose(ratio[20:40, 110:150], 61 / 121, atol=1e-3)
    assert np.allclose(ratio[~mask], 1.0, atol=1e-3)


def test_the_donors_grain_stays_behind_and_its_defect_comes():
    rng = np.random.default_rng(0)
    image = 120 + rng.normal(0, 8, (128, 400))  # the plate's grain, about 7% of its grey
    image[20:100, 200:204] *= 0.5
    mask = np.zeros(image.shape, bool)
    mask[16:104, 194:210] = True
    raw = defect_ratio(image.clip(0, 255).astype(np.uint8), mask, 8.0) - 1
    change = plate_grain_removed(raw, mask, 0.5)
    assert change[~mask].std() < 0.3 * raw[~mask].std()  # the grain a multiplied-in ratio would bring, mostly gone
    assert (change[mask] == 0).mean() > 0.4  # inside the mask too, beside the crack
    assert -0.5 < change[60, 200:204].mean() < -0.35  # the crack keeps most of its -0.5


def test_a_pasted_crack_keeps_its_contrast_and_rows_on_a_brighter_plate(tmp_path):
    folder, donor = _plates(tmp_path)
    paste = DefectPaste(folder, {2: [donor]}, 1.0, "multilabel")
    plate = cv2.imread(str(folder / "plate.png"), cv2.IMREAD_GRAYSCALE)
    for seed in range(8):
        out, placed = paste.paste(plate, donor, np.random.default_rng(seed))
        changed = np.abs(out.astype(int) - 200) > 2
        deep = out < 150  # the crack itself, softened by a pixel at its ends and sides
        rows, cols = np.flatnonzero(deep.any(axis=1)), np.flatnonzero(deep.any(axis=0))
        assert (rows.min(), rows.max()) == (40, 199)  # the crack's rows, wherever its columns went
        assert len(cols) == 4 and cols.max() - cols.min() == 3
        assert abs(int(out[120].min()) - 100) <= 5  # half the plate's grey, as the crack was half its own
        # The mask moved with it: the donor's box (rows 36-203, 12 columns) around the crack's new columns.
        assert placed.sum() == 168 * 12 and placed[changed].all()
        assert (np.flatnonzero(placed.any(axis=1))[[0, -1]] == (36, 203)).all()
    assert not np.array_equal(*(paste.paste(plate, donor, np.random.default_rng(s))[0] for s in (0, 1)))


def test_a_paste_gives_the_target_its_class_and_never_lands_on_an_unlit_plate(tmp_path):
    folder, donor = _plates(tmp_path)
    read = lambda name: cv2.imread(str(folder / name), cv2.IMREAD_GRAYSCALE)  # noqa: E731
    clean = np.zeros(4, np.float32)
    for head, target, expected in (("multilabel", clean, [0, 1, 0, 0]), ("binary", np.zeros(1, np.float32), [1])):
        paste = DefectPaste(folder, {2: [donor]}, 1.0, head)
        gray, out = paste(read("plate.png"), target, np.random.default_rng(0))
        assert out.tolist() == expected and not np.array_equal(gray, read("plate.png"))
        assert target.tolist() == [0] * len(target)  # the caller's targets are not written to
        gray, out = paste(read("black.png"), target, np.random.default_rng(0))
        assert out is target and not gray.any()
    never = DefectPaste(folder, {2: [donor]}, 0.0, "multilabel")
    gray, out = never(read("plate.png"), clean, np.random.default_rng(0))
    assert out is clean and (gray == 200).all()


def test_donors_are_every_mask_of_the_given_rows_by_class():
    frame = pd.DataFrame([
        {"ImageId": "a.jpg", **dict.fromkeys(RLE_COLUMNS, ""), "EncodedPixels_2": "1 5", "EncodedPixels_4": "9 3"},
        {"ImageId": "b.jpg", **dict.fromkeys(RLE_COLUMNS, ""), "EncodedPixels_2": "7 2"},
        {"ImageId": "c.jpg", **dict.fromkeys(RLE_COLUMNS, "")},
    ])
    donors = donors_of(frame)
    assert sorted(donors) == [2, 4]
    assert [(d.image_id, d.code) for d in donors[2]] == [("a.jpg", "1 5"), ("b.jpg", "7 2")]


def test_a_dataset_pastes_reproducibly_and_leaves_the_augmentation_as_it_was(tmp_path):
    folder, donor = _plates(tmp_path)
    ids = ["plate.png"] * 4
    targets = np.zeros((4, 4), np.float32)
    make = lambda paste: ImageDataset(folder, ids, targets, Preprocess(64, 400), Augment(), 7, paste)  # noqa: E731
    plain = make(None)
    always = make(DefectPaste(folder, {2: [donor]}, 1.0, "multilabel"))
    never = make(DefectPaste(folder, {2: [donor]}, 0.0, "multilabel"))
    for index in range(4):
        x, y, item = always[index]
        assert y.tolist() == [0, 1, 0, 0] and item == index
        assert torch.equal(x, always[index][0])  # (seed, epoch, index) fixes the paste too
        assert torch.equal(never[index][0], plain[index][0])  # pasting draws from its own stream
        assert plain[index][1].tolist() == [0, 0, 0, 0]
    assert targets.sum() == 0


def test_a_tiled_run_trains_with_paste_and_records_it(synth_dir, tmp_path):
    """Step 2 on tiles, whose labels come from the masks the paste adds to, in a real run."""
    run = tmp_path / "tiles"
    code, out, err = run_main("train", "multiclass", str(synth_dir), "--out", str(run), "--epochs", "1", "--workers",
                              "0", "--paste", "0.5", "--image-size", "64x384", "--tile-width", "96")
    assert code == 0, err
    assert "a defect pasted into 50% of training images" in out + err  # the run's settings line says so
    assert json.loads((run / "config.json").read_text())["paste"] == 0.5


@pytest.mark.parametrize("task, extra, says", [
    ("multiclass", ["--paste", "1.5"], "--paste must lie in [0, 1], got 1.5"),
    ("segment", ["--paste", "-0.1"], "--paste must lie in [0, 1], got -0.1"),
    ("multiclass", ["--paste", "0.5", "--protocol", "seed"], "--paste needs --protocol full"),
])
def test_paste_where_it_cannot_work_is_refused_in_one_line(synth_dir, tmp_path, task, extra, says):
    code, _, err = run_main("train", task, str(synth_dir), "--out", str(tmp_path / "r"), "--image-size", "64x384",
                            *extra)
    assert code == 1 and says in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "r").exists()


def test_tiles_and_the_segmenter_get_the_pasted_mask(tmp_path):
    """The tiles are labelled from the masks, the segmenter learns them: both must hold the pasted defect's."""
    folder, donor = _plates(tmp_path)
    frame = pd.DataFrame([{"ImageId": "plate.png", **dict.fromkeys(RLE_COLUMNS, "")}])
    paste = DefectPaste(folder, {2: [donor]}, 1.0)
    no_change = Augment(hflip=0, vflip=0, brightness=0, contrast=0, crop=1)
    tiles = TileDataset(folder, frame, np.zeros((1, 4), np.float32), Preprocess(64, 400), "multilabel", 64, no_change,
                        seed=1, positive=0.0, paste=paste)
    seen = set()
    for epoch in range(12):
        tiles.set_epoch(epoch)
        x, y, _ = tiles[0]
        dark = bool((x < x.mean() - 1).any())  # the crack's columns are in this tile
        assert y.tolist() == ([0, 1, 0, 0] if dark else [0, 0, 0, 0])
        seen.add(dark)
    assert seen == {True, False}

    samples = [SegSample("plate.png", ("", "", "", ""))]
    seg = SegmentDataset(folder, samples, Preprocess(256, 1600), None, SegAugment(hflip=False, vflip=False,
                         brightness=0, contrast=0), seed=0, paste=paste)
    x, masks, _ = seg[0]
    crack = (x[0] < x[0].mean() - 1).numpy()
    assert masks[[0, 2, 3]].sum() == 0 and masks[1].sum() == 168 * 12
    assert masks[1].numpy()[crack].all()


def test_the_segmenter_pastes_by_default_and_the_classifiers_do_not(tmp_path):
    def paste(**kw):
        return TrainConfig(data=tmp_path, out=tmp_path / "r", **kw).paste

    assert paste(task="segment") == 0.5  # measured: docs/transfer.md, "The segmenter at the budget"
    assert paste(task="binary") == 0.0 and paste(task="multiclass") == 0.0
    assert paste(task="multiclass", protocol="seed") == 0.0  # the single-label head cannot hold a second class
    assert paste(task="segment", paste=0.0) == 0.0 and paste(task="binary", paste=0.25) == 0.25
    assert paste(task="segment", augment=False) == 0.0  # a paste is an augmentation: none without it
    # A segmenter written before --paste existed trained without it, and resumes so.
    legacy = TrainConfig(task="segment", data=tmp_path, out=tmp_path / "r").to_dict()
    del legacy["paste"]
    assert TrainConfig.from_dict(legacy).paste == 0.0
