"""Mask overlays in the project's class colours (constants.CLASS_COLOURS: 1 blue, 2 purple, 3 yellow, 4 red).

Every picture of masks (EDA gallery, `show`, prediction overlays, the web page) comes through here, so the
colours and the look are the same everywhere.
"""

from __future__ import annotations

import cv2
import numpy as np

from steelinspect.constants import CLASS_COLOURS, CLASS_IDS


def _check(gray: np.ndarray | None, masks: np.ndarray) -> None:
    if masks.ndim != 3 or masks.shape[-1] != len(CLASS_IDS):
        raise ValueError(f"masks must be (H, W, {len(CLASS_IDS)}), got {masks.shape}")
    if gray is not None and gray.shape[:2] != masks.shape[:2]:
        raise ValueError(f"image {gray.shape[:2]} and masks {masks.shape[:2]} differ in size")


def overlay_masks(
    gray: np.ndarray,
    masks: np.ndarray,
    classes: tuple[int, ...] | None = None,
    alpha: float = 0.35,
    outline: bool = True,
    thickness: int = 2,
) -> np.ndarray:
    """Grey image (H, W) uint8 + bool masks (H, W, 4) -> RGB uint8 with translucent fill and outlines.

    `classes` limits which classes are drawn (default: all four).
    """
    masks = np.asarray(masks, dtype=bool)
    _check(gray, masks)
    rgb = np.repeat(gray[..., None], 3, axis=2).astype(np.float32) if gray.ndim == 2 else gray.astype(np.float32)
    for class_id in classes or CLASS_IDS:
        mask = masks[..., class_id - 1]
        if not mask.any():
            continue
        colour = np.array(CLASS_COLOURS[class_id], dtype=np.float32)
        rgb[mask] = (1 - alpha) * rgb[mask] + alpha * colour
    out = np.clip(rgb, 0, 255).astype(np.uint8)
    if outline:
        for class_id in classes or CLASS_IDS:
            mask = masks[..., class_id - 1].astype(np.uint8)
            if mask.any():
                contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
                cv2.drawContours(out, contours, -1, CLASS_COLOURS[class_id], thickness)
    return out


def black_background_masks(masks: np.ndarray) -> np.ndarray:
    """The capstone's view: each class's mask in its colour on black. (H, W, 4) bool -> RGB uint8."""
    masks = np.asarray(masks, dtype=bool)
    _check(None, masks)
    out = np.zeros((*masks.shape[:2], 3), dtype=np.uint8)
    for class_id in CLASS_IDS:
        out[masks[..., class_id - 1]] = CLASS_COLOURS[class_id]
    return out


def colour_hex(class_id: int) -> str:
    r, g, b = CLASS_COLOURS[class_id]
    return f"#{r:02x}{g:02x}{b:02x}"


def legend_handles():
    """Matplotlib legend patches, one per class, in the class colours."""
    from matplotlib.patches import Patch

    return [Patch(color=colour_hex(c), label=f"class {c}") for c in CLASS_IDS]


def save_rgb(path, rgb: np.ndarray) -> None:
    """Write an RGB image (PNG or JPEG by suffix) atomically."""
    from steelinspect.io import atomic_write

    ok, data = cv2.imencode(str(path)[str(path).rfind("."):] or ".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError(f"cannot encode image for {path}")
    with atomic_write(path) as tmp:
        tmp.write_bytes(data.tobytes())
