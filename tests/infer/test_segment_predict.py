"""The segment step of prediction: gating by the cascade, post-processing, areas and boxes."""

from types import SimpleNamespace

import numpy as np
import pytest

from steelinspect.data.transforms import Preprocess
from steelinspect.errors import ConfigError, RunError
from steelinspect.infer.segment_predict import SegmentOptions, SegmentStep, segment_columns
from steelinspect.postprocess.masks import PostProcess


def fake_run(head="segment"):
    post = PostProcess(thresholds=(0.5,) * 4, min_areas=(100, 100, 100, 100)).to_dict()
    return SimpleNamespace(head=head, postprocess=post, preprocess=Preprocess(256, 1600), run_dir="runs/x")


def engine(x):
    """Logits: a 40x50 class-3 blob and a 20x30 class-4 blob on every image."""
    logits = np.full((len(x), 4, 256, 1600), -10.0, np.float32)
    logits[:, 2, 10:50, 100:150] = 10
    logits[:, 3, 200:220, 1000:1030] = 10
    return logits


def row(has_defect=True, classes="3 4", p=(0.1, 0.1, 0.9, 0.9)):
    return {"ImageId": "a.jpg", "has_defect": has_defect, "classes": classes,
            **{f"p_class_{c}": v for c, v in zip((1, 2, 3, 4), p)}}


X = np.zeros((1, 1, 256, 1600), np.float32)


def test_masks_areas_and_boxes():
    (result,) = SegmentStep(fake_run(), SegmentOptions(), engine)(X, [row()])
    cols = segment_columns(result.regions)
    assert cols["area_3"] == 40 * 50 and cols["boxes_3"] == "100 10 50 40"
    assert cols["area_4"] == 20 * 30 and cols["boxes_4"] == "1000 200 30 20"
    assert cols["area_1"] == 0 and cols["boxes_1"] == ""
    assert result.masks[2].sum() == 2000 and result.masks.shape == (4, 256, 1600)


def test_binary_step_calling_clean_drops_every_mask():
    (result,) = SegmentStep(fake_run(), SegmentOptions(), engine)(X, [row(has_defect=False)])
    assert not result.masks.any() and all(r.area == 0 for r in result.regions)
    (kept,) = SegmentStep(fake_run(), SegmentOptions(binary_gate=False), engine)(X, [row(has_defect=False)])
    assert kept.masks.any()


def test_the_segmenter_runs_only_on_images_step_one_calls_defective():
    seen = []

    def counting(x):
        seen.append(len(x))
        return engine(x)

    x = np.zeros((3, 1, 256, 1600), np.float32)
    rows = [row(has_defect=False), row(), row(has_defect=False)]
    results = SegmentStep(fake_run(), SegmentOptions(), counting)(x, rows)
    assert seen == [1] and [r.masks.any() for r in results] == [False, True, False]
    SegmentStep(fake_run(), SegmentOptions(), counting)(x, [row(has_defect=False)] * 3)
    assert seen == [1]  # nothing to segment: the model is not called at all


def test_class_gates():
    (drop,) = SegmentStep(fake_run(), SegmentOptions(class_gate="drop"), engine)(X, [row(classes="3")])
    assert drop.masks[2].any() and not drop.masks[3].any()
    # scale: min area 100 / p; class 4's 600 px blob survives p=0.9 (111 px) but not p=0.1 (1000 px).
    step = SegmentStep(fake_run(), SegmentOptions(class_gate="scale"), engine)
    (high,) = step(X, [row(p=(0.1, 0.1, 0.9, 0.9))])
    (low,) = step(X, [row(p=(0.1, 0.1, 0.9, 0.1))])
    assert high.masks[3].any() and not low.masks[3].any() and low.masks[2].any()


def test_refuses_wrong_run_and_option():
    with pytest.raises(RunError, match="needs a segment run"):
        SegmentStep(fake_run("binary"), SegmentOptions(), engine)
    with pytest.raises(ConfigError, match="--class-gate"):
        SegmentStep(fake_run(), SegmentOptions(class_gate="sometimes"), engine)
