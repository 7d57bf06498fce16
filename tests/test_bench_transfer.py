"""bench/transfer.py's threshold-free step 1 scores (the bench itself trains and needs the real sample)."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from transfer import step1_ranking  # noqa: E402


def test_step1_ranking_auc_and_pass_share_at_the_flagging_threshold():
    defects = [0.9, 0.8, 0.7, 0.6, 0.1]  # flagging 80% (4 of 5) needs a threshold of 0.6
    clean = [0.05, 0.2, 0.65, 0.95]
    result = step1_ranking(defects, clean, flag_share=0.8)
    # pairs (defect above clean): 0.9 beats 3, 0.8 beats 3, 0.7 beats 3, 0.6 beats 2, 0.1 beats 1 -> 12 of 20
    assert result["step1_auc"] == pytest.approx(12 / 20)
    assert result["clean_passed_at_flag_share"] == pytest.approx(2 / 4)  # 0.05 and 0.2 fall below 0.6


def test_step1_ranking_counts_ties_half_and_handles_the_float_edge():
    # 30 defect images, 80%: the 7th lowest is the threshold (0.2 * 30 is 5.999... in floating point)
    defects = list(np.linspace(0.01, 0.3, 30))
    result = step1_ranking(defects, [defects[6] - 1e-6, defects[6]], flag_share=0.8)
    assert result["clean_passed_at_flag_share"] == pytest.approx(0.5)
    assert step1_ranking([0.5], [0.5])["step1_auc"] == pytest.approx(0.5)
    assert np.isnan(step1_ranking([], [0.1])["step1_auc"])


def test_segment_only_scores_the_segmenter_on_every_mask(tiny_segment_run, tiny_seg_data, tmp_path, capsys):
    """`--segment RUN` alone: the segmenter's Dice per class, one entry per image having the class."""
    import json

    import transfer
    from steelinspect.data.labels import read_labels

    out = tmp_path / "scores.json"
    assert transfer.main(["--segment", str(tiny_segment_run), "--real", str(tiny_seg_data), "--json", str(out)]) == 0
    dice = json.loads(out.read_text())["dice"]
    labels = read_labels(tiny_seg_data / "train.csv")
    assert {int(c): n for c, (_, n) in dice.items()} == labels.ClassId.value_counts().to_dict()
    assert all(0 <= mean <= 1 for mean, _ in dice.values())
    assert "segmenter Dice, class" in capsys.readouterr().out


