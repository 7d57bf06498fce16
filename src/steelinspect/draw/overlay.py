"""Masks drawn in the project's class colours (constants.CLASS_COLOURS: 1 blue, 2 purple, 3 yellow, 4 red).

Every picture of masks (the EDA galleries, `show`, prediction overlays, the web page) comes through here, so the
colours and the look are the same everywhere. Masks are channel-first (4, H, W) bool, channel c-1 = class c, as
everywhere in the project. All functions take and return numpy arrays (no matplotlib):

    rgb = overlay_masks(gray, masks)              # (H, W) uint8 + (4, H, W) bool -> (H, W, 3) uint8
    rgb = black_background_masks(masks)           # the capstone's view: masks on black
    rgb = stacked_view(gray, masks)               # overlay above masks-on-black, one picture
    rgb = with_legend(rgb)                        # a legend strip added below any picture
    colour_hex(3), legend_handles()               # for HTML pages and matplotlib figures
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from steelinspect.constants import CLASS_COLOURS, CLASS_IDS, NUM_CLASSES


def _classes(classes) -> tuple[int, ...]:
    if classes is None:
        return CLASS_IDS
    classes = tuple(int(c) for c in classes)
    bad = [c for c in classes if c not in CLASS_IDS]
    if bad:
        raise ValueError(f"class ids {bad} are outside {CLASS_IDS[0]}-{CLASS_IDS[-1]}")
    return classes


def _check_masks(masks: np.ndarray, shape: tuple[int, int] | None = None) -> np.ndarray:
    masks = np.asarray(masks)
    if masks.ndim != 3 or masks.shape[0] != NUM_CLASSES:
        raise ValueError(f"masks must be ({NUM_CLASSES}, H, W), one channel per class, got shape {masks.shape}")
    if shape is not None and masks.shape[1:] != shape:
        raise ValueError(f"image {shape} and masks {masks.shape[1:]} differ in size")
    return masks.astype(bool, copy=False)


def _as_rgb(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"image must be uint8, got {image.dtype}")
    if image.ndim == 2:
        return np.repeat(image[..., None], 3, axis=2)
    if image.ndim == 3 and image.shape[2] == 3:
        return image.copy()
    raise ValueError(f"image must be (H, W) grey or (H, W, 3) RGB, got shape {image.shape}")


def overlay_masks(
    image: np.ndarray,
    masks: np.ndarray,
    classes: tuple[int, ...] | list[int] | None = None,
    alpha: float = 0.35,
    outline: bool = True,
    thickness: int = 2,
) -> np.ndarray:
    """Image + masks -> RGB uint8: each class's mask as a translucent fill in its colour, with its outline.

    image: (H, W) grey or (H, W, 3) RGB uint8. masks: (4, H, W) bool, channel c-1 = class c. `classes` limits
    which classes are drawn (default all four); `alpha` is the fill's opacity (0 = outline only).
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    rgb = _as_rgb(image)
    masks = _check_masks(masks, rgb.shape[:2])
    classes = _classes(classes)
    for class_id in classes:
        mask = masks[class_id - 1]
        if alpha and mask.any():
            colour = np.array(CLASS_COLOURS[class_id], dtype=np.float32)
            rgb[mask] = ((1 - alpha) * rgb[mask] + alpha * colour + 0.5).astype(np.uint8)
    if outline:
        for class_id in classes:
            mask = masks[class_id - 1]
            if mask.any():
                contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
                cv2.drawContours(rgb, contours, -1, CLASS_COLOURS[class_id], thickness)
    return rgb


def black_background_masks(masks: np.ndarray, classes: tuple[int, ...] | list[int] | None = None) -> np.ndarray:
    """The capstone's view: each class's mask filled in its colour on black. (4, H, W) bool -> RGB uint8."""
    masks = _check_masks(masks)
    out = np.zeros((*masks.shape[1:], 3), dtype=np.uint8)
    for class_id in _classes(classes):
        out[masks[class_id - 1]] = CLASS_COLOURS[class_id]
    return out


def stacked_view(image: np.ndarray, masks: np.ndarray, gap: int = 8, **overlay_options) -> np.ndarray:
    """The overlay above the masks on black, separated by a white gap: one RGB picture of an example."""
    top = overlay_masks(image, masks, **overlay_options)
    spacer = np.full((gap, top.shape[1], 3), 255, dtype=np.uint8)
    return np.concatenate([top, spacer, black_background_masks(masks)], axis=0)


def truth_vs_prediction(image: np.ndarray, truth: np.ndarray, predicted: np.ndarray, gap: int = 8) -> np.ndarray:
    """The true masks' overlay above the predicted masks' overlay, separated by a white gap."""
    top, bottom = overlay_masks(image, truth), overlay_masks(image, predicted)
    spacer = np.full((gap, top.shape[1], 3), 255, dtype=np.uint8)
    return np.concatenate([top, spacer, bottom], axis=0)


def colour_hex(class_id: int) -> str:
    """'#rrggbb' of a class (for HTML and matplotlib)."""
    r, g, b = CLASS_COLOURS[class_id]
    return f"#{r:02x}{g:02x}{b:02x}"


def legend_handles(classes: tuple[int, ...] | list[int] | None = None):
    """Matplotlib legend patches, one per class, in the class colours."""
    from matplotlib.patches import Patch

    return [Patch(facecolor=colour_hex(c), edgecolor="#333", label=f"class {c}") for c in _classes(classes)]


def legend_strip(width: int, classes: tuple[int, ...] | list[int] | None = None, height: int = 28) -> np.ndarray:
    """A white RGB strip (height, width) naming each class beside a swatch of its colour."""
    strip = np.full((height, width, 3), 255, dtype=np.uint8)
    scale = height / 40
    x = max(4, height // 4)
    for class_id in _classes(classes):
        box = height // 2
        top = (height - box) // 2
        cv2.rectangle(strip, (x, top), (x + box, top + box), CLASS_COLOURS[class_id], -1)
        cv2.rectangle(strip, (x, top), (x + box, top + box), (60, 60, 60), 1)
        label = f"class {class_id}"
        (text_w, text_h), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        cv2.putText(strip, label, (x + box + 6, (height + text_h) // 2), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    (30, 30, 30), 1, cv2.LINE_AA)
        x += box + 6 + text_w + 3 * box
    return strip


def with_legend(rgb: np.ndarray, classes: tuple[int, ...] | list[int] | None = None, height: int = 28) -> np.ndarray:
    """`rgb` with a legend strip added below it."""
    rgb = _as_rgb(rgb)
    return np.concatenate([rgb, legend_strip(rgb.shape[1], classes, height)], axis=0)


def save_rgb(path: str | Path, rgb: np.ndarray) -> Path:
    """Write an RGB uint8 image (PNG or JPEG by suffix) atomically."""
    from steelinspect.io import atomic_write

    path = Path(path)
    ok, data = cv2.imencode(path.suffix or ".png", cv2.cvtColor(_as_rgb(rgb), cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError(f"cannot encode an image as {path.suffix or '.png'} for {path}")
    with atomic_write(path) as tmp:
        tmp.write_bytes(data.tobytes())
    return path
