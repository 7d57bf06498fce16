"""`steelinspect adapt` (tuning/adapt.py): BatchNorm statistics re-measured on unlabelled frames, nothing else."""

import json

import cv2
import numpy as np
import pytest
import torch

from steelinspect.data.images import read_gray
from steelinspect.errors import ConfigError, RunError
from steelinspect.runs.store import load_run, read_model_file, update_model_params
from steelinspect.tuning.adapt import MIN_FRAMES, adapt_run, batchnorm_layers
from tests.cli_runner import run_main


@pytest.fixture(scope="module")
def frames(synth_dir, tmp_path_factory):
    """24 of the synthetic images made darker and flatter (another camera's steel), plus one broken file."""
    out = tmp_path_factory.mktemp("frames")
    for path in sorted((synth_dir / "train_images").iterdir())[:24]:
        gray = read_gray(path).astype(np.float32)
        cv2.imwrite(str(out / f"{path.stem}.png"), np.clip(0.5 * gray + 20, 0, 255).astype(np.uint8))
    (out / "broken.jpg").write_bytes(b"not a jpeg")
    return out


def _first_bn_input(run, paths) -> torch.Tensor:
    """What the first BatchNorm layer receives for these frames: its channels' values over images and pixels."""
    seen = []
    layer = batchnorm_layers(run.model)[0]
    hook = layer.register_forward_hook(lambda _m, inputs, _out: seen.append(inputs[0].detach()))
    with torch.no_grad():
        run.model(torch.from_numpy(np.stack([run.preprocess(read_gray(p)) for p in paths])))
    hook.remove()
    return seen[0]


def test_adapt_measures_batchnorm_statistics_and_changes_nothing_else(tiny_runs, frames, tmp_path):
    source = tiny_runs["binary"]
    before = (source / "model.pt").read_bytes()
    blob = read_model_file(source)
    out = adapt_run(source, frames, tmp_path / "adapted", batch_size=64, device="cpu", workers=0)
    assert (source / "model.pt").read_bytes() == before  # RUN is never written

    old, new = load_run(source), load_run(out)
    # One batch holds every readable frame, so the new statistics are exactly those frames' mean and variance.
    x = _first_bn_input(old, sorted(p for p in frames.iterdir() if p.suffix == ".png"))
    layer = batchnorm_layers(new.model)[0]
    assert torch.allclose(layer.running_mean, x.mean(dim=(0, 2, 3)), atol=1e-4)
    assert torch.allclose(layer.running_var, x.var(dim=(0, 2, 3), unbiased=True), rtol=1e-3, atol=1e-5)
    assert not torch.allclose(layer.running_mean, batchnorm_layers(old.model)[0].running_mean, atol=1e-3)

    old_state, new_state = old.model.state_dict(), new.model.state_dict()
    moved = {k for k in old_state if not torch.equal(old_state[k], new_state[k])}
    assert moved and all(k.endswith(("running_mean", "running_var", "num_batches_tracked")) for k in moved)
    assert new.thresholds == old.thresholds and new.preprocess == old.preprocess
    assert new.weights_id != old.weights_id == blob["weights_id"]

    record = json.loads((out / "adapt.json").read_text())
    assert record["frames_used"] == 24 and record["from_weights_id"] == old.weights_id
    assert [s["file"].endswith("broken.jpg") for s in record["skipped"]] == [True]
    # The splits travel with it (what evaluate's training-data guard reads), and its config names its own folder.
    assert (out / "splits.json").read_text() == (source / "splits.json").read_text()
    assert json.loads((out / "config.json").read_text())["out"] == str(out)


def test_an_adapted_run_drops_the_stale_onnx_fingerprint(tiny_runs, frames, tmp_path):
    copy = tmp_path / "run"
    copy.mkdir()
    for f in tiny_runs["binary"].iterdir():
        (copy / f.name).write_bytes(f.read_bytes())
    update_model_params(copy, onnx={"sha256": "0" * 64, "weights_id": read_model_file(copy)["weights_id"]})
    out = adapt_run(copy, frames, tmp_path / "adapted", device="cpu", workers=0)
    assert "onnx" not in read_model_file(out) and load_run(out).onnx_export is None


def test_adapt_refuses_what_it_cannot_do(tiny_runs, frames, tmp_path):
    with pytest.raises(ConfigError, match="the run itself"):
        adapt_run(tiny_runs["binary"], frames, tiny_runs["binary"], device="cpu", workers=0)
    few = tmp_path / "few"
    few.mkdir()
    for p in sorted(frames.glob("*.png"))[: MIN_FRAMES - 1]:
        (few / p.name).write_bytes(p.read_bytes())
    with pytest.raises(ConfigError, match=f"{MIN_FRAMES - 1} readable frames"):
        adapt_run(tiny_runs["binary"], few, tmp_path / "a", device="cpu", workers=0)
    assert not (tmp_path / "a").exists()
    parent = tmp_path / "parent"
    parent.mkdir()
    (parent / "ensemble.json").write_text("{}")
    with pytest.raises(RunError, match="not a steelinspect ensemble.json"):
        adapt_run(parent, frames, tmp_path / "b", device="cpu", workers=0)
    assert not (tmp_path / "b").exists()


def test_adapt_command(tiny_segment_run, frames, tmp_path):
    out = tmp_path / "adapted"
    code, stdout, err = run_main("adapt", tiny_segment_run, "--images", frames, "--out", out, "--device", "cpu",
                                 "--workers", "0")
    assert code == 0, err
    assert "broken.jpg" in stdout and "24 frames, 1 skipped" in stdout
    assert "score the adapted run" in stdout  # a segmenter: measured to lose real class 4 (README)
    assert load_run(out).head == "segment"
    code, _, err = run_main("adapt", tiny_segment_run, "--images", tmp_path / "missing", "--out", tmp_path / "x")
    assert code != 0 and "missing" in err and "no such file or folder" in err


def test_an_ensemble_is_adapted_member_by_member_and_keeps_its_thresholds(tiny_runs, frames, tmp_path):
    from steelinspect.runs.ensemble import Ensemble, load_model, read_ensemble
    from steelinspect.tuning.ensemble import combine_runs

    twin = tmp_path / "twin"  # a second member with the same split
    twin.mkdir()
    for f in tiny_runs["binary"].iterdir():
        (twin / f.name).write_bytes(f.read_bytes())
    parent = combine_runs([tiny_runs["binary"], twin], tmp_path / "both", device="cpu", workers=0)
    out = adapt_run(parent, frames, tmp_path / "adapted", device="cpu", workers=0)

    adapted, before = load_model(out), load_model(parent)
    assert isinstance(adapted, Ensemble) and len(adapted.members) == 2
    assert read_ensemble(out)["members"] == ["member_1", "member_2"]  # inside the new folder, not the old runs
    assert adapted.thresholds == before.thresholds
    alone = load_run(adapt_run(tiny_runs["binary"], frames, tmp_path / "alone", device="cpu", workers=0))
    for member in adapted.members:  # each member measured on the same frames as the run alone
        assert member.run_dir.parent == out
        got, want = batchnorm_layers(member.model)[0], batchnorm_layers(alone.model)[0]
        assert torch.allclose(got.running_mean, want.running_mean) and torch.allclose(got.running_var, want.running_var)
    assert json.loads((out / "adapt.json").read_text())["frames_used"] == 24
    assert not (tmp_path / "both" / "member_1").exists()  # the original ensemble is untouched
