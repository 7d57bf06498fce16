"""Pseudo-labelling end to end: a teacher labels a folder of unlabelled images, exactly the confident ones are
recorded and trained on, and never an image of the labelled data set."""

import json
import re
import shutil

import numpy as np
import pytest
import torch

from steelinspect import rle
from steelinspect.constants import CLASS_IDS
from steelinspect.data.dataset import EpochSampler
from steelinspect.data.images import read_gray
from steelinspect.infer.config import PredictConfig
from steelinspect.postprocess.masks import PostProcess
from steelinspect.postprocess.segmenter import to_full_size
from steelinspect.pseudo.label import label_images
from steelinspect.pseudo.teacher import Teacher
from steelinspect.runs.store import load_run, read_model_file
from steelinspect.train.pseudo_data import MixedSampler, pseudo_per_batch
from tests.cli_runner import run_main

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def unlabelled(tmp_path_factory, synth_dir):
    """12 synthetic images nobody labelled, plus three that must be left out: a byte-for-byte copy of a labelled
    image under a new name, an image named like a labelled one, and a file that is not an image."""
    from steelinspect.data.synth import generate

    root = tmp_path_factory.mktemp("unlabelled")
    generate(root / "gen", images=12, seed=7, workers=1)
    folder = root / "images"
    shutil.copytree(root / "gen" / "train_images", folder)
    labelled = sorted((synth_dir / "train_images").iterdir())
    shutil.copy(labelled[0], folder / "twin.jpg")
    shutil.copy(sorted(folder.iterdir())[0], folder / labelled[1].name)
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    return folder, {"twin.jpg", labelled[1].name, "broken.jpg"}


def confident_copy(run_dir, out, bias):
    """A copy of a tiny run whose last layer's bias is set, so its probabilities are decided but still differ
    from image to image (a one-epoch teacher is unsure of everything)."""
    shutil.copytree(run_dir, out)
    blob = read_model_file(out)
    key = [k for k in blob["state_dict"] if k.endswith("bias")][-1]
    blob["state_dict"][key] = torch.tensor(bias, dtype=torch.float32)
    torch.save(blob, out / "model.pt")
    return out


def spread_copy(run_dir, out, means, paths):
    """A copy of a tiny run whose last layer is rescaled so that, over `paths` (and their pixels, for the
    segmenter), class j's logit has mean means[j] and standard deviation 1: decided probabilities that still
    differ from image to image (a one-epoch teacher is unsure of everything, and alike on every image)."""
    shutil.copytree(run_dir, out)
    run = load_run(out)
    last = run.model.head if run.head == "segment" else run.model.head[-1]  # UNet's conv, VGG's linear
    with torch.no_grad():
        x = torch.stack([torch.from_numpy(run.preprocess(read_gray(p))) for p in paths])
        z = run.model(x).transpose(0, 1).reshape(len(means), -1)  # (classes, everything else)
        scale = 1.0 / z.std(1)
        last.weight.mul_(scale.view(-1, *[1] * (last.weight.dim() - 1)))
        last.bias.copy_(torch.tensor(means) - (z.mean(1) - last.bias) * scale)
    blob = read_model_file(out)
    blob["state_dict"] = {k: v.detach().clone() for k, v in run.model.state_dict().items()}
    torch.save(blob, out / "model.pt")
    return out


def teacher_probs(run_dir, paths):
    """The teacher's probabilities recomputed here: the run's model on its own preprocessing."""
    run = load_run(run_dir)
    out = {}
    with torch.no_grad():
        for path in paths:
            logits = run.model(torch.from_numpy(run.preprocess(read_gray(path)))[None])[0].numpy()
            if run.head == "segment":
                out[path.name] = to_full_size(1 / (1 + np.exp(-logits)))
            else:
                out[path.name] = 1 / (1 + np.exp(-logits.astype(np.float64)))
    return out


def threshold_between(values):
    """A threshold in the middle of the sorted values, away from every value (so float noise cannot flip one)."""
    values = sorted(set(values))
    gaps = [(b - a, (a + b) / 2) for a, b in zip(values, values[1:]) if b - a > 1e-3]
    gaps.sort(key=lambda g: abs(g[1] - np.median(values)))
    return gaps[0][1]


