"""Pictures for the page: the grey image, one transparent layer per class (so the page can toggle classes), and
the composite overlay, all as data URLs. Colours come from draw.overlay, like every other picture of masks."""

from __future__ import annotations

import base64

import cv2
import numpy as np

from steelinspect.constants import CLASS_COLOURS, CLASS_IDS
from steelinspect.draw.overlay import overlay_masks


def data_url(image: np.ndarray, fmt: str = ".png", quality: int = 88) -> str:
    """uint8 grey, RGB or RGBA array -> data URL."""
    if image.ndim == 3 and image.shape[2] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_RGBA2BGRA)
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if fmt == ".jpg" else [cv2.IMWRITE_PNG_COMPRESSION, 6]
    ok, buf = cv2.imencode(fmt, image, params)
    if not ok:  # pragma: no cover - uint8 arrays always encode
        raise ValueError("image encoding failed")
    mime = "image/jpeg" if fmt == ".jpg" else "image/png"
    return f"data:{mime};base64,{base64.b64encode(buf.tobytes()).decode()}"


def class_layer(mask: np.ndarray, class_id: int, alpha: int = 110) -> np.ndarray:
    """One class as RGBA: translucent fill and an opaque outline, transparent elsewhere."""
    layer = np.zeros((*mask.shape, 4), dtype=np.uint8)
    colour = CLASS_COLOURS[class_id]
    layer[mask] = (*colour, alpha)
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(layer, contours, -1, (*colour, 255), 2)
    return layer


def pictures(gray: np.ndarray, masks: np.ndarray | None) -> dict:
    """{"image": jpeg, "layers": {"1": png, ...} (classes present only), "overlay": png composite}."""
    out = {"image": data_url(gray, ".jpg"), "layers": {}, "overlay": None}
    if masks is None:
        return out
    for c in CLASS_IDS:
        if masks[c - 1].any():
            out["layers"][str(c)] = data_url(class_layer(masks[c - 1], c))
    out["overlay"] = data_url(overlay_masks(gray, masks))
    return out
