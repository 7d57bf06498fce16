"""`steelinspect predict --db`: every predicted image lands in the inspection log, with its regions when
--segment is given, the exact models that decided and the band."""

from __future__ import annotations

import pandas as pd
import pytest

pytest.importorskip("sqlalchemy", reason="the inspection log needs the db extra: pip install -e '.[db]'")
pytest.importorskip("alembic", reason="the inspection log needs the db extra: pip install -e '.[db]'")

from steelinspect.data.images import list_images
from steelinspect.inspect_log import LogFilter, open_log
from steelinspect.runs.store import load_run
from tests.cli_runner import run_cli as run

pytestmark = pytest.mark.slow


def _all(log) -> list:
    return log.query(page_size=1000).entries


def test_predict_db_logs_every_image_of_a_coil_in_order(log_url, tiny_runs, synth_dir, tmp_path):
    images = synth_dir / "train_images"
    proc = run("predict", images, "--binary", tiny_runs["binary"], "--multiclass", tiny_runs["multiclass"],
               "--out", tmp_path / "predictions.csv", "--workers", "1", "--device", "cpu", "--db", log_url,
               "--coil", "C42", "--ok-below", "0.4", "--ng-above", "0.6")
    assert proc.returncode == 0, proc.stderr
    assert "logged 64 inspections" in proc.stdout and "ms per image" in proc.stdout
    table = pd.read_csv(tmp_path / "predictions.csv", keep_default_na=False)
    with open_log(log_url) as log:
        entries = sorted(_all(log), key=lambda e: e.frame)
        assert len(entries) == len(table) == 64
        # Frames follow the file-name order of the images; each row is the CSV's row of that image.
        assert [e.image_id for e in entries] == [p.name for p in list_images(images)]
        assert all(e.coil == "C42" for e in entries) and [e.frame for e in entries] == list(range(64))
        by_id = table.set_index("ImageId")
        for e in entries:
            assert e.p_defect == pytest.approx(by_id.loc[e.image_id, "p_defect"], abs=1e-6)
            assert " ".join(map(str, e.classes)) == str(by_id.loc[e.image_id, "classes"])
            assert e.band == ("OK" if e.p_defect < 0.4 else "NG" if e.p_defect > 0.6 else "REVIEW")
            assert e.path == str(images / e.image_id)
        models = log.models(entries[0].model_set_id)
        assert models["binary"]["weights_id"] == load_run(tiny_runs["binary"]).weights_id
        assert models["multiclass"]["thresholds"] == load_run(tiny_runs["multiclass"]).thresholds
        assert models["bands"] == {"t1": 0.4, "t2": 0.6}
        assert log.count(LogFilter(coil="C42")) == 64


def test_predict_segment_db_logs_the_regions(forced_runs, tiny_seg_data, tmp_path):
    """The forced runs mark every image wholly as class 3: one region per image, the whole image."""
    url = f"sqlite:///{tmp_path / 'log.db'}"
    proc = run("predict", tiny_seg_data / "train_images", "--binary", forced_runs["binary"], "--multiclass",
               forced_runs["multiclass"], "--segment", forced_runs["segment"], "--out", tmp_path / "p.csv",
               "--submission", tmp_path / "s.csv", "--workers", "1", "--device", "cpu", "--db", url)
    assert proc.returncode == 0, proc.stderr
    with open_log(url) as log:
        entries = _all(log)
        assert len(entries) == 12 and all(e.classes == (3,) and e.coil is None for e in entries)
        for e in entries:
            (stored,) = log.defects(e.id)
            region = stored.region
            assert (region.class_id, region.area, region.x, region.y, region.width, region.height) == \
                (3, 256 * 1600, 0, 0, 1600, 256)
            assert region.rle == f"1 {256 * 1600}"
        assert "segment" in log.models(entries[0].model_set_id)


def test_predict_db_refusals_are_one_line(tiny_runs, synth_dir, tmp_path):
    base = ["predict", synth_dir / "train_images", "--binary", tiny_runs["binary"], "--multiclass",
            tiny_runs["multiclass"], "--out", tmp_path / "p.csv", "--device", "cpu"]
    proc = run(*base, "--coil", "C1")
    assert proc.returncode == 1 and "--coil needs --db" in proc.stderr
    proc = run(*base, "--db", f"sqlite:///{tmp_path / 'l.db'}", "--ok-below", "0.9", "--ng-above", "0.1")
    assert proc.returncode == 1 and "T1" in proc.stderr
    assert not (tmp_path / "p.csv").exists()


