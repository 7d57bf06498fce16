"""Post-processing re-tuned with the classifiers gating the segmenter."""

import json
import shutil

import numpy as np
import pytest
import torch

from steelinspect.errors import RunError
from steelinspect.postprocess.grid import PostprocessGrid
from steelinspect.postprocess.masks import PostProcess
from steelinspect.tuning.gate import GatedSplit, tune_with_gate


def test_the_gate_turns_dropped_pairs_into_empty_predictions():
    grid = PostprocessGrid()
    shape = (2, 4, *grid.shape[1:])
    dice = np.full(shape, 0.25, np.float32)
    predicted = np.ones(shape, bool)
    positive = np.array([[False, False, True, False], [False, False, False, False]])
    keep = np.array([[True, True, True, False], [False, False, False, False]])  # image 2: step 1 said clean
    split = GatedSplit(dice, predicted, positive, keep)
    gated, gated_predicted = split.gated()
    assert (gated[0, :3] == 0.25).all() and (gated[0, 3] == 1.0).all()  # dropped, truly empty: 1
    assert (gated[1] == 1.0).all() and not gated_predicted[1].any()
    report = split.report(grid, PostProcess(), gate=True)
    assert report.dice_kaggle == pytest.approx((3 * 0.25 + 1 + 4) / 8)
    assert split.report(grid, PostProcess(), gate=False).dice_kaggle == pytest.approx(0.25)
    dropped = GatedSplit(dice, predicted, positive, np.zeros((2, 4), bool))
    assert dropped.report(grid, PostProcess(), gate=True).dice_kaggle == pytest.approx(7 / 8)  # all-empty


@pytest.mark.slow
def test_tune_with_gate_stores_the_setting_and_scores(forced_runs, tiny_segment_run, tiny_seg_data, tmp_path):
    segment = shutil.copytree(tiny_segment_run, tmp_path / "segment")  # the shared run stays as it is
    result = tune_with_gate(segment, forced_runs["binary"], forced_runs["multiclass"], tiny_seg_data)
    splits = json.loads((segment / "splits.json").read_text())
    assert result.reports["gated_tuned"].images == len(splits["test"])
    assert result.reports["val_gated_tuned"].images == len(splits["val"])
    # Forced step 2 says class 3 only: every other class is gated to empty, so its Dice is the all-empty one.
    for report in (result.reports["gated"], result.reports["gated_tuned"]):
        for s in report.classes:
            if s.class_id != 3:
                assert s.dice == pytest.approx(s.empty_baseline) and s.predicted == 0
    stored = torch.load(segment / "model.pt", weights_only=True)["postprocess"]
    assert stored == result.postprocess.to_dict() and stored["gate"] == "drop"
    gated = json.loads((segment / "metrics.json").read_text())["gated"]
    assert {"postprocess", "alone", "gated", "gated_tuned", "val_gated_tuned", "binary", "multiclass"} <= set(gated)
    assert gated["gated_tuned"]["dice_kaggle"] == pytest.approx(result.reports["gated_tuned"].dice_kaggle)


@pytest.mark.slow
def test_refuses_classifiers_that_trained_on_the_held_out_images(tiny_segment_run, tiny_seg_data, tmp_path):
    from steelinspect.runs.config import TrainConfig
    from steelinspect.train.loop import train

    small = dict(epochs=1, batch_size=4, image_size=(64, 128), workers=0, arch="vgg")
    other_seed = train(TrainConfig(task="binary", data=tiny_seg_data, out=tmp_path / "b", seed=7, **small),
                       progress=False)
    with pytest.raises(RunError, match="the classifier run trained on"):
        tune_with_gate(tiny_segment_run, other_seed, other_seed, tiny_seg_data)


@pytest.mark.slow
def test_cli_refuses_a_classifier_run_in_one_line(tiny_runs, tiny_seg_data):
    from tests.cli_runner import run_main

    code, _, err = run_main("tune-gate", tiny_runs["binary"], "--binary", tiny_runs["binary"], "--multiclass",
                            tiny_runs["multiclass"], "--data", tiny_seg_data)
    assert code == 1 and "needs a segment run" in err, err