def test_multiclass_run_records_exactly_the_confident_images(unlabelled, tiny_runs, synth_dir, tmp_path):
    folder, left_out = unlabelled
    candidates = [p for p in sorted(folder.iterdir()) if p.name not in left_out]
    teacher = spread_copy(tiny_runs["multiclass"], tmp_path / "teacher", [3.0, -3.0, 1.5, -3.5], candidates)
    probs = teacher_probs(teacher, candidates)
    conf = {name: float(np.maximum(p, 1 - p).min()) for name, p in probs.items()}
    c = threshold_between([v for v in conf.values() if v > 0.5])
    expected = {name for name, p in probs.items() if conf[name] >= c and (p >= c).any()}
    assert 0 < len(expected) < len(candidates)

    out = tmp_path / "student"
    code, stdout, err = run_main("train", "multiclass", synth_dir, "--out", out, "--epochs", "1", "--batch-size", "8",
                                 "--image-size", "64x128", "--workers", "0", "--arch", "vgg", "--device", "cpu",
                                 "--pseudo", folder, "--teacher", teacher, "--pseudo-confidence", str(c),
                                 "--pseudo-share", "0.25")
    assert code == 0, err
    record = json.loads((out / "pseudo.json").read_text())
    assert {k["image"] for k in record["kept"]} == expected
    for entry in record["kept"]:
        p = probs[entry["image"]]
        assert entry["labels"] == [cid for cid, q in zip(CLASS_IDS, p) if q >= c]
        assert entry["confidence"] == pytest.approx(conf[entry["image"]], abs=1e-4)  # batched float32
    assert {r["image"] for r in record["rejected"]} == {p.name for p in candidates} - expected
    excluded = {e["image"]: e["reason"] for e in record["excluded"]}
    assert set(excluded) == left_out
    assert "labelled data set" in excluded["twin.jpg"] and "same file" in excluded["twin.jpg"]
    assert record["thresholds"] == {"confidence": c, "share": 0.25}
    assert record["teacher"]["run"] == str(teacher) and record["counts"]["kept"] == len(expected)
    config = json.loads((out / "config.json").read_text())
    assert config["pseudo"] == str(folder) and config["teacher"] == str(teacher)
    assert config["pseudo_confidence"] == c and config["pseudo_share"] == 0.25
    splits = json.loads((out / "splits.json").read_text())
    assert not expected & set(splits["val"] + splits["test"] + splits["train"])
    assert (out / "model.pt").is_file() and (out / "metrics.json").is_file()
    assert f"pseudo-labelled: {len(expected)} images" in stdout and "2 of every 8" in stdout


def test_an_impossible_threshold_refuses_clearly(unlabelled, tiny_runs, synth_dir, tmp_path):
    folder, _ = unlabelled
    out = tmp_path / "student"
    code, _, err = run_main("train", "multiclass", synth_dir, "--out", out, "--epochs", "1", "--image-size", "64x128",
                            "--workers", "0", "--device", "cpu", "--pseudo", folder, "--teacher", tiny_runs["multiclass"],
                            "--pseudo-confidence", "1.0")
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 1 and len(lines) == 1, err
    assert "--pseudo: none of the 15 images passed" in lines[0] and "lower --pseudo-confidence" in lines[0]
    record = json.loads((out / "pseudo.json").read_text())  # what each image scored, for the user to look at
    assert record["kept"] == [] and len(record["rejected"]) == 12
    assert not (out / "model.pt").exists()


