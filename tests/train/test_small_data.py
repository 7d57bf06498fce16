"""Small-data training options: --freeze-encoder-epochs, --augment strong, and what tiny splits are told."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from steelinspect.data.dataset import AUGMENT_PRESETS, Augment
from steelinspect.data.seg_dataset import SEG_AUGMENT_PRESETS, augment as seg_augment
from steelinspect.data.splits import split_warnings
from steelinspect.io import read_json
from steelinspect.runs.config import TrainConfig
from steelinspect.runs.store import load_checkpoint, read_model_file
from steelinspect.train.loop import train
from tests.cli_runner import run_main


def _part(state: dict, prefix: str) -> dict:
    return {k: v for k, v in state.items() if k.startswith(prefix)}


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_frozen_encoder_stays_put_then_trains(synth_dir, tiny_runs, tmp_path):
    """VGG: after a frozen epoch the convolutional blocks (weights and BatchNorm statistics) are the --init
    run's exactly while the head moved; resumed for a second, unfrozen epoch, the blocks move too."""
    start = read_model_file(tiny_runs["binary"])["state_dict"]
    config = TrainConfig(task="binary", data=synth_dir, out=tmp_path / "run", epochs=1, batch_size=8,
                         image_size=(64, 128), workers=0, arch="vgg", seed=0, init=tiny_runs["binary"],
                         freeze_encoder_epochs=1, lr=1e-2)
    train(config, progress=False)
    after_frozen = load_checkpoint(tmp_path / "run")["model"]
    assert _same(_part(after_frozen, "features."), _part(start, "features."))
    assert not _same(_part(after_frozen, "head."), _part(start, "head."))
    saved = read_json(tmp_path / "run" / "config.json")
    assert saved["freeze_encoder_epochs"] == 1 and saved["augment_preset"] == "standard"

    config.epochs, config.resume = 2, True
    train(config, progress=False)
    after_thawed = load_checkpoint(tmp_path / "run")["model"]
    moved = [k for k in _part(start, "features.") if not torch.equal(after_thawed[k], start[k])]
    assert any(k.endswith("weight") for k in moved) and any(k.endswith("running_mean") for k in moved)


def test_frozen_unet_encoder_while_the_decoder_trains(tiny_seg_data, tiny_segment_run, tmp_path):
    start = read_model_file(tiny_segment_run)["state_dict"]
    config = TrainConfig(task="segment", data=tiny_seg_data, out=tmp_path / "seg", arch="unet_resnet18", epochs=1,
                         batch_size=4, image_size=(64, 384), crop_width=(256, 256), workers=0, seed=0, device="cpu",
                         init=tiny_segment_run, freeze_encoder_epochs=1, augment_preset="strong", lr=1e-2)
    train(config, progress=False)
    after = load_checkpoint(tmp_path / "seg")["model"]
    assert _same(_part(after, "encoder."), _part(start, "encoder."))
    decoder = {k: v for k, v in start.items() if not k.startswith("encoder.")}
    assert not _same({k: after[k] for k in decoder}, decoder)
    saved = read_json(tmp_path / "seg" / "config.json")
    assert saved["augment_preset"] == "strong" and saved["freeze_encoder_epochs"] == 1
    # 12 images: the validation split cannot bear much, and the run says so in its metrics.
    assert any("validation split holds only" in w for w in read_json(tmp_path / "seg" / "metrics.json")["split_warnings"])


def _plate(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(120, 25, (128, 416)), 0, 255).astype(np.uint8)


def test_strong_classifier_preset_changes_pixels_beyond_the_standard_one():
    assert AUGMENT_PRESETS["standard"] == Augment()  # the default is what training always used
    gray = _plate()
    changed = 0
    for seed in range(8):
        standard = AUGMENT_PRESETS["standard"](gray, np.random.default_rng(seed))
        strong = AUGMENT_PRESETS["strong"](gray, np.random.default_rng(seed))
        assert strong.dtype == np.uint8 and strong.ndim == 2
        changed += standard.shape != strong.shape or not np.array_equal(standard, strong)
    assert changed == 8


def test_strong_segmenter_preset_moves_masks_with_the_image():
    """A bright block whose mask is the block: after shift/scale, flips, gamma, blur and noise, the bright
    pixels and the warped mask still coincide, and the block has really moved for some seeds."""
    image = np.full((128, 384), 60, np.uint8)
    masks = np.zeros((4, 128, 384), bool)
    image[40:90, 150:260] = 220
    masks[2, 40:90, 150:260] = True
    moved = 0
    for seed in range(12):
        out, warped = seg_augment(image, masks, SEG_AUGMENT_PRESETS["strong"], np.random.default_rng(seed))
        assert out.dtype == np.uint8 and warped.shape == masks.shape and not warped[[0, 1, 3]].any()
        level = (out[warped[2]].mean() + out[~warped[2]].mean()) / 2  # between the block's and the steel's
        bright = out > level
        iou = (bright & warped[2]).sum() / (bright | warped[2]).sum()
        assert iou > 0.9, (seed, iou)
        moved += not np.array_equal(warped[2], masks[2]) and not np.array_equal(warped[2], masks[2][::-1, ::-1])
    assert moved >= 8


