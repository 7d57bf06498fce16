"""OK / REVIEW / NG bands: the overall band of an image, T1 / T2 tuned on a score table, bands.json."""

import json

import numpy as np
import pytest

from steelinspect.errors import ConfigError, RunError
from steelinspect.runs.bands import Bands, BandSet, bands_report, load_bands, read_bands, write_bands
from steelinspect.tuning.bands import BandTargets, band_cost, choose_bands, plot_bands, pr_curve

# A hand-made validation table: 6 defect images, 8 clean ones.
POS = [0.95, 0.9, 0.85, 0.6, 0.4, 0.2]
NEG = [0.1, 0.05, 0.3, 0.5, 0.7, 0.88, 0.15, 0.02]
SCORES = np.array(POS + NEG)
TRUTH = np.array([True] * len(POS) + [False] * len(NEG))


def test_t1_keeps_the_target_recall_out_of_ok_and_t2_reaches_the_precision():
    d = choose_bands(SCORES, TRUTH, BandTargets(recall=0.8, precision=0.75))
    # ceil(0.8 * 6) = 5 positives must stay out of OK: the 5th largest positive score; any higher T1 keeps 4.
    assert d.t1 == 0.4
    # NG = p > T2: at 0.4 precision 4/7, 0.5 4/6, 0.6 3/5, 0.7 3/4: the smallest reaching 0.75 is 0.7.
    assert d.t2 == 0.7
    cost = d.cost
    assert cost["recall"] == pytest.approx(5 / 6) and cost["precision"] == pytest.approx(0.75)
    assert cost["missed"] == 1 and cost["clean_in_ng"] == 1
    assert (cost["share_ok"], cost["share_review"], cost["share_ng"]) == pytest.approx((6 / 14, 4 / 14, 4 / 14))
    assert choose_bands(SCORES, TRUTH, BandTargets(recall=0.8, precision=1.0)).t2 == 0.88
    assert choose_bands(SCORES, TRUTH, BandTargets(recall=1.0, precision=0.75)).t1 == 0.2


def test_the_chosen_thresholds_are_the_best_that_meet_the_targets():
    rng = np.random.default_rng(0)
    truth = rng.random(300) < 0.4
    scores = np.clip(rng.normal(np.where(truth, 0.7, 0.3), 0.2), 0, 1).round(3)
    targets = BandTargets(recall=0.97, precision=0.9)
    d = choose_bands(scores, truth, targets)
    grid = np.unique(scores)
    recall = np.array([(scores[truth] >= t).mean() for t in grid])
    assert (scores[truth] >= d.t1).mean() >= 0.97 and d.t1 == grid[recall >= 0.97].max()
    precision = np.array([truth[scores > t].mean() if (scores > t).any() else np.nan for t in grid])
    ok = (grid >= d.t1) & (precision >= 0.9)
    assert truth[scores > d.t2].mean() >= 0.9 and d.t2 == grid[ok].min()


def test_review_rate_sets_t2_and_impossible_targets_are_refused():
    d = choose_bands(SCORES, TRUTH, BandTargets(recall=0.8, precision=None, review_rate=0.2))
    # T1 = 0.4; REVIEW = 0.4 <= p <= T2 holds at most 0.2 * 14 = 2.8 images: 0.4 and 0.5.
    assert (d.t1, d.t2) == (0.4, 0.5) and d.cost["share_review"] == pytest.approx(2 / 14)
    with pytest.raises(ConfigError, match="review-rate 0.9 is impossible"):
        choose_bands(SCORES, TRUTH, BandTargets(recall=0.8, precision=None, review_rate=0.9))
    worst = np.append(SCORES, 0.99)  # a clean image scores highest: no NG band is ever all defects
    with pytest.raises(ConfigError, match="class 2: no T2 >= T1=0.4000 gives .* precision of 1 .*best is 0.667"):
        choose_bands(worst, np.append(TRUTH, False), BandTargets(recall=0.8, precision=1.0), "class 2")
    with pytest.raises(ConfigError, match="no positive image"):
        choose_bands(SCORES[~TRUTH], TRUTH[~TRUTH], BandTargets())
    for bad in (BandTargets(recall=0), BandTargets(precision=1.5), BandTargets(precision=0.9, review_rate=0.1),
                BandTargets(precision=None)):
        with pytest.raises(ConfigError):
            bad.validate()


