"""K-fold training (`train ... --folds K`) and ensembles (runs/ensemble.py): end to end on tiny synthetic data."""

import json
import os
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from steelinspect.data.master import build_master
from steelinspect.data.splits import make_splits
from steelinspect.infer.cascade import Cascade, PredictConfig, predict
from steelinspect.runs.ensemble import Ensemble, average_as_logits, load_model
from tests.cli_runner import run_main

pytestmark = pytest.mark.slow

TINY = ("--epochs", "1", "--batch-size", "8", "--image-size", "64x128", "--workers", "0", "--arch", "vgg",
        "--device", "cpu")


@pytest.fixture(scope="module")
def fold_parent(synth_dir, tmp_path_factory):
    """`train multiclass --folds 3` through the CLI (shared by this module, do not modify)."""
    out = tmp_path_factory.mktemp("folds") / "multiclass"
    code, stdout, err = run_main("train", "multiclass", synth_dir, "--out", out, "--folds", "3", "--seed", "5", *TINY)
    assert code == 0, err
    assert "ensemble of 3" in stdout
    return out


def test_the_parent_holds_three_runs_and_oof_covers_every_non_test_image_once(fold_parent, synth_dir):
    config = json.loads((fold_parent / "config.json").read_text())
    assert config["folds"] == 3 and config["seed"] == 5 and config["fold"] == 0
    master = build_master(synth_dir)
    plain = make_splits(master, "multilabel", "full", 180, 5)  # what an ordinary run of the same seed holds out
    test = set(plain["test"].ImageId)
    vals = []
    for k in (1, 2, 3):
        member = fold_parent / f"fold_{k}"
        assert {"model.pt", "metrics.json", "splits.json", "config.json"} <= {p.name for p in member.iterdir()}
        assert json.loads((member / "config.json").read_text())["fold"] == k
        splits = json.loads((member / "splits.json").read_text())
        assert set(splits["test"]) == test  # the held-out test split stays out of every fold
        assert not set(splits["train"]) & set(splits["val"]) and not set(splits["train"]) & test
        vals.append(set(splits["val"]))
    oof = pd.read_csv(fold_parent / "oof.csv")
    non_test = set(master[master.Defect].ImageId) - test  # the multi-label task: every defect image
    assert len(oof) == len(non_test) and set(oof.ImageId) == non_test  # every non-test image exactly once
    for k, val in enumerate(vals, start=1):
        assert set(oof.ImageId[oof.fold == k]) == val
    probs = oof[[f"p_class_{c}" for c in (1, 2, 3, 4)]].to_numpy()
    assert ((probs >= 0) & (probs <= 1)).all()
    ensemble = json.loads((fold_parent / "ensemble.json").read_text())
    assert ensemble["members"] == ["fold_1", "fold_2", "fold_3"] and len(ensemble["thresholds"]) == 4
    metrics = json.loads((fold_parent / "metrics.json").read_text())
    assert metrics["thresholds"] == ensemble["thresholds"]  # tuned on the OOF predictions
    assert metrics["oof"]["n"] == len(oof) and metrics["test"]["n"] == len(test & set(master[master.Defect].ImageId))
    assert set(metrics["members_test"]["f1"]) == {"fold_1", "fold_2", "fold_3"}


def test_ensemble_prediction_is_the_mean_of_the_members_probabilities(fold_parent, tiny_runs, synth_dir):
    images = sorted((synth_dir / "train_images").iterdir())[:10]
    config = PredictConfig(batch_size=4, workers=1, device="cpu", engine="torch")
    together = pd.DataFrame(predict(images, Cascade.from_runs(tiny_runs["binary"], fold_parent, config), config))
    alone = [pd.DataFrame(predict(images, Cascade.from_runs(tiny_runs["binary"], fold_parent / f"fold_{k}", config),
                                  config)) for k in (1, 2, 3)]
    columns = [f"p_class_{c}" for c in (1, 2, 3, 4)]
    mean = np.mean([a[columns].to_numpy() for a in alone], axis=0)
    assert np.allclose(together[columns].to_numpy(), mean, atol=1e-6)
    # The parent's thresholds (tuned on OOF) decide, not any member's.
    run = load_model(fold_parent)
    assert isinstance(run, Ensemble) and run.thresholds == json.loads((fold_parent / "ensemble.json").read_text())[
        "thresholds"]
    # Several run directories given together are the same ensemble.
    listed = load_model([fold_parent / f"fold_{k}" for k in (1, 2, 3)])
    assert listed.weights_id == run.weights_id


def test_average_as_logits_gives_the_mean_probability():
    logits = [torch.tensor([[2.0, -1.0, 0.5, 40.0]]), torch.tensor([[-3.0, 0.0, 0.5, 45.0]])]
    got = torch.sigmoid(average_as_logits(logits, "multilabel"))
    assert torch.allclose(got, torch.stack([torch.sigmoid(x) for x in logits]).mean(0), atol=1e-6)
    assert torch.isfinite(average_as_logits(logits, "multilabel")).all()  # p = 1: clipped, never infinite
    got = torch.softmax(average_as_logits(logits, "multiclass"), dim=1)
    assert torch.allclose(got, torch.stack([torch.softmax(x, dim=1) for x in logits]).mean(0), atol=1e-6)