def test_split_warnings_say_what_a_tiny_validation_split_cannot_bear():
    def frame(class_sets):
        return pd.DataFrame({"ImageId": [f"{i}.jpg" for i in range(len(class_sets))], "ClassIds": class_sets,
                             "Defect": [bool(c) for c in class_sets]})

    splits = {"train": frame([[3]] * 10 + [[4]] * 10 + [[2]]), "val": frame([[3], [3], [4]]), "test": frame([])}
    said = split_warnings(splits, "multilabel")
    assert any("validation split holds only 3 images" in s for s in said)
    assert any(s.startswith("class 2: 1 training image(s) but none in validation: its threshold stays") for s in said)
    assert any(s == "class 4: its threshold is tuned on a single validation image" for s in said)
    assert not any(s.startswith("class 3") for s in said)
    # --rare-threshold break-even: fewer than five validation images of a class, and its threshold breaks even.
    even = split_warnings(splits, "multilabel", "break-even")
    assert ("class 4: only 1 validation image(s): its threshold calls as many validation images class 4 as hold it "
            "(too few to tune F1 on)") in even
    assert any(s.startswith("class 3: only 2 validation image(s)") for s in even)
    tiny_test = split_warnings({**splits, "test": frame([[3], [4]])}, "multilabel")
    assert ("the test split holds only 2 images: its scores are anecdotes (a larger --test-fraction uses more)"
            in tiny_test)
    assert any(s.endswith("(a larger --val-fraction, or --folds K, uses more)") for s in tiny_test)
    big = {"train": frame([[3]] * 40 + [[4]] * 40), "val": frame([[3]] * 6 + [[4]] * 6), "test": frame([])}
    assert split_warnings(big, "segment") == [] and split_warnings(big, "multilabel", "break-even") == []
    assert any("no clean image" in s for s in split_warnings(big, "binary"))


@pytest.mark.parametrize("args, said", [
    (["--augment", "wild"], "--augment must be one of standard, strong, got 'wild'"),
    (["--freeze-encoder-epochs", "3", "--epochs", "2"], "--freeze-encoder-epochs must lie in 0..2"),
    (["--freeze-encoder-epochs", "-1"], "--freeze-encoder-epochs must lie in 0..10"),
    (["--freeze-encoder-epochs", "1"], "--freeze-encoder-epochs needs --init or --weights"),
    (["--val-fraction", "0"], "--val-fraction must lie in (0, 1): the best epoch and the thresholds are chosen on"),
    (["--test-fraction", "1"], "--test-fraction must lie in [0, 1), got 1"),
    (["--test-fraction", "-0.1"], "--test-fraction must lie in [0, 1), got -0.1"),
    (["--val-fraction", "0.6", "--test-fraction", "0.4"], "--val-fraction 0.6 and --test-fraction 0.4 leave no "
                                                          "training images"),
])
def test_bad_small_data_options_are_refused_in_one_line(synth_dir, tmp_path, args, said):
    code, out, err = run_main("train", "binary", synth_dir, "--out", tmp_path / "run", *args)
    assert code == 1, out + err
    lines = [line for line in (out + err).splitlines() if line.strip()]
    assert len(lines) == 1 and said in lines[0], out + err
    assert not (tmp_path / "run" / "config.json").exists()


def test_the_train_command_records_the_small_data_options(synth_dir, tiny_runs, tmp_path):
    code, out, err = run_main("train", "binary", synth_dir, "--out", tmp_path / "run", "--epochs", "1",
                              "--batch-size", "8", "--image-size", "64x128", "--workers", "0", "--arch", "vgg",
                              "--init", tiny_runs["binary"], "--freeze-encoder-epochs", "1", "--augment", "strong",
                              "--lr", "2e-4")
    assert code == 0, out + err
    assert "strong augmentation, encoder frozen for 1 epoch(s)" in out
    saved = read_json(tmp_path / "run" / "config.json")
    assert (saved["augment_preset"], saved["freeze_encoder_epochs"], saved["lr"]) == ("strong", 1, 2e-4)


def test_the_kept_epoch_is_the_best_score_and_a_tie_goes_to_the_lower_validation_loss(tiny_seg_data, tmp_path):
    """On 2 validation images the segmenter's oracle Dice ties across epochs; the epoch kept (model.pt) is the
    best score, among equal scores the lowest validation loss (not simply the first)."""
    config = TrainConfig(task="segment", data=tiny_seg_data, out=tmp_path / "seg", arch="unet_resnet18", epochs=3,
                         batch_size=4, image_size=(64, 384), crop_width=(256, 256), workers=0, seed=0, device="cpu")
    train(config, progress=False)
    history = read_json(tmp_path / "seg" / "history.json")
    best = max(history, key=lambda r: (r["val_dice_kaggle_oracle"], -r["val_loss"]))
    assert read_model_file(tmp_path / "seg")["epoch"] == best["epoch"]


def test_held_out_shares_from_the_command_line(synth_dir, tmp_path):
    """--val-fraction / --test-fraction set the splits (recorded in config.json, so --resume keeps them); with no
    test split the run reports its validation scores."""
    out = tmp_path / "run"
    code, stdout, err = run_main("train", "binary", synth_dir, "--out", out, "--epochs", 1, "--batch-size", 8,
                                 "--image-size", "64x128", "--workers", 0, "--device", "cpu",
                                 "--val-fraction", 0.3, "--test-fraction", 0)
    assert code == 0, err
    splits, config = read_json(out / "splits.json"), read_json(out / "config.json")
    assert (config["val_fraction"], config["test_fraction"]) == (0.3, 0.0)
    assert splits["test"] == [] and len(splits["val"]) == round(64 * 0.3)
    assert len(splits["train"]) + len(splits["val"]) == 64
    metrics = read_json(out / "metrics.json")
    assert metrics["val"]["n"] == len(splits["val"]) and not metrics.get("test")

    code, _, err = run_main("train", "binary", synth_dir, "--out", out, "--epochs", 2, "--batch-size", 8,
                            "--image-size", "64x128", "--workers", 0, "--device", "cpu", "--resume")
    assert code == 1 and "--val-fraction 0.3 in the run, 0.15 now" in " ".join(err.split()), err