def test_pr_curve_is_thinned_to_at_most_200_points():
    rng = np.random.default_rng(1)
    scores, truth = rng.random(5000), rng.random(5000) < 0.5
    curve = pr_curve(scores, truth)
    assert 150 <= len(curve["threshold"]) <= 200 and curve["recall"][0] == 1.0 and curve["recall"][-1] > 0
    assert curve["threshold"] == sorted(curve["threshold"])
    small = pr_curve(SCORES, TRUTH)
    assert len(small["threshold"]) == 14 and small["precision"][0] == pytest.approx(6 / 14)
    assert band_cost(SCORES, TRUTH, 1.0, 1.0)["precision"] is None  # an empty NG band has no precision


def test_overall_band_and_uncertainty_rules():
    bands = BandSet(Bands(0.3, 0.7), {1: Bands(0.2, 0.6), 3: Bands(0.4, 0.8)})
    # Step 1 OK: the classes are not looked at, whatever they say.
    assert bands.decide(0.1, [0.4, 0.5, 0.6, 0.5]) == ("OK", 0.0)
    # Step 1 REVIEW: REVIEW, uncertainty the largest of the decisions that counted (class 1 at its middle).
    assert bands.decide(0.35, [0.4, 0.0, 0.0, 0.0]) == ("REVIEW", pytest.approx(1.0))
    assert bands.decide(0.5, [0.0, 0.0, 0.0, 0.0]) == ("REVIEW", pytest.approx(1.0))
    # Step 1 NG, every banded class decided: NG (class 2 and 4 are not banded, so their values do not count).
    assert bands.decide(0.9, [0.1, 0.5, 0.9, 0.5]) == ("NG", 0.0)
    # Step 1 NG but one class in its REVIEW band: REVIEW with that class's uncertainty.
    band, uncertainty = bands.decide(0.9, [0.1, 0.5, 0.5, 0.5])
    assert band == "REVIEW" and uncertainty == pytest.approx(0.5)
    assert BandSet().decide(0.5, None) == ("REVIEW", 1.0)  # step 1 only: as before class bands
    assert BandSet().to_dict() == {"t1": 0.3, "t2": 0.7}
    assert bands.to_dict()["classes"] == {"1": {"t1": 0.2, "t2": 0.6}, "3": {"t1": 0.4, "t2": 0.8}}
    with pytest.raises(ConfigError):
        BandSet(classes={5: Bands()})


def _decision(t1, t2):
    return {"t1": t1, "t2": t2, "curve": {"threshold": [0.1, 0.5], "precision": [0.5, 0.9], "recall": [1.0, 0.4]},
            "cost": {"share_ok": 0.5}}


def test_bands_json_round_trip_and_report(tmp_path):
    binary, multi = tmp_path / "binary", tmp_path / "multi"
    binary.mkdir(), multi.mkdir()
    assert load_bands(binary, multi) is None
    assert bands_report(binary, multi) == {"available": False, "step1": None, "classes": {}}
    write_bands(binary, {"role": "step1", "step1": _decision(0.25, 0.8)})
    assert load_bands(binary, multi) == BandSet(Bands(0.25, 0.8), {})
    write_bands(multi, {"role": "classes", "classes": {"2": _decision(0.1, 0.9), "4": _decision(0.3, 0.3)}})
    assert load_bands(binary, multi) == BandSet(Bands(0.25, 0.8), {2: Bands(0.1, 0.9), 4: Bands(0.3, 0.3)})
    assert load_bands(None, multi) == BandSet(Bands(), {2: Bands(0.1, 0.9), 4: Bands(0.3, 0.3)})
    report = bands_report(binary, multi)
    assert report["available"] and report["step1"]["t1"] == 0.25 and set(report["classes"]) == {"2", "4"}
    assert report["step1"]["curve"] == {"threshold": [0.1, 0.5], "precision": [0.5, 0.9], "recall": [1.0, 0.4]}
    json.dumps(report)
    assert read_bands(binary)["format"] == 1
    (binary / "bands.json").write_text(json.dumps({"format": 1, "step1": {"t1": 0.9, "t2": 0.1}}))
    with pytest.raises(RunError, match="T1"):
        load_bands(binary, multi)
    (binary / "bands.json").write_text("{not json")
    with pytest.raises(RunError, match="cannot read the bands"):
        read_bands(binary)
    with pytest.raises(RunError):
        write_bands(multi, {"classes": {"7": _decision(0.1, 0.2)}})


