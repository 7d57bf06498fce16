import numpy as np
import pandas as pd
import pytest

from steelinspect import rle
from steelinspect.data.check import check_dataset
from steelinspect.data.images import read_gray
from steelinspect.data.labels import read_labels
from steelinspect.data.master import build_master
from steelinspect.data.synth import COMBINATION_COUNTS, generate, render
from steelinspect.errors import ConfigError


def test_deterministic_for_a_seed_whatever_the_workers(tmp_path):
    a = generate(tmp_path / "a", images=20, seed=3, workers=1)
    b = generate(tmp_path / "b", images=20, seed=3, workers=2)
    c = generate(tmp_path / "c", images=20, seed=4, workers=1)
    assert (a / "train.csv").read_text() == (b / "train.csv").read_text()
    names = sorted(p.name for p in (a / "train_images").iterdir())
    assert names == sorted(p.name for p in (b / "train_images").iterdir())
    assert all((a / "train_images" / n).read_bytes() == (b / "train_images" / n).read_bytes() for n in names)
    assert names != sorted(p.name for p in (c / "train_images").iterdir())


def test_layout_passes_check_and_both_formats_agree(tmp_path):
    new = generate(tmp_path / "new", images=30, seed=1, label_format="new")
    original = generate(tmp_path / "orig", images=30, seed=1, label_format="original")
    assert check_dataset(new).ok and check_dataset(original).ok
    cols = ["ImageId", "ClassId", "EncodedPixels"]
    assert read_labels(new / "train.csv")[cols].equals(read_labels(original / "train.csv")[cols])
    assert (original / "train.csv").read_text().splitlines()[0] == "ImageId_ClassId,EncodedPixels"
    assert len((original / "train.csv").read_text().splitlines()) == 1 + 30 * 4
    image = read_gray(next((new / "train_images").iterdir()))
    assert image.shape == (256, 1600) and image.dtype == np.uint8


def test_classes_never_overlap_and_masks_are_polygons():
    for index in range(40):
        image, masks = render(7, index)
        assert image.shape == (256, 1600)
        if len(masks) > 1:
            assert (np.sum(list(masks.values()), axis=0) <= 1).all()
        for mask in masks.values():
            assert mask.any() and rle.encode(mask)


def test_refuses_existing_dataset_and_bad_arguments(tmp_path):
    out = generate(tmp_path / "d", images=2, seed=0)
    before = (out / "train.csv").read_text()
    with pytest.raises(ConfigError, match="already holds a dataset"):
        generate(out, images=2, seed=1)
    assert (out / "train.csv").read_text() == before
    with pytest.raises(ConfigError, match="--images"):
        generate(tmp_path / "e", images=0)
    with pytest.raises(ConfigError, match="--format"):
        generate(tmp_path / "e", images=2, label_format="csv")
    assert not (tmp_path / "e" / "train.csv").exists()


@pytest.mark.slow
def test_statistics_follow_the_real_labels(tmp_path):
    master = build_master(generate(tmp_path / "d", images=600, seed=11))
    total = sum(COMBINATION_COUNTS.values())
    clean = COMBINATION_COUNTS[()] / total
    # Binomial tolerance: 4 standard deviations at n=600.
    assert abs((~master.Defect).mean() - clean) < 4 * np.sqrt(clean * (1 - clean) / 600)
    masks = {c: int((master[f"Area_{c}"] > 0).sum()) for c in (1, 2, 3, 4)}
    assert masks[3] == max(masks.values())
    assert masks[2] <= masks[1] and masks[2] <= masks[4]
    multi = (master.Defect_no >= 2).sum() / master.Defect.sum()
    assert 0.02 < multi < 0.12
    pct = {c: master.loc[master[f"Area_{c}"] > 0, f"Area_{c}"] / (256 * 1600) * 100 for c in (1, 2, 3, 4)}
    assert 1.5 < pct[1].mean() < 5
    assert 1 < pct[2].mean() < 4.5
    assert 3 < pct[3].median() < 9 and pct[3].max() > 15
    assert 9 < pct[4].mean() < 18


def test_defects_are_subtle_but_present():
    # Defect pixels differ from their surroundings, but far less than the image's full brightness range.
    diffs = []
    for index in range(60):
        image, masks = render(5, index)
        for mask in masks.values():
            inside = image[mask].astype(float).mean()
            outside = image[~mask & (image > 20)].astype(float).mean()
            diffs.append(abs(inside - outside))
    assert diffs and 0.5 < np.median(diffs) < 40
