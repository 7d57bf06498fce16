"""The run directory: model.pt (what prediction needs), checkpoint.pt (what resuming needs), and loading them.

model.pt and checkpoint.pt hold tensors and plain types only, so they load with torch.load(..., weights_only=True):
{"format", "arch", "head", "num_outputs", "in_channels", "state_dict", "weights_id", "preprocess", "thresholds",
 "class_ids", "postprocess", "loss_weights", "epoch", "config"}.
"weights_id" fingerprints the weights alone. `steelinspect export` adds "onnx": {"sha256" of model.onnx's bytes,
the "weights_id" it was exported from}: re-tuning the decision parameters (which ONNX Runtime never sees) keeps
the export valid, new weights (save_model writes no "onnx") or any other model.onnx make it stale.
`steelinspect export --int8` adds "int8" in the same form (for model.int8.onnx), plus what its accuracy guard
measured: {"sha256", "weights_id", "activations", "calibration", "metric", "float", "int8", "tolerance"}.
Runs written in format 1 load through runs/legacy.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
import hashlib

import torch
from torch import nn

from steelinspect.constants import CLASS_IDS
from steelinspect.data.transforms import Preprocess
from steelinspect.errors import RunError
from steelinspect.io import atomic_write, load_torch_file, read_json
from steelinspect.models.factory import build_model
from steelinspect.runs.config import TrainConfig
from steelinspect.runs.files import CHECKPOINT_FILE, METRICS_FILE, MODEL_FILE, SPLITS_FILE
from steelinspect.runs.legacy import upgrade_metrics, upgrade_model_blob

FORMAT = 2
READABLE_FORMATS = (1, 2)  # 1: before "task" became "head" (runs/legacy.py)


@dataclass
class LoadedRun:
    model: nn.Module
    head: str  # binary | multiclass | multilabel | segment
    preprocess: Preprocess
    thresholds: list[float]
    class_ids: tuple[int, ...]
    config: TrainConfig
    run_dir: Path
    arch: str = ""
    weights_id: str = ""  # "" for runs saved before fingerprints existed
    postprocess: dict | None = None
    loss_weights: list[float] | None = None
    onnx_export: dict | None = None  # {"sha256", "weights_id"} of the model.onnx exported from this run
    int8_export: dict | None = None  # the same for model.int8.onnx, with the accuracy guard's numbers

    def trained_on(self, data: str | Path) -> bool:
        """Whether `data` is the DATA_DIR this run was trained on (so its stored splits name images there)."""
        return Path(self.config.data).resolve() == Path(data).resolve()

    def trained_ids(self) -> set[str]:
        """The images this run trained on (splits.json's "train"; empty when it has none). Matched by name in
        another DATA_DIR: a moved or copied training set keeps its image names, and scores or thresholds taken on
        training images would look better than they are."""
        return trained_ids_of(self.run_dir)


def _save(obj: dict, path: Path) -> None:
    with atomic_write(path) as tmp:
        torch.save(obj, tmp)


def weights_id(state: dict[str, torch.Tensor]) -> str:
    """A fingerprint of a state dict's names and values."""
    digest = hashlib.blake2b(digest_size=16)
    for name in sorted(state):
        digest.update(name.encode())
        digest.update(state[name].detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def save_model(run_dir: Path, model: nn.Module, config: TrainConfig, head: str, num_outputs: int,
               preprocess: Preprocess, thresholds: list[float] | None = None, epoch: int = 0,
               postprocess: dict | None = None, loss_weights: list[float] | None = None) -> Path:
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    _save({
        "format": FORMAT,
        "arch": config.arch,
        "head": head,
        "num_outputs": num_outputs,
        "in_channels": 1,
        "state_dict": state,
        "weights_id": weights_id(state),
        "preprocess": preprocess.to_dict(),
        "thresholds": [float(t) for t in thresholds or []],
        "class_ids": list(CLASS_IDS),
        "postprocess": postprocess,
        "loss_weights": loss_weights,
        "epoch": epoch,
        "config": config.to_dict(),
    }, run_dir / MODEL_FILE)
    return run_dir / MODEL_FILE


def update_model_params(run_dir: Path, thresholds: list[float] | None = None, postprocess: dict | None = None,
                        onnx: dict | None = None, int8: dict | None = None) -> None:
    """Store tuned decision parameters, or the fingerprint of the run's ONNX export (float or int8), in an
    existing model.pt."""
    blob = read_model_file(run_dir)
    if thresholds is not None:
        blob["thresholds"] = [float(t) for t in thresholds]
    if postprocess is not None:
        blob["postprocess"] = postprocess
    if onnx is not None:
        blob["onnx"] = onnx
    if int8 is not None:
        blob["int8"] = int8
    _save(blob, run_dir / MODEL_FILE)


def read_model_file(run_dir: str | Path) -> dict:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunError("run directory not found", run_dir)
    path = run_dir / MODEL_FILE
    if not path.is_file():
        raise RunError(f"no {MODEL_FILE} in the run directory (did training finish its first epoch?)", run_dir)
    blob = load_torch_file(path, "steelinspect model file")
    if not isinstance(blob, dict) or blob.get("format") not in READABLE_FORMATS or "state_dict" not in blob:
        raise RunError(f"not a steelinspect model file (no format {FORMAT} model in it)", path)
    return upgrade_model_blob(blob)


def load_run(run_dir: str | Path, device: str | torch.device = "cpu") -> LoadedRun:
    """The run's model (eval mode, on `device`) and everything needed to preprocess and decide."""
    run_dir = Path(run_dir)
    blob = read_model_file(run_dir)
    config = TrainConfig.from_dict(blob["config"])
    model = build_model(blob["arch"], blob["num_outputs"], blob.get("in_channels", 1), config.tile_width,
                        config.frame_norm)
    try:
        model.load_state_dict(blob["state_dict"])
    except RuntimeError as exc:
        first = str(exc).splitlines()[1].strip() if len(str(exc).splitlines()) > 1 else str(exc)
        raise RunError(f"weights do not fit the {blob['arch']} model (made by another version of steelinspect?): "
                       f"{first[:200]}", run_dir / MODEL_FILE) from None
    model.eval().to(device)
    return LoadedRun(
        model=model,
        head=blob["head"],
        preprocess=Preprocess.from_dict(blob["preprocess"]),
        thresholds=list(blob.get("thresholds") or []),
        class_ids=tuple(blob.get("class_ids") or CLASS_IDS),
        config=config,
        run_dir=run_dir,
        arch=blob["arch"],
        weights_id=blob.get("weights_id", ""),
        postprocess=blob.get("postprocess"),
        loss_weights=blob.get("loss_weights"),
        onnx_export=blob.get("onnx"),
        int8_export=blob.get("int8"),
    )


def read_metrics(run_dir: str | Path) -> dict:
    """A finished run's metrics.json, in today's names whichever version wrote it."""
    return upgrade_metrics(read_json(Path(run_dir) / METRICS_FILE))


def trained_ids_of(run_dir: str | Path) -> set[str]:
    """splits.json's "train" of a run directory (or parent); empty when it has none."""
    splits = Path(run_dir) / SPLITS_FILE
    return set(read_json(splits).get("train") or []) if splits.is_file() else set()


def check_not_trained_on(run_dir: str | Path, image_ids: list[str], what: str) -> None:
    """RunError when the run trained on any of `image_ids` (its splits.json), naming how many and one of them."""
    leaked = sorted(trained_ids_of(run_dir).intersection(image_ids))
    if leaked:
        raise RunError(f"{what} trained on {len(leaked)} of this run's validation/test images (e.g. {leaked[0]}); "
                       "train every run with --protocol full, the same --seed and the same data", run_dir)


def init_from_run(model: nn.Module, run_dir: str | Path, arch: str, held_out: list[str]) -> int:
    """Copy into `model` every tensor of another run's model.pt whose name and shape match (the head of another
    task does not); returns how many. Refused when the other run is another architecture, or trained on any of
    `held_out` (this run's validation and test images): its weights would carry them into this run's scores."""
    run_dir = Path(run_dir)
    blob = read_model_file(run_dir)
    if blob["arch"] != arch:
        raise RunError(f"--init run is a {blob['arch']} model; this run trains {arch}", run_dir)
    check_not_trained_on(run_dir, held_out, "--init run")
    own = model.state_dict()
    matching = {k: v for k, v in blob["state_dict"].items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(matching, strict=False)
    return len(matching)


CHECKPOINT_KEYS = ("model", "optimizer", "scheduler", "epoch", "history", "best", "rng")


def save_checkpoint(run_dir: Path, state: dict) -> None:
    """`state` holds tensors and plain values only (RNG states as train/rng_state.py stores them), so the file
    loads with weights_only=True like every other file steelinspect reads."""
    _save(state, run_dir / CHECKPOINT_FILE)


def load_checkpoint(run_dir: Path) -> dict:
    path = Path(run_dir) / CHECKPOINT_FILE
    if not path.is_file():
        raise RunError(f"no {CHECKPOINT_FILE} to resume from", run_dir)
    # weights_only: a checkpoint.pt from anywhere else (or a hostile one) can never run code on --resume.
    state = load_torch_file(path, "steelinspect checkpoint")
    if not isinstance(state, dict) or any(key not in state for key in CHECKPOINT_KEYS):
        raise RunError("not a steelinspect checkpoint (made by another version of steelinspect?)", path)
    return state
