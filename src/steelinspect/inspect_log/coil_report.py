"""A coil's report: one row per frame as CSV, or one self-contained HTML page (the counts, a strip map of the
coil as inline SVG, the table). Every text from the log is escaped in the HTML (a coil or image name is whatever
a file or a client called it), and a CSV cell that a spreadsheet would run as a formula is quoted as text.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import datetime, timezone
from html import escape

from steelinspect.constants import CLASS_COLOURS, CLASS_IDS, IMAGE_HEIGHT, IMAGE_WIDTH
from steelinspect.inspect_log.bands import BANDS
from steelinspect.inspect_log.coils import CoilFrame, class_counts

COLUMNS = ("inspection_id", "frame", "image_id", "inspected_at", "band", "p_defect", "classes", "reviewed_classes",
           *(f"defects_{c}" for c in CLASS_IDS), *(f"area_{c}" for c in CLASS_IDS))
BAND_COLOURS = {"OK": "#2e9e4f", "REVIEW": "#e0a000", "NG": "#d03030"}
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
FRAME_PX = 22  # height of one frame in the strip map


def _text_cell(value: str) -> str:
    """A spreadsheet runs a cell starting with = + - @ as a formula; a leading ' keeps it text."""
    return "'" + value if value.startswith(FORMULA_START) else value


def _classes(classes: Sequence[int] | None) -> str:
    return "" if classes is None else " ".join(map(str, classes))


def rows(frames: Sequence[CoilFrame]) -> list[dict]:
    """One dict per frame, COLUMNS as keys. reviewed_classes is empty when nobody reviewed the frame, "none" when
    a reviewer said it has no defect."""
    out = []
    for f in frames:
        e = f.entry
        defects = {c: 0 for c in CLASS_IDS}
        areas = {c: 0 for c in CLASS_IDS}
        for d in f.defects:
            defects[d.region.class_id] += 1
            areas[d.region.class_id] += d.region.area
        reviewed = "" if f.reviewed_classes is None else (_classes(f.reviewed_classes) or "none")
        out.append({"inspection_id": e.id, "frame": "" if e.frame is None else e.frame,
                    "image_id": _text_cell(e.image_id),
                    "inspected_at": e.inspected_at.astimezone(timezone.utc).isoformat(), "band": e.band,
                    "p_defect": f"{e.p_defect:.4f}", "classes": _classes(e.classes), "reviewed_classes": reviewed,
                    **{f"defects_{c}": defects[c] for c in CLASS_IDS}, **{f"area_{c}": areas[c] for c in CLASS_IDS}})
    return out


def csv_text(frames: Sequence[CoilFrame]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows(frames))
    return buffer.getvalue()


def _colour(class_id: int) -> str:
    return "#{:02x}{:02x}{:02x}".format(*CLASS_COLOURS[class_id])


def strip_svg(frames: Sequence[CoilFrame]) -> str:
    """The coil as a strip: frames top to bottom, each 1600 wide (the plate's width), its regions as boxes in
    their class colour, its band as a bar on the left. Not to scale along the coil (a frame is squeezed to
    FRAME_PX), so a long coil stays readable."""
    height = max(1, len(frames)) * IMAGE_HEIGHT
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="strip" width="800" height="{max(1, len(frames)) * FRAME_PX}" '
             f'viewBox="-120 0 {IMAGE_WIDTH + 120} {height}" preserveAspectRatio="none" role="img" '
             f'aria-label="strip map">']
    for k, f in enumerate(frames):
        y = k * IMAGE_HEIGHT
        label = escape(f"frame {'' if f.entry.frame is None else f.entry.frame} {f.entry.image_id}: "
                       f"{f.entry.band}, classes {_classes(f.entry.classes) or 'none'}")
        parts.append(f'<g><title>{label}</title>'
                     f'<rect x="-120" y="{y}" width="100" height="{IMAGE_HEIGHT}" fill="{BAND_COLOURS[f.entry.band]}"/>'
                     f'<rect x="0" y="{y}" width="{IMAGE_WIDTH}" height="{IMAGE_HEIGHT}" fill="#8a8f94" '
                     f'stroke="#ffffff" stroke-width="6"/>')
        for d in f.defects:
            r = d.region
            parts.append(f'<rect x="{r.x}" y="{y + r.y}" width="{max(r.width, 8)}" height="{max(r.height, 8)}" '
                         f'fill="{_colour(r.class_id)}" fill-opacity="0.85"/>')
        parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)


STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
th { background: #f0f0f0; }
.key span { display: inline-block; margin-right: 1.2em; }
.swatch { display: inline-block; width: 0.9em; height: 0.9em; margin-right: 0.3em; vertical-align: middle; }
"""


def html_text(coil: str, frames: Sequence[CoilFrame], now: datetime | None = None) -> str:
    """The whole report as one HTML page with nothing to fetch (style and SVG inline)."""
    now = now or datetime.now(timezone.utc)
    counts = class_counts(list(frames))
    bands = {b: sum(f.entry.band == b for f in frames) for b in BANDS}
    reviewed = sum(f.reviewed_classes is not None for f in frames)
    table = rows(frames)
    head = "".join(f"<th>{escape(c)}</th>" for c in COLUMNS)
    body = "".join("<tr>" + "".join(f"<td>{escape(str(r[c]))}</td>" for c in COLUMNS) + "</tr>" for r in table)
    key = "".join(f'<span><svg class="swatch" width="12" height="12"><rect width="12" height="12" '
                  f'fill="{_colour(c)}"/></svg>class {c}</span>' for c in CLASS_IDS)
    key += "".join(f'<span><svg class="swatch" width="12" height="12"><rect width="12" height="12" '
                   f'fill="{BAND_COLOURS[b]}"/></svg>{b}</span>' for b in BANDS)
    title = escape(f"Coil {coil}")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{title}</title><style>{STYLE}</style></head><body>"
        f"<h1>{title}</h1>"
        f"<p>{len(frames)} frames, {reviewed} reviewed; report made {escape(now.isoformat(timespec='seconds'))}.</p>"
        "<h2>Counts</h2><table><tr><th></th>" + "".join(f"<th>class {c}</th>" for c in CLASS_IDS)
        + "".join(f"<th>{b}</th>" for b in BANDS) + "</tr><tr><th>frames</th>"
        + "".join(f"<td>{counts[c]}</td>" for c in CLASS_IDS) + "".join(f"<td>{bands[b]}</td>" for b in BANDS)
        + "</tr></table>"
        f"<h2>Strip map</h2><p class=\"key\">{key}</p>{strip_svg(frames)}"
        f"<h2>Frames</h2><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
        "</body></html>\n")
