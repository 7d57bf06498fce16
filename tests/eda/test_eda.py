import json

import cv2
import numpy as np
import pandas as pd
import pytest

from steelinspect import rle
from steelinspect.constants import CLASS_COLOURS
from steelinspect.data.labels import read_labels
from steelinspect.data.master import build_master
from steelinspect.eda.report import eda_report
from steelinspect.eda.stats import (
    HEATMAP_SHAPE,
    EdaConfig,
    band_width,
    compute_stats,
    union_pixels,
)
from tests.cli_runner import run_cli as cli
from tests.data.fixtures import box_rle, make_dataset

AREA_KEYS = {"mean", "median", "std", "max", "min"}
GROUPS = {"All_data", "Class_1", "Class_2", "Class_3", "Class_4", "Class_multi"}


@pytest.fixture(scope="module")
def real_report(real_sample, tmp_path_factory):
    out = tmp_path_factory.mktemp("eda")
    report, stats = eda_report(real_sample, out, EdaConfig(sample=0, gallery_per_class=2))
    path = report.write(out / "report.html")
    return path, json.loads((out / "stats.json").read_text()), stats


def test_real_sample_counts(real_report):
    path, stats, _ = real_report
    assert stats["images"] == 30 and stats["masks"] == 40
    assert stats["defect_images"] == 30 and stats["clean_images"] == 0
    assert stats["masks_per_class"] == {"1": 0, "2": 1, "3": 20, "4": 19}
    assert stats["images_by_class_count"] == {"0": 0, "1": 20, "2": 10}
    assert stats["area_pct"]["Class_1"] is None and stats["area_pct"]["Class_2"] is None
    assert stats["brightness"]["sampled_images"] == 30 and stats["brightness"]["unreadable"] == []
    html = path.read_text()
    assert "data:image/png;base64," in html and '<h2 id="counts">Counts</h2>' in html
    assert "30 of 30 images decoded" in html  # the report states its brightness sample
    assert "No image of class 1." in html
    for name in ("counts.png", "combinations.png", "area_stats.png", "area_hist.png", "co_occurrence.png",
                 "location_heatmaps.png", "brightness.png", "gallery_class_2.png", "gallery_class_3.png",
                 "gallery_multi.png"):
        image = cv2.imread(str(path.parent / name))
        assert image is not None and image.shape[0] > 100 and image.shape[1] > 300, name
    assert not (path.parent / "gallery_class_1.png").exists()


def _independent_areas(labels: pd.DataFrame) -> tuple[dict[str, float], pd.Series]:
    """Per image: decode every mask, OR them, count pixels (no RLE run arithmetic involved)."""
    per_image: dict[str, list[np.ndarray]] = {}
    for r in labels.itertuples(index=False):
        per_image.setdefault(r.ImageId, []).append(rle.decode(r.EncodedPixels))
    pct = {i: np.logical_or.reduce(m).sum() / (256 * 1600) * 100 for i, m in per_image.items()}
    return pct, labels.groupby("ImageId").ClassId.apply(sorted)


def test_real_area_statistics_against_decoded_masks(real_sample, real_report):
    _, stats, _ = real_report
    pct, classes = _independent_areas(read_labels(real_sample / "train.csv"))
    groups = {
        "All_data": list(pct.values()),
        "Class_3": [pct[i] for i, c in classes.items() if c == [3]],
        "Class_4": [pct[i] for i, c in classes.items() if c == [4]],
        "Class_multi": [pct[i] for i, c in classes.items() if len(c) > 1],
    }
    assert len(groups["Class_multi"]) == 10
    for name, values in groups.items():
        got = stats["area_pct"][name]
        assert got["mean"] == pytest.approx(np.mean(values))
        assert got["median"] == pytest.approx(np.median(values))
        assert got["std"] == pytest.approx(np.std(values))
        assert got["max"] == pytest.approx(max(values)) and got["min"] == pytest.approx(min(values))
        assert 0 <= got["min"] <= got["max"] <= 100


def test_real_heatmaps_against_decoded_masks(real_sample, real_report):
    _, _, stats = real_report
    labels = read_labels(real_sample / "train.csv")
    for c in (3, 4):
        masks = [rle.decode(t).astype(np.float32) for t in labels[labels.ClassId == c].EncodedPixels]
        expected = cv2.resize(np.mean(masks, axis=0), HEATMAP_SHAPE[::-1], interpolation=cv2.INTER_AREA)
        np.testing.assert_allclose(stats.heatmaps[str(c)], expected, atol=1e-5)
    assert not stats.heatmaps["1"].any()


