import json
import subprocess
import sys

import numpy as np
import pytest

from steelinspect import rle
from steelinspect.data.labels import read_labels
from steelinspect.eda.overlay import black_background_masks, overlay_masks
from steelinspect.eda.report import write_report
from steelinspect.eda.stats import EdaConfig, compute_stats
from tests.data.fixtures import make_dataset


@pytest.fixture(scope="module")
def real_report(real_sample, tmp_path_factory):
    out = tmp_path_factory.mktemp("eda")
    path = write_report(real_sample, out, EdaConfig(sample=0, gallery_per_class=2))
    return path, json.loads((out / "stats.json").read_text())


def test_real_sample_counts(real_report):
    path, stats = real_report
    assert stats["images"] == 30 and stats["masks"] == 40
    assert stats["defect_images"] == 30 and stats["clean_images"] == 0
    assert stats["masks_per_class"] == {"1": 0, "2": 1, "3": 20, "4": 19}
    assert stats["images_by_class_count"] == {"0": 0, "1": 20, "2": 10}
    assert stats["area_pct"]["Class_1"] is None
    html = path.read_text()
    assert "Counts" in html and "data:image/png;base64," in html
    for name in ("counts.png", "area_stats.png", "area_hist.png", "co_occurrence.png", "location_heatmaps.png",
                 "brightness.png", "gallery_multi.png"):
        assert (path.parent / name).stat().st_size > 1000


def test_real_area_statistics_against_decoded_masks(real_sample, real_report):
    _, stats = real_report
    labels = read_labels(real_sample / "train.csv")
    per_image = {}
    for r in labels.itertuples(index=False):
        per_image.setdefault(r.ImageId, []).append(rle.decode(r.EncodedPixels))
    pct = {i: np.logical_or.reduce(m).sum() / (256 * 1600) * 100 for i, m in per_image.items()}
    classes = labels.groupby("ImageId").ClassId.apply(list)
    groups = {
        "All_data": list(pct.values()),
        "Class_3": [pct[i] for i, c in classes.items() if c == [3]],
        "Class_4": [pct[i] for i, c in classes.items() if c == [4]],
        "Class_multi": [pct[i] for i, c in classes.items() if len(c) > 1],
    }
    for name, values in groups.items():
        got = stats["area_pct"][name]
        assert got["mean"] == pytest.approx(np.mean(values))
        assert got["median"] == pytest.approx(np.median(values))
        assert got["std"] == pytest.approx(np.std(values))
        assert got["max"] == pytest.approx(max(values)) and got["min"] == pytest.approx(min(values))
        assert 0 <= got["min"] <= got["max"] <= 100


def test_stats_on_a_small_dataset(tmp_path):
    stats = compute_stats(make_dataset(tmp_path / "d", n_images=4), EdaConfig(sample=0))
    out = stats.to_json()
    assert out["images_by_class_count"] == {"0": 2, "1": 1, "2": 1}
    assert out["masks_per_class"] == {"1": 1, "2": 0, "3": 1, "4": 1}
    assert out["area_pct"]["Class_2"] is None and out["area_pct"]["Class_1"] is None
    assert out["area_pct"]["Class_3"]["mean"] == pytest.approx(50 * 200 / 409600 * 100)
    assert stats.co_occurrence[0][3] == 1 and stats.co_occurrence[2][2] == 1 and stats.co_occurrence[0][2] == 0
    # Class 3's box covers rows 10-59, columns 100-299: the heatmap is 1 there and 0 far away.
    heat = stats.heatmaps["3"]
    assert heat[35 // 4, 200 // 4] == pytest.approx(1.0) and heat[-1, -1] == 0
    assert out["brightness"]["sampled_images"] == 4 and out["brightness"]["black_band_share"] == 0


def test_black_band_is_detected(synth_dir):
    from steelinspect.data.images import list_images, read_gray
    from steelinspect.eda.stats import has_black_band

    flags = [has_black_band(read_gray(p)) for p in list_images(synth_dir / "train_images")]
    assert 0 < sum(flags) < len(flags)


def test_overlay_colours():
    gray = np.full((8, 8), 100, np.uint8)
    masks = np.zeros((8, 8, 4), bool)
    masks[2:6, 2:6, 3] = True
    out = overlay_masks(gray, masks, outline=False, alpha=0.5)
    assert tuple(out[0, 0]) == (100, 100, 100)
    assert out[3, 3, 0] > out[3, 3, 2]  # class 4 is red
    black = black_background_masks(masks)
    assert tuple(black[0, 0]) == (0, 0, 0) and black[3, 3].any()
    with pytest.raises(ValueError):
        overlay_masks(gray, masks[:4])


def cli(*args):
    proc = subprocess.run([sys.executable, "-m", "steelinspect", *map(str, args)], capture_output=True, text=True)
    assert "Traceback" not in proc.stderr
    return proc


def test_show_cli(real_sample, tmp_path):
    proc = cli("show", real_sample, "2930b4f52.jpg", "--out", tmp_path / "one.png")
    assert proc.returncode == 0 and (tmp_path / "one.png").stat().st_size > 1000
    proc = cli("show", real_sample, "nope.jpg", "--out", tmp_path / "two.png")
    assert proc.returncode == 1 and "no image 'nope.jpg'" in proc.stderr


def test_eda_cli_refuses_bad_labels(tmp_path):
    root = make_dataset(tmp_path / "d", rows=[("a.jpg", 3, "7 7 7")])
    proc = cli("eda", root, "--out", tmp_path / "r")
    assert proc.returncode == 1
    assert "train.csv, row 2" in proc.stderr and "odd number of tokens" in proc.stderr
    assert not (tmp_path / "r" / "report.html").exists()
