"""export-reviewed: the reviewed inspections become a dataset that passes `check`, labelled as the reviewers
said (both backends; the command itself once, on SQLite)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("sqlalchemy", reason="the inspection log needs the db extra: pip install -e '.[db]'")
pytest.importorskip("alembic", reason="the inspection log needs the db extra: pip install -e '.[db]'")

from steelinspect import rle
from steelinspect.data.check import check_dataset
from steelinspect.data.labels import parse_labels
from steelinspect.errors import ConfigError
from steelinspect.inspect_log import open_log, regions_from_masks
from steelinspect.inspect_log.export import export_reviewed
from tests.cli_runner import run_cli as run


def _truth(synth_dir) -> dict[str, dict[int, str]]:
    table = parse_labels(synth_dir / "train.csv").table
    truth: dict[str, dict[int, str]] = {}
    for r in table.itertuples():
        truth.setdefault(r.ImageId, {})[int(r.ClassId)] = r.EncodedPixels
    return truth


def _fill(log, synth_dir) -> tuple[dict, dict]:
    """Six inspections of the synthetic images, their regions the true masks; five reviewed."""
    truth = _truth(synth_dir)
    images = synth_dir / "train_images"
    multi = next(i for i, t in sorted(truth.items()) if len(t) >= 2)
    single = [i for i, t in sorted(truth.items()) if len(t) == 1][:3]
    clean = next(p.name for p in sorted(images.iterdir()) if p.name not in truth)
    ids = {}
    for image_id in [multi, *single, clean]:
        masks = rle.build_mask(truth.get(image_id, {}))
        classes = " ".join(str(c) for c in sorted(truth.get(image_id, {})))
        row = {"ImageId": image_id, "p_defect": 0.5, "classes": classes, "has_defect": bool(classes),
               **{f"p_class_{c}": 0.5 for c in (1, 2, 3, 4)}}
        ids[image_id] = log.record(row, regions_from_masks(masks), {"test": 1}, path=images / image_id)
    log.record({**row, "ImageId": "unreviewed.jpg"}, models={"test": 1}, path=images / clean)
    plan = {"confirm": multi, "reject": single[0], "clean": single[1], "unlabelled": single[2], "ok": clean}
    log.add_review(ids[multi], "anna", "confirm")
    rejected = log.defects(ids[single[0]])
    for d in rejected:  # every region of its only class: the image becomes clean
        log.add_review(ids[single[0]], "anna", "reject_region", defect_id=d.id)
    log.add_review(ids[single[1]], "ben", "correct", classes=[])
    other = next(c for c in (1, 2, 3, 4) if c not in truth[single[2]])
    log.add_review(ids[single[2]], "ben", "correct", classes=[other])  # a class without a region
    log.add_review(ids[clean], "ben", "confirm")
    return plan, truth


@pytest.fixture
def reviewed_log(log_url, synth_dir):
    with open_log(log_url) as log:
        yield (log, *_fill(log, synth_dir))


def test_export_writes_what_the_reviewers_said_and_passes_check(reviewed_log, tmp_path):
    log, plan, truth = reviewed_log
    out = tmp_path / "reviewed"
    stats = export_reviewed(log, out)
    assert (stats.images, stats.clean) == (4, 3)
    assert len(stats.skipped) == 1 and "without a region" in stats.skipped[0].problem
    report = check_dataset(out, workers=1)
    assert report.ok, report.problems
    assert sorted(p.name for p in (out / "train_images").iterdir()) == sorted(
        [plan["confirm"], plan["reject"], plan["clean"], plan["ok"]])
    table = pd.read_csv(out / "train.csv")
    assert list(table.columns) == ["ImageId", "ClassId", "EncodedPixels"]
    assert set(table.ImageId) == {plan["confirm"]}  # the only image still defective
    for r in table.itertuples():
        assert np.array_equal(rle.decode(r.EncodedPixels), rle.decode(truth[plan["confirm"]][r.ClassId]))
    assert len(table) == len(truth[plan["confirm"]])
    # A second export replaces the first whole; a folder of someone else's files is refused.
    export_reviewed(log, out)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="refusing"):
        export_reviewed(log, tmp_path / "mine")


@pytest.mark.slow
def test_export_reviewed_command_then_check_command(synth_dir, tmp_path):
    url = f"sqlite:///{tmp_path / 'log.db'}"
    with open_log(url) as log:
        plan, truth = _fill(log, synth_dir)
    proc = run("export-reviewed", "--db", url, "--out", tmp_path / "data")
    assert proc.returncode == 0, proc.stderr
    masks = len(truth[plan["confirm"]])
    assert f"4 reviewed images (3 clean, {masks} defect masks), 1 skipped" in " ".join(proc.stdout.split())
    assert "without a region" in proc.stderr
    assert run("check", tmp_path / "data", "--workers", "1").returncode == 0


@pytest.mark.slow
def test_reviewed_frames_export_check_and_train_from_the_old_run(tiny_runs, synth_dir, tmp_path):
    """The plant loop's last steps with the README's commands: frames a watcher logged (coil folders, flat image
    ids) and people confirmed -> export-reviewed -> check -> train --init the old run -> evaluate old and new on
    the same held-out data."""
    import shutil

    from steelinspect.data.synth import generate
    from steelinspect.inspect_log.naming import flat_image_id
    from steelinspect.io import read_json
    from tests.cli_runner import run_main

    truth = _truth(synth_dir)
    url = f"sqlite:///{tmp_path / 'log.db'}"
    sources = sorted((synth_dir / "train_images").iterdir())[:32]
    with open_log(url) as log:
        for i, source in enumerate(sources):
            relative = f"C{i // 16:03d}/frame_{i % 16:04d}.jpg"
            target = tmp_path / "cam" / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, target)
            labels = truth.get(source.name, {})
            row = {"ImageId": flat_image_id(relative), "p_defect": 0.5, "has_defect": bool(labels),
                   "classes": " ".join(map(str, sorted(labels))), **{f"p_class_{c}": 0.5 for c in (1, 2, 3, 4)}}
            found = log.record(row, regions_from_masks(rle.build_mask(labels)), {"test": 1}, coil=relative[:4],
                               frame=i % 16, path=target)
            log.add_review(found, "anna", "confirm")
    data, new_run = tmp_path / "reviewed", tmp_path / "runs" / "binary-2"
    code, out, err = run_main("export-reviewed", "--db", url, "--out", data)
    assert code == 0, err
    assert "32 reviewed images" in out
    code, out, err = run_main("check", data, "--workers", "1")
    assert code == 0, out + err
    code, out, err = run_main("train", "binary", data, "--out", new_run, "--init", tiny_runs["binary"], "--epochs",
                              "1", "--image-size", "64x128", "--batch-size", "8", "--workers", "0", "--device", "cpu")
    assert code == 0, err
    assert read_json(new_run / "config.json")["init"] == str(tiny_runs["binary"])
    held_out = tmp_path / "held_out"
    generate(held_out, images=12, seed=5, workers=1)
    for run_dir, name in ((tiny_runs["binary"], "old.json"), (new_run, "new.json")):
        code, out, err = run_main("evaluate", run_dir, "--data", held_out, "--out", tmp_path / name,
                                  "--workers", "0", "--device", "cpu")
        assert code == 0, err
        assert 0.0 <= read_json(tmp_path / name)["all"]["accuracy"] <= 1.0
