"""Copy-paste augmentation for rare classes (data/copy_paste.py) and its place in step 2's training."""

import json

import numpy as np
import pandas as pd
import pytest

from steelinspect.data.copy_paste import CopyPaste, cut_pieces, paste, rare_classes
from steelinspect.data.dataset import AUGMENT_PRESETS, ImageDataset
from steelinspect.data.images import read_gray
from steelinspect.data.master import build_master
from steelinspect.data.transforms import Preprocess
from steelinspect.errors import ConfigError
from steelinspect.runs.config import TrainConfig
from tests.cli_runner import run_main


def test_rare_classes_are_those_under_half_the_most_common():
    frame = pd.DataFrame({"Area_1": [5, 0, 0, 0, 0, 0], "Area_2": [0, 0, 0, 0, 0, 0],
                          "Area_3": [9, 9, 9, 9, 9, 0], "Area_4": [0, 3, 3, 3, 0, 0]})
    # class 3 on 5 images; class 4 on 3 (not under 2.5); class 1 on 1; class 2 on none (nothing to paste)
    assert rare_classes(frame) == [1]


def test_pieces_are_the_connected_parts_with_a_feathered_edge():
    gray = np.full((64, 200), 100, np.uint8)
    mask = np.zeros((64, 200), bool)
    mask[10:50, 20:60] = True  # a wide part
    mask[20:40, 120:124] = True  # a thin one
    mask[5, 190] = True  # a speck of a polygon's edge: left out
    pieces = cut_pieces(gray, mask, 2)
    assert len(pieces) == 2 and {p.class_id for p in pieces} == {2}
    wide = max(pieces, key=lambda p: p.alpha.size)
    assert wide.alpha.max() == pytest.approx(1.0, abs=1e-3)  # the middle of a wide part is all piece
    assert wide.alpha[0, 0] < 0.01 and 0 <= wide.alpha.min() and wide.alpha.max() <= 1  # the box's corner is not
    assert wide.top == 10 - 9  # the box reaches the feather (3 sigma) beyond the part


def test_paste_moves_the_piece_to_the_destination_brightness_and_keeps_its_contrast():
    source = np.full((64, 200), 200, np.uint8)
    source[20:40, 30:34] = 150  # a dark crack on bright steel
    mask = np.zeros((64, 200), bool)
    mask[14:46, 22:42] = True  # its coarse polygon
    piece = cut_pieces(source, mask, 2)[0]
    dark = np.full((64, 200), 60, np.uint8)
    out = paste(dark, piece, left=100)
    box = out[piece.top : piece.top + piece.alpha.shape[0], 100 : 100 + piece.alpha.shape[1]]
    assert (np.delete(out, np.s_[100 : 100 + piece.alpha.shape[1]], axis=1) == 60).all()  # only the box changes
    assert abs(float(box.mean()) - 60) < 3  # at the destination's brightness, not the source's 200
    crack = out[30, 100 + (30 - 22 + 9) : 100 + (34 - 22 + 9)]  # the crack's columns inside the box
    assert 60 - float(crack.mean()) > 40  # still about 50 grey levels darker than around it


@pytest.fixture(scope="module")
def master(synth_dir):
    return build_master(synth_dir)


def test_copy_paste_adds_a_rare_class_inside_the_middle_every_crop_keeps(synth_dir, master):
    paster = CopyPaste(synth_dir / "train_images", master, probability=1.0, margin=0.1)
    assert paster.classes == rare_classes(master) and paster.classes
    clean = master[~master.Defect].ImageId.iloc[0]
    gray = read_gray(synth_dir / "train_images" / clean)
    target = np.zeros(4, np.float32)
    seen = set()
    for k in range(20):
        out, new = paster(gray, target, np.random.default_rng(k))
        added = [c + 1 for c in np.flatnonzero(new)]
        assert len(added) == 1 and added[0] in paster.classes
        seen.add(added[0])
        changed = np.flatnonzero((out != gray).any(axis=0))
        assert changed.min() >= 0.1 * gray.shape[1] and changed.max() < 0.9 * gray.shape[1]
        again, _ = paster(gray, target, np.random.default_rng(k))
        assert (again == out).all()  # a draw's paste is fixed by its RNG
    assert target.sum() == 0  # the caller's target is not modified
    assert len(seen) > 1
    never = CopyPaste(synth_dir / "train_images", master, probability=0.0)
    assert never(gray, target, np.random.default_rng(0))[0] is gray


def test_training_draws_get_pastes_and_evaluation_never(synth_dir, master):
    ids, targets = master.ImageId.tolist(), np.zeros((len(master), 4), np.float32)
    paster = CopyPaste(synth_dir / "train_images", master, probability=0.5)
    preprocess, augment = Preprocess(64, 128), AUGMENT_PRESETS["standard"]
    training = ImageDataset(synth_dir / "train_images", ids, targets, preprocess, augment, seed=0, paste=paster)
    gained = [training[i][1].sum().item() for i in range(len(ids))]
    assert 0.25 < np.mean(gained) < 0.75  # about half the draws
    evaluation = ImageDataset(synth_dir / "train_images", ids, targets, preprocess, None, seed=0, paste=paster)
    assert all(evaluation[i][1].sum() == 0 for i in range(8))
    # The augmentation draws what it drew without copy-paste (its own RNG stream): unpasted draws are identical.
    plain = ImageDataset(synth_dir / "train_images", ids, targets, preprocess, augment, seed=0)
    for i in [i for i, g in enumerate(gained) if g == 0][:5]:
        assert (training[i][0] == plain[i][0]).all()


@pytest.mark.parametrize("settings, message", [
    (dict(task="binary"), "multi-label head"),
    (dict(task="multiclass", protocol="seed"), "multi-label head"),
    (dict(task="multiclass", tile_width=128), "multi-label head"),
    (dict(task="multiclass", augment=False), "multi-label head"),
])
def test_copy_paste_is_refused_where_it_cannot_label(tmp_path, settings, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(data=tmp_path, out=tmp_path / "run", copy_paste=0.5, **settings).validate()
    with pytest.raises(ConfigError, match=r"\[0, 1\)"):
        TrainConfig(task="multiclass", data=tmp_path, out=tmp_path / "run", copy_paste=1.0).validate()


def test_cli_trains_step_two_with_copy_paste_and_records_it(synth_dir, tmp_path):
    out = tmp_path / "run"
    code, stdout, stderr = run_main("train", "multiclass", synth_dir, "--out", out, "--epochs", "1", "--image-size",
                                    "64x128", "--workers", "0", "--copy-paste", "0.5")
    assert code == 0, stdout + stderr
    assert json.loads((out / "config.json").read_text())["copy_paste"] == 0.5
