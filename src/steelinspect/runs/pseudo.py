"""RUN_DIR/pseudo.json: what pseudo-labelling kept (pseudo/ writes it before training, train/ reads it).

{"format": 1, "images_dir", "teacher": {"run", "head", "weights_id"}, "gate": {...} | null, "task",
 "thresholds": {"confidence", "pixel_share" (segment), "share"}, "rule" (in words), "counts",
 "kept": [{"image", "confidence", "labels" (class ids; binary: [1] defect, [] clean),
           "rles" (segment: 4 Kaggle RLEs at 256x1600), "p_defect" (segment with a gate)}],
 "rejected": [{"image", "confidence", "reason"}], "excluded": [{"image", "reason"}]}
The rules and what "confidence" means per task are pseudo/label.py's.
"""

from __future__ import annotations

from pathlib import Path

from steelinspect.errors import RunError
from steelinspect.io import read_json, write_json
from steelinspect.runs.files import PSEUDO_FILE

FORMAT = 1
KEYS = ("format", "images_dir", "teacher", "task", "thresholds", "kept")


def write_pseudo(run_dir: str | Path, record: dict) -> Path:
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / PSEUDO_FILE, {"format": FORMAT, **record})
    return run_dir / PSEUDO_FILE


def has_pseudo(run_dir: str | Path) -> bool:
    return (Path(run_dir) / PSEUDO_FILE).is_file()


def read_pseudo(run_dir: str | Path) -> dict:
    path = Path(run_dir) / PSEUDO_FILE
    if not path.is_file():
        raise RunError(f"no {PSEUDO_FILE}: --pseudo labels are made before training by steelinspect.pseudo.train "
                       "(the CLI's train command)", run_dir)
    try:
        record = read_json(path)
    except (OSError, ValueError) as exc:
        raise RunError(f"cannot read it ({exc})", path) from None
    if not isinstance(record, dict) or record.get("format") != FORMAT or any(k not in record for k in KEYS):
        raise RunError(f"not a format {FORMAT} pseudo-label record", path)
    return record