def test_step1_only_scores_the_given_run_on_defect_images_and_clean_frames(tiny_runs, tiny_seg_data, tmp_path):
    import json

    import transfer
    from steelinspect.data.labels import read_labels

    out = tmp_path / "step1.json"
    assert transfer.main(["--binary", str(tiny_runs["binary"]), "--real", str(tiny_seg_data), "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["defect_images"] == read_labels(tiny_seg_data / "train.csv").ImageId.nunique()
    assert len(result["per_image"]["p_defect"]) == result["defect_images"]
    assert len(result["per_image"]["p_defect_clean"]) == result["clean_frames"]
    assert 0 <= result["step1_flagged"] <= 1


def test_step1_trained_here_takes_arch_and_frame_norm(synth_dir, tiny_seg_data, tmp_path, capsys):
    """--arch and --frame-norm reach the step 1 run the bench trains (and are printed with its budget)."""
    import json

    import transfer

    args = ["--step1-only", "--synth", str(synth_dir), "--epochs", "1", "--size", "64x128", "--workers", "0",
            "--arch", "resnet18", "--frame-norm", "0.5", "--real", str(tiny_seg_data), "--out", str(tmp_path / "runs")]
    assert transfer.main(args) == 0
    config = json.loads((tmp_path / "runs" / "binary" / "config.json").read_text())
    assert config["arch"] == "resnet18" and config["frame_norm"] == 0.5
    assert "classifiers --arch resnet18, step 1 --frame-norm 0.5" in capsys.readouterr().out


def test_adapted_runs_are_never_scored_on_a_frame_they_were_adapted_on(tiny_runs, synth_dir):
    """--adapt: each fold's runs are adapted on the other folds' images and clean frames, and every image is scored
    once, by the runs adapted without it."""
    import argparse
    import json

    import transfer
    from steelinspect.data.realism import dataset_items

    items = list(dataset_items(synth_dir))
    scored = []

    def scorer(runs, held):
        record = json.loads((runs["binary"] / "adapt.json").read_text())
        frames = [p.stem for p in Path(record["frames"]).iterdir()]
        held_stems = {Path(image_id).stem for image_id, _, _ in held}
        assert record["frames_used"] == len(frames) and len(frames) >= 16
        assert not any(f.split("_clean_")[0] in held_stems for f in frames)
        scored.extend(image_id for image_id, _, _ in held)
        return transfer.score_step1(runs["binary"], held, 32, 160)

    args = argparse.Namespace(seed=0, margin=32, min_width=160)
    row = transfer.cross_fitted_adaptation({"binary": tiny_runs["binary"]}, items, args, scorer)
    assert sorted(scored) == sorted(image_id for image_id, _, _ in items)
    assert 0 <= row["step1_flagged"] <= 1 and 0 <= row["clean_frames_passed"] <= 1 and "step1_auc" in row


def test_segment_reviewed_scores_each_image_with_a_setting_tuned_without_it():
    """Post-processing re-tuned on real masks, cross-fitted: an image that alone favours a setting is not scored
    with that setting when it is held out (its fold's setting comes from the other folds)."""
    import transfer
    from steelinspect.postprocess.grid import ImageScores, PostprocessGrid
    from steelinspect.postprocess.masks import PostProcess

    grid = PostprocessGrid(thresholds=(0.1, 0.5), min_areas=(0,), defaults=PostProcess((0.5,) * 4, (0,) * 4))
    items = [(f"a{i}.jpg", None, {3: None}) for i in range(10)]  # one class set: 5 folds of 2
    scores = []
    for i in range(10):
        dice = np.ones(grid.shape, np.float32)  # classes 1, 2, 4 absent: every setting scores 1
        dice[2, :, 0] = (1.0, 0.0) if i == 9 else (0.5, 0.6)  # class 3 at thresholds (0.1, 0.5)
        scores.append(ImageScores(dice, np.ones(grid.shape, bool), np.array([False, False, True, False])))
    result = transfer.segment_reviewed(grid, scores, items)
    # Trained with a9, 8 images tune to 0.1 (mean 0.5625 against 0.525) and score 0.5 each; a9 held out, its
    # fold tunes to 0.5: a9 scores 0.0 (1.0 had it seen itself) and its fold-mate 0.6.
    mean, count = result["reviewed_dice"][3]
    assert count == 10 and mean == pytest.approx((8 * 0.5 + 0.0 + 0.6) / 10)
    assert sorted(s["thresholds"][2] for s in result["reviewed_settings"]) == [0.1, 0.1, 0.1, 0.1, 0.5]
    assert set(result["reviewed_dice"]) == {3}


def test_step_2_scores_count_the_images_by_their_top_class(tiny_runs, tiny_seg_data, tmp_path, capsys):
    """Which class step 2 ranks first, image by image: a class the real set lacks ranked first shows up here."""
    import json

    import transfer

    out = tmp_path / "cascade.json"
    assert transfer.main(["--binary", str(tiny_runs["binary"]), "--multiclass", str(tiny_runs["multiclass"]),
                          "--real", str(tiny_seg_data), "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    tops = np.argmax(np.array(result["per_image"]["p_class"]), axis=1) + 1
    assert {int(c): k for c, k in result["step2_top_class_counts"].items()} == {
        c: int((tops == c).sum()) for c in (1, 2, 3, 4)}
    assert sum(result["step2_top_class_counts"].values()) == result["defect_images"]
    assert "images by step 2's top class" in capsys.readouterr().out