def test_evaluate_and_onnx_export_of_a_parent(fold_parent, tiny_runs, synth_dir, tmp_path):
    parent = shutil.copytree(fold_parent, tmp_path / "parent")
    code, _, err = run_main("evaluate", parent, "--data", synth_dir, "--workers", "0", "--device", "cpu")
    assert code == 0, err
    evaluation = json.loads((parent / "evaluation.json").read_text())
    metrics = json.loads((parent / "metrics.json").read_text())
    assert evaluation["test"]["f1"] == pytest.approx(metrics["test"]["f1"])
    pytest.importorskip("onnxruntime")
    binary = shutil.copytree(tiny_runs["binary"], tmp_path / "binary")  # the shared run stays as it is
    code, stdout, err = run_main("export", parent, binary)  # a parent and a run: every member on its own
    assert code == 0, err
    assert all((parent / f"fold_{k}" / "model.onnx").is_file() for k in (1, 2, 3)) and stdout.count("wrote") == 4
    images = sorted((synth_dir / "train_images").iterdir())[:6]
    rows = {}
    for engine in ("torch", "onnx"):
        config = PredictConfig(batch_size=3, workers=1, device="cpu", engine=engine)
        cascade = Cascade.from_runs(binary, parent, config)
        assert cascade.multi_engine.name == engine
        rows[engine] = pd.DataFrame(predict(images, cascade, config))
    columns = [f"p_class_{c}" for c in (1, 2, 3, 4)]
    assert np.allclose(rows["torch"][columns], rows["onnx"][columns], atol=1e-4)


def test_resume_reuses_finished_folds(fold_parent, synth_dir, tmp_path):
    parent = shutil.copytree(fold_parent, tmp_path / "parent")
    for run_dir in (parent, *(parent / f"fold_{k}" for k in (1, 2, 3))):  # as if trained here (--out is compared)
        config = json.loads((run_dir / "config.json").read_text())
        config["out"] = str(run_dir)
        (run_dir / "config.json").write_text(json.dumps(config))
    code, _, err = run_main("train", "multiclass", synth_dir, "--out", parent, "--folds", "3", "--seed", "5", *TINY)
    assert code == 1 and "already holds a run" in err and len(err.strip().splitlines()) == 1
    (parent / "fold_3" / "metrics.json").unlink()  # fold 3 interrupted after its last epoch
    (parent / "ensemble.json").unlink()
    finished = (parent / "fold_1" / "model.pt").stat().st_mtime_ns
    code, stdout, err = run_main("train", "multiclass", synth_dir, "--out", parent, "--folds", "3", "--seed", "5",
                                 "--resume", *TINY)
    assert code == 0, err
    assert "fold 1/3: finished, reused" in stdout and "fold 3/3 (resuming)" in stdout
    assert (parent / "fold_1" / "model.pt").stat().st_mtime_ns == finished
    assert (parent / "fold_3" / "metrics.json").is_file() and (parent / "ensemble.json").is_file()


def test_a_wrong_directory_is_refused_in_one_line(fold_parent, tiny_runs, synth_dir, tmp_path):
    unfinished = tmp_path / "unfinished"
    (unfinished / "fold_1").mkdir(parents=True)
    shutil.copy(fold_parent / "config.json", unfinished / "config.json")
    empty = tmp_path / "empty"
    empty.mkdir()
    for wrong, says in ((empty, "neither a run directory"), (unfinished, "its training has not finished"),
                        (tmp_path / "missing", "run directory not found")):
        code, _, err = run_main("predict", synth_dir / "train_images", "--binary", tiny_runs["binary"],
                                "--multiclass", wrong, "--out", tmp_path / "p.csv")
        assert code == 1 and says in err and len(err.strip().splitlines()) == 1, err
    # Members of different heads do not make an ensemble.
    code, _, err = run_main("evaluate", tiny_runs["binary"], fold_parent, "--data", synth_dir, "--out",
                            tmp_path / "e.json")
    assert code == 1 and "must share one head" in err and len(err.strip().splitlines()) == 1, err


