import json

import numpy as np
import pandas as pd
import pytest

from steelinspect.data.master import build_master
from steelinspect.infer.cascade import (
    PREDICTION_COLUMNS,
    Cascade,
    PredictConfig,
    decide_classes,
    predict,
)
from steelinspect.metrics.cascade import evaluate_cascade
from steelinspect.runs.store import load_run
from tests.cli_runner import run_cli as cli
from tests.cli_runner import run_main

pytestmark = pytest.mark.slow



def test_decide_classes():
    assert decide_classes("multilabel", np.array([0.9, 0.1, 0.7, 0.2]), [0.5] * 4) == [1, 3]
    assert decide_classes("multilabel", np.array([0.3, 0.1, 0.4, 0.2]), [0.5] * 4) == [3]
    assert decide_classes("multiclass", np.array([0.1, 0.6, 0.2, 0.1]), []) == [2]


def test_predict_cli_writes_every_readable_image(tiny_runs, synth_dir, tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for p in sorted((synth_dir / "train_images").iterdir())[:9]:
        (folder / p.name).write_bytes(p.read_bytes())
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    proc = cli("predict", folder, "--binary", tiny_runs["binary"], "--multiclass", tiny_runs["multiclass"],
               "--out", tmp_path / "p.csv", "--batch-size", "4")
    assert proc.returncode == 0
    assert "broken.jpg" in proc.stderr and "1 skipped" in proc.stdout
    table = pd.read_csv(tmp_path / "p.csv", keep_default_na=False)
    assert list(table.columns) == PREDICTION_COLUMNS and len(table) == 9
    probs = table[["p_defect", "p_class_1", "p_class_2", "p_class_3", "p_class_4"]].to_numpy()
    assert ((probs >= 0) & (probs <= 1)).all()
    threshold = load_run(tiny_runs["binary"]).thresholds[0]
    assert (table.has_defect == (table.p_defect >= threshold - 1e-6)).all()
    assert (table.loc[~table.has_defect, "classes"] == "").all()
    assert (table.loc[table.has_defect, "classes"] != "").all()
    # Step 2's classes follow its own rule, recomputed here from the written probabilities.
    multi = load_run(tiny_runs["multiclass"])
    class_cols = [f"p_class_{c}" for c in (1, 2, 3, 4)]
    for _, row in table[table.has_defect].iterrows():
        p = row[class_cols].to_numpy(dtype=float)
        if multi.head == "multilabel":
            if np.any(np.abs(p - np.array(multi.thresholds)) < 1e-5):
                continue  # rounded to 6 decimals in the CSV: too close to call
            expected = [c for c, pc, t in zip((1, 2, 3, 4), p, multi.thresholds) if pc >= t] or [int(p.argmax()) + 1]
        else:
            assert abs(p.sum() - 1) < 1e-4  # softmax
            expected = [int(p.argmax()) + 1]
        assert str(row["classes"]) == " ".join(map(str, expected))


def test_batch_size_does_not_change_predictions(tiny_runs, synth_dir):
    runs = load_run(tiny_runs["binary"]), load_run(tiny_runs["multiclass"])
    images = sorted((synth_dir / "train_images").iterdir())[:10]
    out = []
    for bs in (1, 7):
        config = PredictConfig(batch_size=bs, workers=2, device="cpu")
        out.append(pd.DataFrame(list(predict(images, Cascade(*runs, config), config))))
    cols = ["p_defect", "p_class_1", "p_class_4"]
    assert np.allclose(out[0][cols].to_numpy(), out[1][cols].to_numpy(), atol=1e-5)


def test_evaluate_cascade_counts_step1_misses(tiny_runs, synth_dir, tmp_path):
    proc = cli("evaluate-cascade", "--binary", tiny_runs["binary"], "--multiclass", tiny_runs["multiclass"],
               "--data", synth_dir, "--out", tmp_path / "m.json")
    assert proc.returncode == 0
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert {"images", "step1", "step2", "end_to_end", "missed_by_step1"} <= set(metrics)
    assert metrics["images"] == 64

    # Step 1 says clean everywhere: every defect is a miss, end-to-end recall is 0, step 2 has nothing to judge.
    master = build_master(synth_dir)
    clean = pd.DataFrame({"ImageId": master.ImageId, "p_defect": 0.0, "has_defect": False, "classes": ""})
    m = evaluate_cascade(clean, master)
    assert m["missed_by_step1"] == int(master.Defect.sum())
    assert m["end_to_end"]["recall"] == 0 and m["step2"]["n"] == 0 and m["step1"]["recall"] == 0
    # A perfect cascade scores 1 everywhere.
    perfect = pd.DataFrame({"ImageId": master.ImageId, "p_defect": master.Defect.astype(float),
                            "has_defect": master.Defect, "classes": master.ClassIds.map(lambda c: " ".join(map(str, c)))})
    m = evaluate_cascade(perfect, master)
    assert m["end_to_end"]["f1"] == 1 and m["step2"]["f1"] == 1 and m["step1"]["f1"] == 1
    # Calling everything defective with every class is what each chance F1 says.
    everything = pd.DataFrame({"ImageId": master.ImageId, "p_defect": 1.0, "has_defect": True, "classes": "1 2 3 4"})
    m = evaluate_cascade(everything, master)
    assert m["step1"]["f1"] == pytest.approx(m["step1"]["chance_f1"])
    for c, pc in m["end_to_end"]["per_class"].items():
        assert pc["f1"] == pytest.approx(pc["chance_f1"]), c
    from steelinspect.metrics.cascade import CASCADE_COLUMNS, cascade_rows

    rows = cascade_rows(m)
    assert all(len(row) == len(CASCADE_COLUMNS) for row in rows)
    assert rows[0][CASCADE_COLUMNS.index("chance")] == pytest.approx(m["step1"]["chance_f1"])


def test_predict_on_real_images(tiny_runs, real_sample, tmp_path):
    proc = cli("predict", real_sample / "train_images", "--binary", tiny_runs["binary"], "--multiclass",
               tiny_runs["multiclass"], "--out", tmp_path / "real.csv")
    assert proc.returncode == 0
    assert len(pd.read_csv(tmp_path / "real.csv")) == 30


def test_predict_refuses_bad_runs(tiny_runs, tmp_path, synth_dir):
    code, _, err = run_main("predict", synth_dir / "train_images", "--binary", tiny_runs["multiclass"], "--multiclass",
                            tiny_runs["multiclass"], "--out", tmp_path / "x.csv")
    assert code == 1 and "--binary needs a binary run" in err
    code, _, err = run_main("predict", tmp_path / "nothing", "--binary", tiny_runs["binary"], "--multiclass",
                            tiny_runs["multiclass"], "--out", tmp_path / "x.csv")
    assert code == 1 and "no such file or folder" in err
    assert not (tmp_path / "x.csv").exists()
