"""The HTML report: a small page builder any stage can append to, and the EDA report built with it.

    report = HtmlReport("My run")
    report.heading("Training").paragraph("One epoch.").table(frame).image("curves.png", "loss per epoch")
    report.write("out/report.html")

The page is one self-contained file that opens offline: images are embedded (base64); the EDA also leaves
its figures beside it as PNG files. Level-2 headings get an anchor and a table of contents entry.
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from steelinspect.constants import CLASS_IDS
from steelinspect.data.layout import data_dir
from steelinspect.data.master import build_master
from steelinspect.draw.overlay import colour_hex
from steelinspect.eda import figures, gallery
from steelinspect.eda.stats import HEATMAP_SHAPE, EdaConfig, EdaStats, compute_stats
from steelinspect.io import atomic_dir, atomic_write, write_json

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 1200px;
       color: #222; padding: 0 1rem; line-height: 1.45; }
h1 { border-bottom: 2px solid #444; padding-bottom: .3rem; }
h2 { margin-top: 2.4rem; border-bottom: 1px solid #ccc; padding-bottom: .2rem; }
h3 { margin-top: 1.6rem; }
nav { background: #f6f6f6; border: 1px solid #ddd; padding: .5rem 1rem; font-size: .9rem; }
nav a { margin-right: 1.2rem; }
table { border-collapse: collapse; margin: .8rem 0; font-size: .9rem; }
th, td { border: 1px solid #ccc; padding: .25rem .6rem; text-align: right; }
th { background: #f0f0f0; }
td:first-child, th:first-child { text-align: left; }
figure { margin: 1rem 0; }
img { max-width: 100%; border: 1px solid #ddd; }
figcaption, p.note { color: #555; font-size: .9rem; }
.swatch { display: inline-block; width: .9em; height: .9em; border: 1px solid #333; vertical-align: middle;
          margin: 0 .3em 0 .8em; }
"""

MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".svg": "image/svg+xml"}


def _anchor(text: str, taken: set[str]) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"
    anchor, n = base, 2
    while anchor in taken:
        anchor, n = f"{base}-{n}", n + 1
    taken.add(anchor)
    return anchor