def test_predict_db_logs_unreadable_files_as_problems(tiny_runs, forced_runs, synth_dir, tmp_path):
    """Both paths (cascade alone, cascade + segmenter): a bad file is skipped, and kept in the problem table with
    source "predict", its message, size and mtime."""
    import shutil

    from tests.cli_runner import run_main

    images = tmp_path / "images"
    images.mkdir()
    for p in sorted((synth_dir / "train_images").iterdir())[:2]:
        shutil.copy(p, images / p.name)
    (images / "broken.jpg").write_bytes(b"not a picture\n")
    url = f"sqlite:///{tmp_path / 'log.db'}"
    base = ["predict", images, "--out", tmp_path / "p.csv", "--workers", "1", "--device", "cpu", "--db", url]
    code, out, err = run_main(*base, "--binary", tiny_runs["binary"], "--multiclass", tiny_runs["multiclass"])
    assert code == 0, err
    assert "logged 2 inspections, 1 unreadable files as problems" in " ".join(out.split())
    code, out, err = run_main(*base, "--binary", forced_runs["binary"], "--multiclass", forced_runs["multiclass"],
                              "--segment", forced_runs["segment"])
    assert code == 0, err
    with open_log(url) as log:
        assert log.count() == 4
        problems = log.problems()
        assert len(problems) == 2
        for p in problems:
            assert (p.path, p.source, p.size) == (str(images / "broken.jpg"), "predict", 14)
            assert "not a readable image" in p.message and p.mtime_ns == (images / "broken.jpg").stat().st_mtime_ns


def test_predict_db_uses_the_runs_tuned_bands(tiny_runs, synth_dir, tmp_path):
    """bands.json in the runs (as tune-bands writes them) decide the band; --ok-below / --ng-above still win for
    step 1 and keep the classes' bands."""
    import shutil

    from steelinspect.runs.bands import resolve_bands
    from steelinspect.runs.bands import Bands, BandSet, write_bands

    runs = {name: shutil.copytree(src, tmp_path / name) for name, src in tiny_runs.items()}  # shared: copies
    curve = {"threshold": [0.0], "precision": [0.5], "recall": [1.0]}
    write_bands(runs["binary"], {"role": "step1", "step1": {"t1": 0.0, "t2": 0.0, "curve": curve}})
    write_bands(runs["multiclass"], {"role": "classes", "classes": {
        "3": {"t1": 0.0, "t2": 1.0, "curve": curve}}})  # class 3 always in REVIEW
    images = list_images(synth_dir / "train_images")[:8]
    url = f"sqlite:///{tmp_path / 'tuned.db'}"
    proc = run("predict", *images, "--binary", runs["binary"], "--multiclass", runs["multiclass"], "--out",
               tmp_path / "p.csv", "--workers", "1", "--device", "cpu", "--db", url)
    assert proc.returncode == 0, proc.stderr
    assert "bands: step 1 OK < 0, NG > 0, classes 3 banded" in proc.stdout
    tuned = BandSet(Bands(0.0, 0.0), {3: Bands(0.0, 1.0)})
    with open_log(url) as log:
        entries = _all(log)
        assert len(entries) == 8
        # Step 1 never says OK at T1 = 0 and class 3 is always in REVIEW: every image goes to a person.
        assert all(e.band == "REVIEW" for e in entries)
        for e in entries:
            assert (e.band, e.uncertainty) == pytest.approx(tuned.decide(e.p_defect, e.p_class))
        assert log.models(entries[0].model_set_id)["bands"] == tuned.to_dict()
    assert resolve_bands(runs["binary"], runs["multiclass"]) == tuned
    assert resolve_bands(runs["binary"], runs["multiclass"], 0.4, 0.6) == BandSet(Bands(0.4, 0.6), tuned.classes)
    assert resolve_bands(runs["binary"], runs["multiclass"], None, 0.6) == BandSet(Bands(0.0, 0.6), tuned.classes)
    assert resolve_bands(tiny_runs["binary"], tiny_runs["multiclass"]) == BandSet()  # untuned: the defaults