def test_the_figure_is_written(tmp_path):
    d = choose_bands(SCORES, TRUTH, BandTargets(recall=0.8, precision=0.75))
    path = plot_bands({"step 1": d, "class 3": d}, tmp_path / "bands.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_tune_bands_command_writes_both_runs(tiny_runs, synth_dir, tmp_path):
    import shutil

    from tests.cli_runner import run_cli

    runs = {name: shutil.copytree(src, tmp_path / name) for name, src in tiny_runs.items()}  # shared: copies
    base = ["tune-bands", "--binary", runs["binary"], "--multiclass", runs["multiclass"], "--data", synth_dir,
            "--device", "cpu", "--workers", "1"]
    proc = run_cli(*base, "--target-recall", "1.0", "--review-rate", "0.1")
    assert proc.returncode == 0, proc.stderr
    assert "step 1" in proc.stdout and "bands.png" in proc.stdout
    step1 = read_bands(runs["binary"])
    classes = read_bands(runs["multiclass"])
    assert step1["step1"]["cost"]["recall"] == 1.0 and step1["step1"]["cost"]["share_review"] <= 0.1
    assert step1["tuned"]["split"] == "val" and step1["tuned"]["targets"]["review_rate"] == 0.1
    splits = json.loads((runs["binary"] / "splits.json").read_text())
    assert step1["step1"]["cost"]["images"] == len(splits["val"])
    assert set(classes["classes"]) | set(classes["tuned"]["skipped"]) == {"1", "2", "3", "4"}
    assert (runs["binary"] / "bands.png").is_file() and (runs["multiclass"] / "bands.png").is_file()
    loaded = load_bands(runs["binary"], runs["multiclass"])
    assert loaded.step1.t1 == step1["step1"]["t1"] and set(loaded.classes) == {int(c) for c in classes["classes"]}
    # Tuned for these weights: no note; retrained afterwards (other weights in model.pt): a note says so.
    from steelinspect.runs.bands import stale_notes
    from steelinspect.runs.store import load_run

    loaded = {name: load_run(path) for name, path in runs.items()}
    assert step1["weights_id"] == loaded["binary"].weights_id and stale_notes(loaded) == []
    content = read_bands(runs["multiclass"])
    write_bands(runs["multiclass"], {**content, "weights_id": "0" * 64})
    (note,) = stale_notes(loaded)
    assert "multiclass run's bands.json was tuned for other weights" in note and "tune-bands again" in note


@pytest.mark.slow
def test_tune_bands_on_another_labelled_set_uses_all_its_images(tiny_runs, tiny_seg_data, tmp_path):
    """A plant's reviewed frames are not what the runs were trained on: every image of them is tuned on (step 1)
    and every defect image (the classes), and bands.json says so."""
    import shutil

    from steelinspect.data.master import build_master
    from tests.cli_runner import run_cli

    runs = {name: shutil.copytree(src, tmp_path / name) for name, src in tiny_runs.items()}
    proc = run_cli("tune-bands", "--binary", runs["binary"], "--multiclass", runs["multiclass"], "--data",
                   tiny_seg_data, "--device", "cpu", "--workers", "1", "--target-recall", "1.0",
                   "--review-rate", "0.5")
    assert proc.returncode == 0, proc.stderr
    assert f"Bands tuned on {tiny_seg_data}" in " ".join(proc.stdout.split())
    master = build_master(tiny_seg_data)
    step1, classes = read_bands(runs["binary"]), read_bands(runs["multiclass"])
    assert step1["tuned"]["split"] == "all" and classes["tuned"]["split"] == "all"
    assert step1["step1"]["cost"]["images"] == len(master) == 12
    assert step1["step1"]["cost"]["positives"] == int(master.Defect.sum())
    assert classes["tuned"]["images"] == int(master.Defect.sum())
    assert step1["tuned"]["data"] == str(tiny_seg_data.resolve())
    for c, d in classes["classes"].items():  # each banded class was tuned on the defect images of this set
        assert d["cost"]["images"] == int(master.Defect.sum())
        assert d["cost"]["positives"] == int(master.ClassIds.map(lambda ids: int(c) in ids).sum())


@pytest.mark.slow
def test_tune_bands_on_a_moved_training_set_leaves_the_training_images_out(tiny_runs, synth_dir, tmp_path):
    import shutil

    from steelinspect.infer.cascade import PredictConfig
    from steelinspect.tuning.bands import tune_bands

    runs = {name: shutil.copytree(src, tmp_path / name) for name, src in tiny_runs.items()}
    moved = shutil.copytree(synth_dir, tmp_path / "moved")  # the training set under another path
    tune_bands(runs["binary"], runs["multiclass"], moved, BandTargets(recall=1.0, precision=None, review_rate=0.0),
               PredictConfig(device="cpu", workers=1))
    step1 = read_bands(runs["binary"])
    splits = json.loads((runs["binary"] / "splits.json").read_text())
    assert step1["tuned"]["split"] == "all"
    assert step1["step1"]["cost"]["images"] == 64 - len(splits["train"]) == len(splits["val"]) + len(splits["test"])