@dataclass
class HtmlReport:
    """Sections of headings, paragraphs, tables and images, written as one self-contained page.

    Every method returns the report, so calls chain. Text is escaped; `raw` inserts trusted HTML as is.
    """

    title: str = "Report"
    parts: list[str] = field(default_factory=list)
    toc: list[tuple[str, str]] = field(default_factory=list)  # (anchor, text) of level-2 headings
    _anchors: set[str] = field(default_factory=set, repr=False)

    def heading(self, text: str, level: int = 2) -> "HtmlReport":
        if level == 2:
            anchor = _anchor(text, self._anchors)
            self.toc.append((anchor, text))
            self.parts.append(f'<h2 id="{anchor}">{html.escape(text)}</h2>')
        else:
            level = min(max(level, 2), 6)
            self.parts.append(f"<h{level}>{html.escape(text)}</h{level}>")
        return self

    def paragraph(self, text: str, note: bool = False) -> "HtmlReport":
        cls = ' class="note"' if note else ""
        self.parts.append(f"<p{cls}>{html.escape(text)}</p>")
        return self

    def bullets(self, items: list[str]) -> "HtmlReport":
        self.parts.append("<ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in items) + "</ul>")
        return self

    def link(self, text: str, href: str) -> "HtmlReport":
        self.parts.append(f'<p><a href="{html.escape(href)}">{html.escape(text)}</a></p>')
        return self

    def raw(self, markup: str) -> "HtmlReport":
        self.parts.append(markup)
        return self

    def table(self, frame: pd.DataFrame, float_format: str = "{:.3f}", index: bool = False) -> "HtmlReport":
        """A DataFrame as a table; floats formatted with `float_format`, missing values shown as '–'."""
        formatters = {
            c: (lambda v, f=float_format: "–" if pd.isna(v) else f.format(v))
            for c in frame.columns
            if pd.api.types.is_float_dtype(frame[c])
        }
        self.parts.append(frame.to_html(index=index, border=0, formatters=formatters, na_rep="–", escape=True))
        return self

    def image(self, path: str | Path | None, caption: str = "") -> "HtmlReport":
        """Embed an image file (PNG, JPEG or SVG); None is skipped so optional figures chain cleanly."""
        if path is None:
            return self
        path = Path(path)
        mime = MIME.get(path.suffix.lower(), "image/png")
        data = base64.b64encode(path.read_bytes()).decode()
        alt = html.escape(caption or path.name)
        figcaption = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
        self.parts.append(f'<figure><img src="data:{mime};base64,{data}" alt="{alt}">{figcaption}</figure>')
        return self

    def render(self) -> str:
        nav = ""
        if len(self.toc) > 1:
            links = "".join(f'<a href="#{a}">{html.escape(t)}</a>' for a, t in self.toc)
            nav = f"<nav>{links}</nav>"
        body = "\n".join(self.parts)
        title = html.escape(self.title)
        return (f"<!doctype html>\n<html lang='en'><head><meta charset='utf-8'><title>{title}</title>"
                f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
                f"<style>{STYLE}</style></head>\n<body><h1>{title}</h1>\n{nav}\n{body}\n</body></html>\n")

    def write(self, path: str | Path) -> Path:
        with atomic_write(path) as tmp:
            tmp.write_text(self.render(), encoding="utf-8")
        return Path(path)


def counts_table(stats: EdaStats) -> pd.DataFrame:
    rows = [("images", stats.images), ("defect images", stats.defect_images), ("clean images", stats.clean_images),
            ("masks", stats.masks)]
    rows += [(f"masks of class {c}", stats.masks_per_class[str(c)]) for c in CLASS_IDS]
    rows += [(f"images with {k} class{'es' if k != '1' else ''}", v)
             for k, v in sorted(stats.images_by_class_count.items(), key=lambda kv: int(kv[0]))]
    return pd.DataFrame(rows, columns=["count", "value"])


def combinations_table(stats: EdaStats) -> pd.DataFrame:
    items = sorted(stats.label_combinations.items(), key=lambda kv: (-kv[1], kv[0]))
    total = max(stats.images, 1)
    return pd.DataFrame([(k or "none (clean)", v, v / total * 100) for k, v in items],
                        columns=["classes", "images", "% of images"])


def area_table(stats: EdaStats) -> pd.DataFrame:
    n_images = {"All_data": stats.defect_images, "Class_multi": sum(
        v for k, v in stats.images_by_class_count.items() if int(k) >= 2)}
    n_images.update({f"Class_{c}": stats.label_combinations.get(str(c), 0) for c in CLASS_IDS})
    rows = []
    for name, values in stats.area_pct.items():
        numbers = [np.nan] * 5 if values is None else [values[k] for k in ("mean", "median", "std", "max", "min")]
        rows.append([name, n_images.get(name, 0), *numbers])
    return pd.DataFrame(rows, columns=["group", "images", "mean %", "median %", "std %", "max %", "min %"])


def brightness_table(stats: EdaStats) -> pd.DataFrame:
    widths = np.asarray(stats.band_widths)
    rows = [
        ("images sampled", f"{stats.brightness_sample} of {stats.images}"),
        ("mean grey level", f"{np.mean(stats.image_means):.1f}" if stats.image_means else "–"),
        ("images with a black band", f"{stats.black_band_images} ({(stats.black_band_share or 0) * 100:.1f}%)"),
        ("band width, median (columns)", f"{np.median(widths):.0f}" if widths.size else "–"),
    ]
    return pd.DataFrame(rows, columns=["brightness", "value"])


def _legend_html() -> str:
    names = {1: "blue", 2: "purple", 3: "yellow", 4: "red"}
    items = "".join(f'<span class="swatch" style="background:{colour_hex(c)}"></span>class {c} ({names[c]})'
                    for c in CLASS_IDS)
    return f"<p>{items}</p>"


def eda_report(
    root: str | Path,
    out_dir: str | Path,
    config: EdaConfig | None = None,
    on_step: Callable[[], None] | None = None,
) -> tuple[HtmlReport, EdaStats]:
    """Compute the statistics, write stats.json and the PNG figures into out_dir, and return the report (not
    yet written, so callers such as the demo can append sections) with the statistics.

    Bad labels raise the data layer's DataError before anything is written.
    """
    config = config or EdaConfig()
    config.validate()
    layout = data_dir(root)
    master = build_master(root)
    stats = compute_stats(root, config, master=master, on_step=on_step)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "stats.json", stats.to_json())

    report = HtmlReport(f"Dataset report: {layout.root.resolve().name}")
    report.paragraph(f"{layout.root.resolve()}: {stats.images} images, {stats.defect_images} with defects, "
                     f"{stats.masks} masks. Every figure is also saved beside this page as a PNG; the numbers "
                     f"are in stats.json.", note=True)

    report.heading("Counts")
    report.table(counts_table(stats)).image(figures.counts_figure(stats, out / "counts.png"),
                                            "Images, masks per class and images by number of classes")
    report.heading("Label combinations", level=3)
    report.table(combinations_table(stats), float_format="{:.1f}")
    report.image(figures.combinations_figure(stats, out / "combinations.png"))

    report.heading("Defect area")
    report.paragraph("Defect area as a percentage of the image's 1600x256 pixels: true fractions in [0, 100], "
                     "counted from the RLE run lengths. All_data: every defect image; Class_1..Class_4: images "
                     "with that single class; Class_multi: images with two or more classes (an image's area is "
                     "the union of its masks). Std is the population std. A group with no images shows –.",
                     note=True)
    report.table(area_table(stats)).image(figures.area_stats_figure(stats, out / "area_stats.png"),
                                          "Mean (± std) and median defect area per group")
    report.image(figures.area_hist_figure(stats, out / "area_hist.png"), "Area of every mask, per class")

    report.heading("Where and with what")
    report.image(figures.co_occurrence_figure(stats, out / "co_occurrence.png"), "Class co-occurrence")
    report.image(figures.heatmap_figure(stats, out / "location_heatmaps.png"),
                 f"Where each class falls on the strip: exact coverage from all {stats.masks} masks (no sampling), "
                 f"shown at {HEATMAP_SHAPE[1]}x{HEATMAP_SHAPE[0]}")
    report.heading("Brightness and black band", level=3)
    sample_note = "every image" if config.sample <= 0 or config.sample >= stats.images else (
        f"a seeded sample (seed {config.seed}) of {config.sample} images")
    report.paragraph(f"Computed on {sample_note}: {stats.brightness_sample} of {stats.images} images decoded. "
                     "A black band is a run of at least 8 edge columns (left or right) with mean grey level "
                     "under 20: the part of the frame beyond the steel strip.", note=True)
    report.table(brightness_table(stats)).image(figures.brightness_figure(stats, out / "brightness.png"))
    if stats.unreadable:
        report.paragraph(f"Unreadable images skipped ({len(stats.unreadable)}): "
                         f"{'; '.join(stats.unreadable[:20])}")

    report.heading("Mask overlays")
    report.raw(_legend_html())
    report.paragraph("Each example: the image with each mask's outline and a translucent fill, above the masks "
                     "on black (the capstone's view). Class galleries show single-class images first and images "
                     "where the class appears with others only when there are too few. Examples are a seeded "
                     "random pick.", note=True)
    rng = np.random.default_rng(config.seed)
    k = config.gallery_per_class
    skipped: list[str] = []
    if k > 0:
        for c in CLASS_IDS:
            panels, bad = gallery.panels(gallery.pick_class_examples(master, c, k, rng), layout.images)
            skipped += bad
            report.heading(f"Class {c}", level=3)
            if not panels:
                report.paragraph(f"No image of class {c}.", note=True)
                continue
            report.image(figures.example_figure(panels, "", out / f"gallery_class_{c}.png"))
        panels, bad = gallery.panels(gallery.pick_multi_examples(master, k, rng), layout.images)
        skipped += bad
        report.heading("Images with several classes", level=3)
        if panels:
            report.image(figures.example_figure(panels, "", out / "gallery_multi.png"))
        else:
            report.paragraph("No image carries two or more classes.", note=True)
    if skipped:
        report.paragraph(f"Gallery images skipped: {'; '.join(skipped)}", note=True)
    return report, stats