def test_folds_tune_gate_end_to_end(tiny_seg_data, tmp_path):
    """`--folds 3` for all three steps, ensemble prediction with --segment, and tune-gate on the segment parent:
    tuned on the out-of-fold predictions (member k gated by the classifiers' member k), stored in ensemble.json."""
    seg_tiny = ("--epochs", "1", "--workers", "0", "--device", "cpu", "--seed", "0", "--folds", "3")
    for task, extra in (("binary", ("--batch-size", "4", "--image-size", "64x128", "--arch", "vgg")),
                        ("multiclass", ("--batch-size", "4", "--image-size", "64x128", "--arch", "vgg")),
                        ("segment", ("--batch-size", "4", "--image-size", "32x256", "--crop-width", "128"))):
        code, _, err = run_main("train", task, tiny_seg_data, "--out", tmp_path / task, *seg_tiny, *extra)
        assert code == 0, err
    assert (tmp_path / "segment" / "oof.npz").is_file()
    oof = np.load(tmp_path / "segment" / "oof.npz")
    test = json.loads((tmp_path / "segment" / "splits.json").read_text())["test"]
    assert len(oof["image_ids"]) + len(test) == len(list((tiny_seg_data / "train_images").iterdir()))
    runs = ("--binary", tmp_path / "binary", "--multiclass", tmp_path / "multiclass")
    code, stdout, err = run_main("tune-gate", tmp_path / "segment", *runs, "--data", tiny_seg_data, "--device", "cpu")
    assert code == 0, err
    stored = json.loads((tmp_path / "segment" / "ensemble.json").read_text())["postprocess"]
    gated = json.loads((tmp_path / "segment" / "metrics.json").read_text())["gated"]
    assert stored == gated["postprocess"] and stored["gate"] == "drop"
    assert gated["tuned_on"] == "out-of-fold predictions"
    assert gated["val_gated_tuned"]["images"] == len(oof["image_ids"]) and gated["gated_tuned"]["images"] == len(test)
    images = sorted((tiny_seg_data / "train_images").iterdir())[:4]
    code, _, err = run_main("predict", *images, *runs, "--segment", tmp_path / "segment", "--out", tmp_path / "p.csv",
                            "--submission", tmp_path / "s.csv", "--workers", "1", "--engine", "torch", "--device", "cpu")
    assert code == 0, err
    assert len(pd.read_csv(tmp_path / "p.csv")) == 4 and len(pd.read_csv(tmp_path / "s.csv")) == 16
    # Single classifier runs cannot gate an out-of-fold tuning (they trained on the folds): refused in one line.
    code, _, err = run_main("tune-gate", tmp_path / "segment", "--binary", tmp_path / "binary" / "fold_1",
                            "--multiclass", tmp_path / "multiclass" / "fold_1", "--data", tiny_seg_data)
    assert code == 1 and err.count("error:") == 1 and "--folds parents of the same 3 folds" in err, err


def test_fold_parents_combine_fold_by_fold_tuned_on_their_out_of_fold_predictions(fold_parent, synth_dir, tmp_path):
    """`steelinspect ensemble PARENT PARENT`: fold k of each parent predicts fold k, so the thresholds are tuned on
    every non-test image out of fold: the mean of the two parents' oof.csv probabilities."""
    from steelinspect.runs.config import TrainConfig
    from steelinspect.train.tasks import Collector, make_task

    other = tmp_path / "other"  # the same folds (same --seed), another learning rate
    code, _, err = run_main("train", "multiclass", synth_dir, "--out", other, "--folds", "3", "--seed", "5", "--lr",
                            "3e-3", *TINY)
    assert code == 0, err
    out = tmp_path / "both"
    code, stdout, err = run_main("ensemble", fold_parent, other, "--out", out, "--workers", "0", "--device", "cpu")
    assert code == 0, err
    assert "out-of-fold predictions of" in stdout

    ensemble = load_model(out)
    assert isinstance(ensemble, Ensemble) and len(ensemble.members) == 6
    stored = json.loads((out / "ensemble.json").read_text())
    assert "out-of-fold" in stored["tuned_on"] and "oof" in json.loads((out / "metrics.json").read_text())
    a, b = (pd.read_csv(p / "oof.csv").set_index("ImageId") for p in (fold_parent, other))
    b = b.loc[a.index]
    p_cols, y_cols = [c for c in a.columns if c.startswith("p_")], [c for c in a.columns if c.startswith("y_")]
    config = TrainConfig.from_dict(json.loads((fold_parent / "fold_1" / "config.json").read_text()))
    task = make_task(ensemble.head)
    task.configure(config)
    mean = ((a[p_cols].to_numpy() + b[p_cols].to_numpy()) / 2).astype(np.float32)
    collector = Collector([mean], [a[y_cols].to_numpy().astype(np.float32)], [np.arange(len(a))], 0.0, len(a))
    assert np.allclose(stored["thresholds"], task.param_fields(task.tune(collector))["thresholds"])

    plain = tmp_path / "plain"
    code, _, err = run_main("train", "multiclass", synth_dir, "--out", plain, "--seed", "5", *TINY)
    assert code == 0, err
    fewer = shutil.copytree(other, tmp_path / "fewer")
    meta = json.loads((fewer / "ensemble.json").read_text())
    (fewer / "ensemble.json").write_text(json.dumps({**meta, "folds": 2, "members": meta["members"][:2]}))
    for runs, says in (((fold_parent, plain), "not a --folds parent"), ((fold_parent, fewer), "holds 2 folds where")):
        code, _, err = run_main("ensemble", *runs, "--out", tmp_path / "x", "--workers", "0", "--device", "cpu")
        assert code == 1 and says in err and len(err.strip().splitlines()) == 1, (says, err)
    assert not (tmp_path / "x").exists()