def test_a_teacher_that_saw_the_held_out_images_is_refused(unlabelled, tiny_runs, synth_dir, tmp_path):
    folder, _ = unlabelled
    code, _, err = run_main("train", "multiclass", synth_dir, "--out", tmp_path / "s", "--seed", "1", "--epochs", "1",
                            "--image-size", "64x128", "--workers", "0", "--device", "cpu", "--pseudo", folder,
                            "--teacher", tiny_runs["multiclass"])
    assert code == 1 and "--teacher run trained on" in err and "validation/test images" in err
    code, _, err = run_main("train", "multiclass", synth_dir, "--out", tmp_path / "s2", "--epochs", "1",
                            "--image-size", "64x128", "--workers", "0", "--device", "cpu", "--pseudo", folder,
                            "--teacher", tiny_runs["binary"])
    assert code == 1 and "--teacher must be a multilabel run" in err


def test_segment_run_with_pseudo_labels(unlabelled, tiny_segment_run, tiny_seg_data, tmp_path):
    folder, _ = unlabelled
    c = 0.85
    # The labelled set is tiny_seg_data here: only the broken file is left out.
    candidates = [p for p in sorted(folder.iterdir()) if p.name != "broken.jpg"]
    teacher = spread_copy(tiny_segment_run, tmp_path / "teacher", [-3.0, -3.5, -2.5, -3.0], candidates)
    probs = teacher_probs(teacher, candidates)
    share = {name: float((np.maximum(p, 1 - p) >= c).all(axis=0).mean()) for name, p in probs.items()}
    min_share = threshold_between(share.values())
    expected = {name for name, s in share.items() if s >= min_share}
    assert 0 < len(expected) < len(candidates)

    out = tmp_path / "segment"
    code, _, err = run_main("train", "segment", tiny_seg_data, "--out", out, "--epochs", "1", "--batch-size", "4",
                            "--image-size", "64x384", "--crop-width", "256", "--workers", "0", "--device", "cpu",
                            "--pseudo", folder, "--teacher", teacher, "--pseudo-confidence", str(c),
                            "--pseudo-pixel-share", str(min_share))
    assert code == 0, err
    record = json.loads((out / "pseudo.json").read_text())
    assert {k["image"] for k in record["kept"]} == expected
    post = PostProcess.from_dict(load_run(teacher).postprocess)
    for entry in record["kept"]:
        masks, _ = post(probs[entry["image"]])
        got = np.stack([rle.decode(r) for r in entry["rles"]])
        assert (got != masks).mean() < 1e-4  # the teacher's own post-processing (float noise aside)
        assert entry["labels"] == [cid for cid, m in zip(CLASS_IDS, got) if m.any()]
        assert entry["confidence"] == pytest.approx(share[entry["image"]], abs=1e-4)
    assert record["thresholds"] == {"confidence": c, "share": 0.25, "pixel_share": min_share}
    assert [e["image"] for e in record["excluded"]] == ["broken.jpg"]
    assert (out / "model.pt").is_file()


def test_step1_gate(unlabelled, tiny_runs, tiny_segment_run, tmp_path):
    folder, _ = unlabelled
    config = PredictConfig(batch_size=4, workers=1, device="cpu", engine="torch")
    segmenter = Teacher.from_run(tiny_segment_run, config)
    sure_clean = Teacher.from_run(confident_copy(tiny_runs["binary"], tmp_path / "clean", [-30.0]), config)
    record = label_images(folder, tmp_path / "none", "segment", segmenter, 0.9, 0.25, 1.0, gate=sure_clean)
    names = {p.name for p in folder.iterdir()} - {"broken.jpg"}  # no labelled set here: only the broken file is out
    assert {k["image"] for k in record["kept"]} == names
    assert all(k["labels"] == [] and k["rles"] == [""] * 4 and k["p_defect"] < 1e-6 for k in record["kept"])
    unsure = Teacher.from_run(confident_copy(tiny_runs["binary"], tmp_path / "unsure", [0.0]), config)
    unsure.run.model.head[-1].weight.data.zero_()  # p_defect = 0.5 for every image
    record = label_images(folder, tmp_path / "none", "segment", segmenter, 0.9, 0.25, 0.0, gate=unsure)
    assert record["kept"] == [] and all("step 1 unsure" in r["reason"] for r in record["rejected"])