# Every name eda_report and write_report can leave in the report folder.
REPORT_NAMES = frozenset({"report.html", "stats.json", "counts.png", "combinations.png", "area_stats.png",
                          "area_hist.png", "co_occurrence.png", "location_heatmaps.png", "brightness.png",
                          "gallery_multi.png", *(f"gallery_class_{c}.png" for c in CLASS_IDS)})


def is_report_output(entry: Path) -> bool:
    """Whether `entry` of an existing folder is something `steelinspect eda` wrote there (a file of REPORT_NAMES,
    or a temporary of one left by an interrupted older version), which a new report may replace."""
    names = {entry.name}
    if entry.name.startswith(".") and entry.name.endswith(".tmp"):
        base = entry.name[1:-4]  # .stats.json.1234.abcd.tmp, or .stats.json.abcd.tmp before PIDs were in names
        names = {base.rsplit(".", 2)[0], base.rsplit(".", 1)[0]}
    return bool(names & REPORT_NAMES) and not entry.is_symlink() and entry.is_file()


def write_report(
    root: str | Path, out_dir: str | Path, config: EdaConfig | None = None, on_step: Callable[[], None] | None = None
) -> Path:
    """`steelinspect eda`: REPORT_DIR/report.html, stats.json and the PNG figures. Returns the report's path.

    The report is built in a temporary folder beside REPORT_DIR that replaces it only when complete: a failed or
    killed run leaves a previous report exactly as it was, a finished one leaves nothing of it. An existing
    REPORT_DIR holding anything but a previous report's files is refused, untouched.
    """
    out_dir = Path(out_dir)
    with atomic_dir(out_dir, replaceable=is_report_output, what="EDA report") as tmp:
        report, _ = eda_report(root, tmp, config, on_step)
        report.write(tmp / "report.html")
    return out_dir / "report.html"
