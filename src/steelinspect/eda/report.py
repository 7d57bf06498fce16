"""The HTML report: a small builder any stage can append to, and the EDA report itself.

The page opens offline: images are embedded (base64) and also left beside it as PNG files.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from steelinspect.constants import CLASS_IDS
from steelinspect.data.layout import data_dir
from steelinspect.data.master import build_master
from steelinspect.eda import figures
from steelinspect.eda.stats import EdaConfig, EdaStats, compute_stats
from steelinspect.io import atomic_write, write_json

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1200px; color: #222; padding: 0 1rem; }
h1 { border-bottom: 2px solid #444; padding-bottom: .3rem; }
h2 { margin-top: 2.2rem; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: .8rem 0; font-size: .9rem; }
th, td { border: 1px solid #ccc; padding: .25rem .6rem; text-align: right; }
th { background: #f0f0f0; }
td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; border: 1px solid #ddd; margin: .5rem 0; }
p.note { color: #555; font-size: .9rem; }
"""


@dataclass
class HtmlReport:
    """Sections of headings, paragraphs, tables and images, written as one self-contained page."""

    title: str
    parts: list[str] = field(default_factory=list)

    def heading(self, text: str, level: int = 2) -> "HtmlReport":
        self.parts.append(f"<h{level}>{html.escape(text)}</h{level}>")
        return self

    def paragraph(self, text: str, note: bool = False) -> "HtmlReport":
        cls = ' class="note"' if note else ""
        self.parts.append(f"<p{cls}>{html.escape(text)}</p>")
        return self

    def link(self, text: str, href: str) -> "HtmlReport":
        self.parts.append(f'<p><a href="{html.escape(href)}">{html.escape(text)}</a></p>')
        return self

    def table(self, frame: pd.DataFrame, float_format: str = "{:.3f}") -> "HtmlReport":
        formatters = {c: float_format.format for c in frame.columns if pd.api.types.is_float_dtype(frame[c])}
        self.parts.append(frame.to_html(index=False, border=0, formatters=formatters, na_rep="–", escape=True))
        return self

    def image(self, path: Path | None, caption: str = "") -> "HtmlReport":
        if path is None:
            return self
        data = base64.b64encode(Path(path).read_bytes()).decode()
        alt = html.escape(caption or Path(path).name)
        self.parts.append(f'<figure><img src="data:image/png;base64,{data}" alt="{alt}">'
                          f"<figcaption>{html.escape(caption)}</figcaption></figure>")
        return self

    def render(self) -> str:
        body = "\n".join(self.parts)
        return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(self.title)}</title>"
                f"<style>{STYLE}</style></head><body><h1>{html.escape(self.title)}</h1>\n{body}\n</body></html>\n")

    def write(self, path: Path) -> Path:
        with atomic_write(path) as tmp:
            tmp.write_text(self.render(), encoding="utf-8")
        return Path(path)


def counts_table(stats: EdaStats) -> pd.DataFrame:
    rows = [("images", stats.images), ("defect images", stats.defect_images), ("clean images", stats.clean_images),
            ("masks", stats.masks)]
    rows += [(f"masks of class {c}", stats.masks_per_class[str(c)]) for c in CLASS_IDS]
    rows += [(f"images with {k} class(es)", v) for k, v in sorted(stats.images_by_class_count.items(), key=lambda kv: int(kv[0]))]
    return pd.DataFrame(rows, columns=["count", "value"])


def area_table(stats: EdaStats) -> pd.DataFrame:
    rows = []
    for name, values in stats.area_pct.items():
        if values is None:
            rows.append([name, np.nan, np.nan, np.nan, np.nan, np.nan])
        else:
            rows.append([name, values["mean"], values["median"], values["std"], values["max"], values["min"]])
    return pd.DataFrame(rows, columns=["group", "mean %", "median %", "std %", "max %", "min %"])


def eda_report(
    root: str | Path,
    out_dir: str | Path,
    config: EdaConfig | None = None,
    on_step: Callable[[], None] | None = None,
) -> tuple[HtmlReport, EdaStats]:
    """Compute the statistics, write stats.json and the figures into out_dir, and return the report (not yet
    written, so that callers such as the demo can append sections) with the statistics."""
    config = config or EdaConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    layout = data_dir(root)
    master = build_master(root)
    stats = compute_stats(root, config, master=master, on_step=on_step)
    write_json(out / "stats.json", stats.to_json())

    report = HtmlReport(f"Severstal dataset report: {layout.root}")
    report.heading("Counts").table(counts_table(stats)).image(figures.counts_figure(stats, out / "counts.png"))
    report.heading("Defect area")
    report.paragraph("Area as a percentage of the image's pixels (true fractions in [0, 100]). All_data: every "
                     "defect image; Class_1..Class_4: images with that single class; Class_multi: images with two "
                     "or more classes.", note=True)
    report.table(area_table(stats)).image(figures.area_stats_figure(stats, out / "area_stats.png"))
    report.image(figures.area_hist_figure(stats, out / "area_hist.png"), "Area of each mask, per class")
    report.heading("Where and with what")
    report.image(figures.co_occurrence_figure(stats, out / "co_occurrence.png"), "Class co-occurrence")
    report.image(figures.heatmap_figure(stats, out / "location_heatmaps.png"), "Where each class falls on the strip")
    report.image(figures.brightness_figure(stats, out / "brightness.png"))
    report.paragraph(f"Brightness statistics from {stats.brightness_sample} of {stats.images} images "
                     f"(seeded sample of at most {config.sample}; 0 = all).", note=True)
    if stats.unreadable:
        report.paragraph(f"Unreadable images skipped: {'; '.join(stats.unreadable[:20])}")
    report.heading("Mask overlays")
    report.paragraph("Class colours: 1 blue, 2 purple, 3 yellow, 4 red; outline plus translucent fill, and the "
                     "masks on black.", note=True)
    rng = np.random.default_rng(config.seed)
    k = config.gallery_per_class
    for c in CLASS_IDS:
        rows = master[master.ClassIds.map(lambda ids, c=c: ids == [c])]
        rows = rows.iloc[np.sort(rng.permutation(len(rows))[:k])] if len(rows) else rows
        report.image(figures.gallery_figure(rows, layout.images, f"Class {c}", out / f"gallery_class_{c}.png"),
                     f"Class {c} examples")
    multi = master[master.Defect_no >= 2]
    multi = multi.iloc[np.sort(rng.permutation(len(multi))[:k])] if len(multi) else multi
    report.image(figures.gallery_figure(multi, layout.images, "Several classes", out / "gallery_multi.png"),
                 "Images with several classes")
    return report, stats


def write_report(
    root: str | Path, out_dir: str | Path, config: EdaConfig | None = None, on_step: Callable[[], None] | None = None
) -> Path:
    """`steelinspect eda`: REPORT_DIR/report.html, stats.json and the PNG figures. Returns the report path."""
    report, _ = eda_report(root, out_dir, config, on_step)
    return report.write(Path(out_dir) / "report.html")
