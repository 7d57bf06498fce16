"""`steelinspect predict --segment`: predictions with areas and boxes, a Kaggle submission, overlays, TTA."""


import cv2
import pandas as pd
import pytest

from steelinspect import rle
from steelinspect.data.master import image_ids
from steelinspect.infer.submission import read_submission
from tests.cli_runner import run_cli as run

pytestmark = pytest.mark.slow



@pytest.fixture(scope="module")
def predicted(tiny_runs, tiny_segment_run, tiny_seg_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("pred")
    proc = run("predict", tiny_seg_data / "train_images", "--binary", tiny_runs["binary"], "--multiclass",
               tiny_runs["multiclass"], "--segment", tiny_segment_run, "--out", out / "predictions.csv",
               "--submission", out / "submission.csv", "--overlays", out / "overlays", "--tta", "--workers", "1",
               "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    return out, proc


def test_submission_has_four_rows_per_image(predicted, tiny_seg_data):
    out, _ = predicted
    ids = image_ids(tiny_seg_data / "train_images")
    lines = (out / "submission.csv").read_text().splitlines()
    assert lines[0] == "ImageId,EncodedPixels,ClassId"
    assert len(lines) == 1 + 4 * len(ids)
    sub = read_submission(out / "submission.csv")  # validates every RLE
    assert sorted(sub.image_ids) == ids


def test_predictions_carry_areas_and_boxes_matching_the_submission(predicted):
    out, _ = predicted
    rows = pd.read_csv(out / "predictions.csv", keep_default_na=False)
    sub = read_submission(out / "submission.csv")
    for c in (1, 2, 3, 4):
        assert f"area_{c}" in rows and f"boxes_{c}" in rows
    for r in rows.itertuples(index=False):
        for c in (1, 2, 3, 4):
            encoded = sub.masks[r.ImageId][c - 1]
            assert getattr(r, f"area_{c}") == rle.area(encoded)
            assert (getattr(r, f"boxes_{c}") == "") == (encoded == "")
        if not r.has_defect:  # the binary step's gate: an image called clean gets no masks
            assert all(m == "" for m in sub.masks[r.ImageId])


def test_overlays_written_at_full_size(predicted, tiny_seg_data):
    out, _ = predicted
    pngs = sorted((out / "overlays").glob("*.png"))
    assert len(pngs) == len(image_ids(tiny_seg_data / "train_images"))
    image = cv2.imread(str(pngs[0]))
    assert image.shape == (256, 1600, 3)


def test_submission_scores(predicted, tiny_seg_data):
    out, _ = predicted
    proc = run("score", out / "submission.csv", "--truth", tiny_seg_data)
    assert proc.returncode == 0, proc.stderr
    assert "Kaggle Dice:" in proc.stdout and "all-empty submission:" in proc.stdout


def test_segment_options_need_a_segment_run(tiny_runs, tiny_seg_data, tmp_path):
    proc = run("predict", tiny_seg_data / "train_images", "--binary", tiny_runs["binary"], "--multiclass",
               tiny_runs["multiclass"], "--out", tmp_path / "p.csv", "--submission", tmp_path / "s.csv")
    assert proc.returncode == 1 and "--segment" in proc.stderr
    proc = run("predict", tiny_seg_data / "train_images", "--binary", tiny_runs["binary"], "--multiclass",
               tiny_runs["multiclass"], "--segment", tiny_runs["binary"], "--out", tmp_path / "p.csv")
    assert proc.returncode == 1 and "needs a segment run" in proc.stderr


def test_overlays_replace_a_previous_overlays_folder_whole_or_not_at_all(predicted, tiny_runs, tiny_segment_run,
                                                                         tiny_seg_data, tmp_path, monkeypatch):
    import shutil

    from steelinspect.draw import overlay
    from steelinspect.errors import ConfigError
    from steelinspect.infer.cascade import PredictConfig
    from steelinspect.infer.segment_predict import OVERLAYS_MARKER, PipelineOutputs, predict_pipeline

    previous = shutil.copytree(predicted[0] / "overlays", tmp_path / "overlays")
    assert (previous / OVERLAYS_MARKER).is_file()  # the CLI's folder says it is ours
    before = {p.name: p.read_bytes() for p in previous.iterdir()}
    two = sorted((tiny_seg_data / "train_images").iterdir())[:2]
    outputs = PipelineOutputs(tmp_path / "p.csv", overlays=previous)
    args = (two, tiny_runs["binary"], tiny_runs["multiclass"], tiny_segment_run, outputs,
            PredictConfig(device="cpu", workers=1, engine="torch"))

    calls = []

    def dies_on_the_second(path, rgb, save=overlay.save_rgb):
        calls.append(path)
        if len(calls) == 2:
            raise RuntimeError("killed midway")
        return save(path, rgb)

    with monkeypatch.context() as patch:
        patch.setattr(overlay, "save_rgb", dies_on_the_second)
        with pytest.raises(RuntimeError):
            predict_pipeline(*args)
    assert {p.name: p.read_bytes() for p in previous.iterdir()} == before and not (tmp_path / "p.csv").exists()

    predict_pipeline(*args)
    assert sorted(p.name for p in previous.iterdir()) == sorted([OVERLAYS_MARKER, *(f"{p.stem}.png" for p in two)])

    pictures = tmp_path / "pictures"  # PNGs that do not say they are ours: never replaced
    pictures.mkdir()
    (pictures / "holiday.png").write_bytes(b"mine")
    with pytest.raises(ConfigError, match=r"pictures: holds 1 file\(s\) that are not a previous overlays folder"):
        predict_pipeline(*args[:4], PipelineOutputs(tmp_path / "p2.csv", overlays=pictures), args[5])
    assert (pictures / "holiday.png").read_bytes() == b"mine" and not (tmp_path / "p2.csv").exists()
