"""The demo end to end at a toy budget: every stage's output, the report's sections, reuse on a second run."""

import json
from dataclasses import replace

import pandas as pd
import pytest

from steelinspect.demo import DemoConfig, run_demo
from steelinspect.errors import ConfigError
from steelinspect.inspect_log import open_log
from steelinspect.inspect_log.coils import coil_frames
from steelinspect.serve.tokens import TokenStore

pytestmark = pytest.mark.slow


def test_demo_writes_every_output_and_reuses_them(tmp_path):
    # The smallest sizes every model accepts (multiples of 32): this proves the stages and the reuse, not quality.
    config = DemoConfig(out=tmp_path / "demo", images=48, image_size=(32, 64), epochs=1, seg_image_size=(32, 160),
                        seg_crop_width=(64, 96), seg_epochs=1, workers=0)
    logs = []
    result = run_demo(config, log=logs.append)
    for name in ("data", "held-out data", "master table", "binary run", "multiclass run", "segment run", "predictions",
                 "submission", "overlays", "report"):
        assert result.outputs[name].exists(), name
    for run in ("binary", "multiclass", "segment"):
        assert (result.outputs[f"{run} run"] / "model.onnx").is_file()  # exported, so prediction used ONNX Runtime
    assert json.loads((result.outputs["multiclass run"] / "config.json").read_text())["init"].endswith("binary")

    holdout_images = sorted(p.name for p in (result.outputs["held-out data"] / "train_images").iterdir())
    predictions = pd.read_csv(result.outputs["predictions"], keep_default_na=False)
    assert sorted(predictions.ImageId) == holdout_images and {"area_3", "boxes_3"} <= set(predictions.columns)
    submission = pd.read_csv(result.outputs["submission"], keep_default_na=False)
    assert len(submission) == 4 * len(holdout_images)
    assert len(list(result.outputs["overlays"].glob("*.png"))) == len(holdout_images)

    gated = result.metrics["gated"]
    assert gated["postprocess"]["gate"] == "drop" and 0 <= gated["gated_tuned"]["dice_kaggle"] <= 1
    stored = json.loads((result.outputs["segment run"] / "metrics.json").read_text())["gated"]
    assert stored["postprocess"] == gated["postprocess"]
    scored = result.metrics["submission"]
    assert 0 <= scored["dice_kaggle"] <= 1 and scored["images"] == len(holdout_images)
    html = result.outputs["report"].read_text()
    for section in ("Step 1", "Step 2", "Segmentation", "On held-out images", "all-empty",
                    "Segmentation gated by the classifiers", "more overlays in overlays/"):
        assert section in html, section
    tokens = config.out / "tokens.txt"
    assert result.serve_command == (
        f"steelinspect serve --binary {result.outputs['binary run']} --multiclass {result.outputs['multiclass run']} "
        f"--segment {result.outputs['segment run']} --data {result.outputs['held-out data']} "
        f"--db sqlite:///{config.out / 'inspections.db'} --token-file {tokens}")

    # Prediction recorded every held-out image as a frame of the demo coil; a token for reviewer "demo".
    with open_log(f"sqlite:///{config.out / 'inspections.db'}") as log:
        frames = coil_frames(log, "DEMO-1")
        assert sorted(f.entry.image_id for f in frames) == holdout_images and log.count() == len(holdout_images)
        assert [f.entry.frame for f in frames] == list(range(len(holdout_images)))
        by_image = predictions.set_index("ImageId")
        assert all(f.entry.p_defect == pytest.approx(by_image.loc[f.entry.image_id, "p_defect"], abs=1e-6)
                   for f in frames)
        assert result.bands == log.band_counts() and sum(result.bands.values()) == len(holdout_images)
    assert result.token not in tokens.read_text() and TokenStore(tokens).reviewer(result.token) == "demo"
    assert any("logged" in line and "DEMO-1" in line for line in logs)

    logs.clear()
    again = run_demo(config, log=logs.append)
    # two datasets, three runs, the gated setting, the inspection log (not logged twice)
    assert sum("reusing" in line for line in logs) == 7
    assert again.metrics["submission"] == scored and again.bands == result.bands
    assert TokenStore(tokens).reviewer(result.token) is None and TokenStore(tokens).reviewer(again.token) == "demo"
    with pytest.raises(ConfigError, match=r"other settings \(--epochs \d+ in the run, 2 now\)"):
        run_demo(replace(config, epochs=2), log=logs.append)  # never silently reuses a stale run
