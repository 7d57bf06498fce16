"""The segmentation dataset: crops carry their masks, augmentation moves image and masks together."""

import numpy as np
import pytest
import torch

from steelinspect.data.seg_dataset import SegAugment, SegmentDataset, SegSample, augment
from steelinspect.data.transforms import Preprocess
from steelinspect.errors import ConfigError
from tests.data.fixtures import box_rle, make_dataset

NO_AUG = SegAugment(hflip=False, vflip=False, brightness=0, contrast=0, positive_crop=0.0)


@pytest.fixture
def data(tmp_path):
    return make_dataset(tmp_path / "d")


def samples():
    return [
        SegSample("a.jpg", ("", "", box_rle(10, 100, 50, 200), "")),
        SegSample("b.jpg", (box_rle(0, 0, 20, 20), "", "", box_rle(100, 800, 100, 300))),
    ]


def test_whole_image_without_crop(data):
    ds = SegmentDataset(data / "train_images", samples(), Preprocess(256, 1600))
    x, y, index = ds[0]
    assert index == 0
    assert x.shape == (1, 256, 1600) and x.dtype == torch.float32
    assert y.shape == (4, 256, 1600) and y.dtype == torch.uint8
    assert y[2].sum() == 50 * 200 and y[2, 10:60, 100:300].all() and y[[0, 1, 3]].sum() == 0
    assert ds.targets.tolist() == [[0, 0, 1, 0], [1, 0, 0, 1]]


def test_crop_width_is_fixed_per_epoch_and_varies_across_epochs(data):
    ds = SegmentDataset(data / "train_images", samples(), Preprocess(256, 1600), crop_widths=(384, 800), augment=NO_AUG)
    widths = set()
    for epoch in range(6):
        ds.set_epoch(epoch)
        a, b = ds[0], ds[1]
        assert a[0].shape == b[0].shape == (1, 256, a[0].shape[-1]) and a[1].shape[-1] == a[0].shape[-1]
        width = a[0].shape[-1]
        assert 384 <= width <= 800 and width % 32 == 0
        widths.add(width)
    assert len(widths) > 1


def test_crop_keeps_image_and_mask_aligned(data):
    ds = SegmentDataset(data / "train_images", samples(), Preprocess(256, 1600))
    x_full, y_full, _ = ds[1]
    cropped = SegmentDataset(data / "train_images", samples(), Preprocess(256, 1600), crop_widths=(256, 256), augment=NO_AUG, seed=5)
    for epoch in range(4):
        cropped.set_epoch(epoch)
        x, y, _ = cropped[1]
        # Find the window by matching pixels: the masks must come from the same columns.
        (left,) = np.flatnonzero((x_full[0].T == x[0, :, 0]).all(dim=1).numpy())
        assert torch.equal(y_full[..., left : left + 256], y)


def test_positive_crops_contain_a_defect(data):
    aug = SegAugment(hflip=True, vflip=True, positive_crop=1.0)
    ds = SegmentDataset(data / "train_images", samples(), Preprocess(256, 1600), crop_widths=(256, 256), augment=aug, seed=1)
    for epoch in range(5):
        ds.set_epoch(epoch)
        assert ds[0][1][2].sum() > 0


def test_reproducible_for_a_seed(data):
    make = lambda: SegmentDataset(data / "train_images", samples(), Preprocess(256, 1600), crop_widths=(256, 512), augment=SegAugment(), seed=3)
    a, b = make(), make()
    assert torch.equal(a[1][0], b[1][0])
    b.set_epoch(1)
    assert not torch.equal(a[1][0], b[1][0])


def test_reduced_working_size(data):
    ds = SegmentDataset(data / "train_images", samples(), Preprocess(128, 800))
    x, y, _ = ds[0]
    assert x.shape == (1, 128, 800) and y.shape == (4, 128, 800)
    assert int(y[2].sum()) == pytest.approx(50 * 200 / 4, rel=0.05)
    full = SegmentDataset(data / "train_images", samples(), Preprocess(128, 800), full_size_masks=True)
    x, y, _ = full[0]
    assert x.shape == (1, 128, 800) and y.shape == (4, 256, 1600) and y[2].sum() == 50 * 200


def test_flips_move_masks_with_image():
    image = np.zeros((8, 16), np.uint8)
    image[1, 2] = 200
    masks = np.zeros((4, 8, 16), bool)
    masks[0, 1, 2] = True
    aug = SegAugment(hflip=True, vflip=True, brightness=0, contrast=0)
    for seed in range(8):
        im, m = augment(image, masks, aug, np.random.default_rng(seed))
        assert np.array_equal(np.asarray(im) == 200, m[0])


def test_bad_crop_widths_refused(data):
    with pytest.raises(ConfigError, match="crop widths"):
        SegmentDataset(data / "train_images", samples(), Preprocess(256, 1600), crop_widths=(512, 256))