def test_union_pixels_matches_decoded_union():
    rng = np.random.default_rng(0)
    shape = (16, 20)
    for _ in range(50):
        masks = [rng.random(shape) < p for p in rng.uniform(0.05, 0.6, size=rng.integers(1, 4))]
        runs = [rle.parse(rle.encode(m), shape) for m in masks]
        assert union_pixels(runs) == np.logical_or.reduce(masks).sum()


def test_stats_keys_and_nulls_without_class_1(tmp_path):
    rows = [("a.jpg", 3, box_rle(10, 100, 50, 200)), ("b.jpg", 3, box_rle(0, 0, 20, 20)),
            ("b.jpg", 4, box_rle(100, 800, 100, 300))]
    stats = compute_stats(make_dataset(tmp_path / "d", n_images=4, rows=rows), EdaConfig(sample=0))
    out = json.loads(json.dumps(stats.to_json()))  # what stats.json holds
    assert {"images", "defect_images", "clean_images", "masks", "masks_per_class", "images_by_class_count",
            "area_pct"} <= set(out)
    assert out["images"] == 4 and out["defect_images"] == 2 and out["clean_images"] == 2 and out["masks"] == 3
    assert out["images_by_class_count"] == {"0": 2, "1": 1, "2": 1}
    assert out["masks_per_class"] == {"1": 0, "2": 0, "3": 2, "4": 1}
    assert set(out["area_pct"]) == GROUPS
    assert out["area_pct"]["Class_1"] is None and out["area_pct"]["Class_2"] is None
    assert out["area_pct"]["Class_4"] is None  # class 4 only appears with class 3
    assert set(out["area_pct"]["Class_3"]) == AREA_KEYS
    assert out["area_pct"]["Class_3"]["mean"] == pytest.approx(50 * 200 / 409600 * 100)
    assert out["area_pct"]["Class_multi"]["max"] == pytest.approx((20 * 20 + 100 * 300) / 409600 * 100)
    assert stats.co_occurrence[2][3] == 1 and stats.co_occurrence[2][2] == 2 and stats.co_occurrence[0][0] == 0
    heat = stats.heatmaps["4"]  # class 4's box covers rows 100-199, columns 800-1099
    assert heat[150 // 4, 900 // 4] == pytest.approx(1.0) and heat[0, 0] == 0
    assert out["brightness"]["sampled_images"] == 4 and out["brightness"]["black_band_share"] == 0


def test_brightness_sample_is_seeded_and_capped(tmp_path):
    root = make_dataset(tmp_path / "d", n_images=6)
    a = compute_stats(root, EdaConfig(sample=3, seed=1))
    b = compute_stats(root, EdaConfig(sample=3, seed=1))
    assert a.brightness_sample == 3 and a.image_means == b.image_means
    assert a.brightness_hist.sum() == 3 * 256 * 1600


def test_band_width():
    gray = np.full((256, 1600), 90, np.uint8)
    assert band_width(gray) == 0
    gray[:, -300:] = 3
    assert band_width(gray) == 300
    gray[:, :40] = 2
    assert band_width(gray) == 300  # the wider side
    thin = np.full((256, 1600), 90, np.uint8)
    thin[:, :3] = 0
    assert band_width(thin) == 0  # a dark edge line is not missing strip


def test_black_band_on_real_images(real_sample, real_report):
    from steelinspect.data.images import read_gray

    assert band_width(read_gray(real_sample / "train_images" / "19c645c25.jpg")) > 500  # right band
    assert band_width(read_gray(real_sample / "train_images" / "81b6f3cca.jpg")) > 300  # left band
    assert band_width(read_gray(real_sample / "train_images" / "2930b4f52.jpg")) == 0
    assert real_report[1]["brightness"]["black_band_images"] == 9


def test_black_band_on_synthetic_images(synth_dir):
    from steelinspect.data.images import list_images, read_gray

    flags = [band_width(read_gray(p)) > 0 for p in list_images(synth_dir / "train_images")]
    assert 0 < sum(flags) < len(flags)


def test_gallery_falls_back_to_multi_class_images(real_sample):
    from steelinspect.eda.gallery import pick_class_examples, pick_multi_examples

    master = build_master(real_sample)
    rng = np.random.default_rng(0)
    two = pick_class_examples(master, 2, 3, rng)
    assert two.ClassIds.tolist() == [[2, 3]]  # the only class-2 image carries class 3 too
    threes = pick_class_examples(master, 3, 3, rng)
    assert len(threes) == 3 and all(ids == [3] for ids in threes.ClassIds)
    assert len(pick_class_examples(master, 1, 3, rng)) == 0
    assert all(len(ids) >= 2 for ids in pick_multi_examples(master, 5, rng).ClassIds)



@pytest.mark.slow
def test_eda_cli_writes_the_report(tmp_path):
    root = make_dataset(tmp_path / "d", n_images=5)
    proc = cli("eda", root, "--out", tmp_path / "r", "--sample", "3", "--gallery", "1")
    assert proc.returncode == 0, proc.stderr
    stats = json.loads((tmp_path / "r" / "stats.json").read_text())
    assert stats["images"] == 5 and stats["brightness"]["sampled_images"] == 3
    html = (tmp_path / "r" / "report.html").read_text()
    assert "3 of 5 images decoded" in html and "src=\"gallery" not in html  # embedded, not linked
    assert (tmp_path / "r" / "gallery_class_1.png").is_file() and (tmp_path / "r" / "counts.png").is_file()


@pytest.mark.slow
def test_show_cli(real_sample, tmp_path):
    proc = cli("show", real_sample, "81b6f3cca.jpg", "--out", tmp_path / "one.png")
    assert proc.returncode == 0, proc.stderr
    picture = cv2.cvtColor(cv2.imread(str(tmp_path / "one.png")), cv2.COLOR_BGR2RGB)
    purple = np.all(np.abs(picture.astype(int) - CLASS_COLOURS[2]) < 12, axis=2)
    assert purple.sum() > 500  # the class-2 mask is drawn in its colour
    proc = cli("show", real_sample, "nope.jpg", "--out", tmp_path / "two.png")
    assert proc.returncode == 1 and "no image 'nope.jpg'" in proc.stderr
    assert not (tmp_path / "two.png").exists()


@pytest.mark.slow
def test_eda_cli_refuses_bad_labels(tmp_path):
    root = make_dataset(tmp_path / "d", rows=[("a.jpg", 3, "7 7 7")])
    proc = cli("eda", root, "--out", tmp_path / "r")
    assert proc.returncode == 1
    assert "train.csv, row 2" in proc.stderr and "odd number of tokens" in proc.stderr
    assert not (tmp_path / "r").exists()


def test_show_names_the_bad_row(tmp_path):
    from steelinspect.eda.show import image_masks
    from steelinspect.errors import LabelError

    root = make_dataset(tmp_path / "d", rows=[("a.jpg", 3, box_rle(0, 0, 4, 4)), ("b.jpg", 2, "5 0")])
    gray, masks, classes = image_masks(root, "a.jpg")
    assert classes == [3] and masks[2].sum() == 16 and gray.shape == (256, 1600)
    with pytest.raises(LabelError, match=r"train.csv, row 3: .*length 0"):
        image_masks(root, "b.jpg")


def _files(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_eda_replaces_a_previous_report_whole_or_not_at_all(tmp_path, monkeypatch):
    from steelinspect.eda import figures
    from steelinspect.eda.report import write_report

    config = EdaConfig(sample=2, gallery_per_class=1)
    out = tmp_path / "report"
    write_report(make_dataset(tmp_path / "old", n_images=3), out, config)  # classes 1, 3 and 4
    before = _files(out)
    assert "gallery_class_1.png" in before and "stats.json" in before

    new_data = make_dataset(tmp_path / "new", n_images=4, rows=[("a.jpg", 3, box_rle(10, 100, 50, 200))])

    def killed(*args, **kwargs):
        raise RuntimeError("killed midway")

    with monkeypatch.context() as patch:  # stats.json and the first figures are written, then the run dies
        patch.setattr(figures, "heatmap_figure", killed)
        with pytest.raises(RuntimeError):
            write_report(new_data, out, config)
    assert _files(out) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []

    write_report(new_data, out, config)
    after = _files(out)
    assert "gallery_class_1.png" not in after  # nothing of the old report is left
    assert json.loads(after["stats.json"])["images"] == 4


@pytest.mark.slow
def test_eda_refuses_a_folder_that_is_not_a_report(tmp_path):
    root = make_dataset(tmp_path / "d", n_images=3)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    proc = cli("eda", root, "--out", tmp_path / "mine", "--sample", "2", "--gallery", "0")
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 1 and lines[-1].startswith("error:"), proc.stderr  # after the progress bar: one line
    assert "holds 1 file(s) that are not a previous EDA report (e.g. notes.txt)" in lines[-1]
    assert _files(tmp_path / "mine") == {"notes.txt": b"keep me"}