def test_mixed_sampler_puts_the_share_in_every_batch():
    assert pseudo_per_batch(8, 0.25) == 2 and pseudo_per_batch(2, 0.1) == 1 and pseudo_per_batch(4, 0.99) == 3
    base = EpochSampler(10, 4, seed=0, shuffle=True)
    sampler = MixedSampler(base, pseudo_size=5, per_batch=1)
    sampler.set_epoch(3)
    batches = sampler.batches()
    assert len(batches) == 4 and all((b >= 10).sum() == 1 for b in batches)
    labelled = np.concatenate([b[b < 10] for b in batches])
    assert sorted(labelled) == list(range(10))  # every labelled image once per epoch
    assert list(sampler) == np.concatenate(batches).tolist() and len(sampler) == len(list(sampler))
    sampler.set_epoch(4)
    assert not all(np.array_equal(a, b) for a, b in zip(batches, sampler.batches()))
    # Two processes: each takes its half of every global batch (the short last one padded by wrapping).
    halves = []
    for rank in (0, 1):
        s = MixedSampler(EpochSampler(10, 4, 0, True, rank, 2), 5, 1)
        s.set_epoch(3)
        halves.append(list(s))
        assert len(s) == len(halves[-1]) == 8
    for i, batch in enumerate(batches):
        together = halves[0][2 * i : 2 * i + 2] + halves[1][2 * i : 2 * i + 2]
        assert together == np.resize(batch, 4).tolist()


def test_settings_are_checked_and_round_trip(tmp_path):
    from dataclasses import replace

    from steelinspect.errors import ConfigError
    from steelinspect.runs.config import TrainConfig

    base = TrainConfig(task="segment", data=tmp_path, out=tmp_path / "o", pseudo=tmp_path / "u", teacher=tmp_path / "t",
                       pseudo_gate=tmp_path / "g")
    base.validate()
    again = TrainConfig.from_dict(json.loads(json.dumps(base.to_dict())))
    assert again == base and isinstance(again.pseudo_gate, type(tmp_path))
    bad = {"teacher": None, "pseudo_confidence": 0.5, "pseudo_share": 1.0, "pseudo_pixel_share": 1.5}
    messages = {"teacher": "--pseudo IMAGES_DIR and --teacher RUN go together", "pseudo_confidence": "(0.5, 1]",
                "pseudo_share": "(0, 1)", "pseudo_pixel_share": "[0, 1]"}
    for key, value in bad.items():
        with pytest.raises(ConfigError, match=re.escape(messages[key])):
            replace(base, **{key: value}, pseudo_gate=None).validate()
    with pytest.raises(ConfigError, match="--pseudo-gate is for"):
        replace(base, task="multiclass", arch="vgg").validate()


def test_resume_keeps_the_recorded_pseudo_labels(unlabelled, tiny_runs, synth_dir, tmp_path, monkeypatch):
    from steelinspect.pseudo.api import train
    from steelinspect.runs.config import TrainConfig
    from steelinspect.train import testhooks

    folder, _ = unlabelled
    settings = dict(task="binary", data=synth_dir, out=tmp_path / "run", epochs=2, batch_size=8, image_size=(64, 128),
                    workers=0, arch="vgg", seed=0, device="cpu", pseudo=folder, teacher=tiny_runs["binary"],
                    pseudo_confidence=0.5001)
    monkeypatch.setenv(testhooks.ENV, "1")
    with pytest.raises(KeyboardInterrupt):
        train(TrainConfig(**settings), progress=False)
    monkeypatch.delenv(testhooks.ENV)
    record_file = tmp_path / "run" / "pseudo.json"
    record = json.loads(record_file.read_text())
    assert record["kept"] and record["teacher"]["head"] == "binary"
    record["kept"] = record["kept"][:1]  # what the interrupted run recorded is what the resumed run uses
    record_file.write_text(json.dumps(record))
    messages = []
    train(TrainConfig(**settings, resume=True), progress=False, log=messages.append)
    assert json.loads(record_file.read_text()) == record
    assert any("reusing" in m and "(1 images)" in m for m in messages)
    assert any("pseudo-labelled: 1 images" in m for m in messages)
    assert (tmp_path / "run" / "metrics.json").is_file()
