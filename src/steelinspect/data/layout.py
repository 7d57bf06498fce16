"""Where things are in a Severstal-format data directory (DATA_DIR/train.csv + DATA_DIR/train_images/)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from steelinspect.constants import IMAGES_DIR, LABELS_FILE
from steelinspect.errors import LabelError


@dataclass(frozen=True)
class DataDir:
    root: Path

    @property
    def labels(self) -> Path:
        return self.root / LABELS_FILE

    @property
    def images(self) -> Path:
        return self.root / IMAGES_DIR

    def image(self, image_id: str) -> Path:
        return self.images / image_id


def data_dir(root: str | Path) -> DataDir:
    """A DataDir, after checking the folder, train.csv and train_images/ exist."""
    root = Path(root)
    if not root.is_dir():
        raise LabelError("data folder not found", root)
    layout = DataDir(root)
    if not layout.labels.is_file():
        raise LabelError(f"no {LABELS_FILE} in the data folder (expected DATA_DIR/{LABELS_FILE})", layout.labels)
    if not layout.images.is_dir():
        raise LabelError(f"no {IMAGES_DIR}/ folder in the data folder (expected DATA_DIR/{IMAGES_DIR}/)", layout.images)
    return layout
