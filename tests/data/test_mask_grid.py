"""--mask-aux's targets: where each class's mask lies on the stride-16 feature map, moved with the image."""

from __future__ import annotations

import numpy as np
import pytest

from steelinspect import rle
from steelinspect.constants import IMAGE_SHAPE
from steelinspect.data.dataset import Augment, ImageDataset
from steelinspect.data.mask_grid import MAP_STRIDE, decode_masks, grid_targets
from steelinspect.data.master import RLE_COLUMNS, build_master
from steelinspect.data.paste import defect_paste
from steelinspect.data.transforms import Preprocess


def _line(column: int, width: int = 1) -> np.ndarray:
    mask = np.zeros(IMAGE_SHAPE, bool)
    mask[40:200, column : column + width] = True
    return mask


def test_a_line_one_pixel_wide_marks_its_cells_and_no_others():
    masks = _line(1000)[None].astype(np.uint8)
    grid = grid_targets(masks, (256, 1600))
    assert grid.shape == (1, 256 // MAP_STRIDE, 1600 // MAP_STRIDE)
    assert set(np.flatnonzero(grid[0].any(axis=0))) == {1000 // MAP_STRIDE}
    assert set(np.flatnonzero(grid[0].any(axis=1))) == set(range(40 // MAP_STRIDE, 199 // MAP_STRIDE + 1))
    # The grid follows the model input, whatever the size the masks were cropped at.
    assert grid_targets(masks, (128, 416)).shape == (1, 8, 26)
    assert not grid_targets(np.zeros((4, 100, 300), np.uint8), (64, 128)).any()
    with pytest.raises(ValueError, match="smaller than one 16-pixel cell"):
        grid_targets(masks, (8, 64))


def test_a_reduced_scale_decode_keeps_a_thin_crack_and_the_binary_head_gets_the_union():
    codes = [rle.encode(_line(801)), "", rle.encode(_line(300, 20)), ""]
    quarter = decode_masks(codes, (64, 400))
    assert quarter.shape == (4, 64, 400) and quarter.dtype == np.uint8
    assert quarter[0].any(axis=0).nonzero()[0].tolist() == [200]  # one pixel of 1,600 is still there at 400
    assert not quarter[1].any() and not quarter[3].any()
    union = decode_masks(codes, (64, 400), union=True)
    assert union.shape == (1, 64, 400) and np.array_equal(union[0], quarter.max(axis=0))


def test_the_masks_move_with_the_crop_and_flips_and_the_draws_do_not_change():
    aug = Augment(brightness=0.0, contrast=0.0)  # the picture is the mask, so every move shows in both
    rng = np.random.default_rng(5)
    masks = (rng.random((2, 60, 200)) < 0.1).astype(np.uint8)
    image = masks[0] * 255
    for seed in range(20):
        out, moved = aug.apply(image.astype(np.uint8), np.random.default_rng(seed), masks)
        assert np.array_equal(out > 127, moved[0] > 0)
        assert moved.shape[0] == 2 and moved.shape[1:] == out.shape
        # The image drawn without masks is the same image: a run without --mask-aux augments as before.
        assert np.array_equal(aug(image.astype(np.uint8), np.random.default_rng(seed)), out)


def _dataset(synth_dir, head: str, paste: float = 0.0) -> tuple[ImageDataset, object]:
    master = build_master(synth_dir)
    frame = master[master.Defect == 1].reset_index(drop=True)
    targets = (frame.Defect.to_numpy(np.float32)[:, None] if head == "binary"
               else np.array([[c in ids for c in (1, 2, 3, 4)] for ids in frame.ClassIds], np.float32))
    images = synth_dir / "train_images"
    dataset = ImageDataset(images, frame.ImageId.tolist(), targets, Preprocess(128, 416), Augment(), seed=0,
                           paste=defect_paste(images, frame, paste, head) if paste else None,
                           mask_rles=frame[RLE_COLUMNS].fillna("").to_numpy().tolist())
    return dataset, frame


def test_a_training_item_carries_the_grid_of_its_classes(synth_dir):
    dataset, frame = _dataset(synth_dir, "multilabel")
    for index in range(6):
        x, y, item, grid = dataset[index]
        assert x.shape == (1, 128, 416) and grid.shape == (4, 8, 26)
        # A class the image holds marks cells; one it does not hold marks none.
        assert np.array_equal(grid.flatten(1).amax(dim=1).numpy(), y.numpy()), frame.ImageId[item]
    binary, _ = _dataset(synth_dir, "binary")
    assert binary[0][3].shape == (1, 8, 26) and binary[0][3].any()


def test_a_pasted_defect_joins_the_label_and_the_grid_with_the_same_draws(synth_dir):
    with_masks, _ = _dataset(synth_dir, "multilabel", paste=1.0)
    plain = ImageDataset(with_masks.images_dir, with_masks.image_ids, with_masks.targets, with_masks.preprocess,
                         with_masks.augment, seed=0, paste=with_masks.paste)
    gained = 0
    for index in range(8):
        x, y, _, grid = with_masks[index]
        x_plain, y_plain, _ = plain[index]
        assert np.array_equal(x.numpy(), x_plain.numpy()) and np.array_equal(y.numpy(), y_plain.numpy())
        assert np.array_equal(grid.flatten(1).amax(dim=1).numpy(), y.numpy())
        gained += int((y.numpy() > with_masks.targets[index]).any())
    assert gained  # some pastes gave an image a class it did not have, and the grid has it too


def test_mask_targets_are_for_training_sets_only(synth_dir):
    master = build_master(synth_dir)
    with pytest.raises(ValueError, match="mask targets are for a training set"):
        ImageDataset(synth_dir / "train_images", master.ImageId.tolist(), np.zeros((len(master), 4), np.float32),
                     Preprocess(64, 128), None, mask_rles=master[RLE_COLUMNS].fillna("").to_numpy().tolist())
