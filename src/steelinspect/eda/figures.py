"""The EDA figures, each a function writing one PNG and returning its path.

Figures are drawn on matplotlib's Agg canvas through the object API (Figure, not pyplot): no global backend is
switched, so importing this in a notebook leaves its plotting alone, and nothing is left open between figures.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from steelinspect.constants import CLASS_IDS, IMAGE_SHAPE
from steelinspect.draw.overlay import colour_hex, legend_handles
from steelinspect.eda.stats import EdaStats
from steelinspect.io import atomic_write

DPI = 110
CLASS_COLOURS_HEX = [colour_hex(c) for c in CLASS_IDS]
NEUTRAL = "#7790b0"


def _figure(figsize: tuple[float, float]) -> Figure:
    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig


def _subplots(nrows: int, ncols: int, figsize: tuple[float, float], **kwargs):
    fig = _figure(figsize)
    return fig, fig.subplots(nrows, ncols, **kwargs)


def _write(fig: Figure, path: Path) -> Path:
    with atomic_write(path) as tmp:
        fig.savefig(tmp, dpi=DPI, format="png", facecolor="white")
    return Path(path)


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    return _write(fig, path)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _empty(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#777")
    ax.set_xticks([])
    ax.set_yticks([])


def _bars(ax, labels, values, colours, title, ylabel="images"):
    bars = ax.bar(labels, values, color=colours, edgecolor="#333")
    ax.bar_label(bars, fmt="%d", padding=2, fontsize=8)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.margins(y=0.15)


def counts_figure(stats: EdaStats, path: Path) -> Path:
    """Defect vs clean images, masks per class, images by number of classes (capstone Figures 4 and 5)."""
    fig, axes = _subplots(1, 3, figsize=(13, 3.6))
    _bars(axes[0], ["defect", "clean"], [stats.defect_images, stats.clean_images], ["#c44", "#6a6"], "Images")
    _bars(axes[1], [f"class {c}" for c in CLASS_IDS], [stats.masks_per_class[str(c)] for c in CLASS_IDS],
          CLASS_COLOURS_HEX, "Masks per class", "masks")
    keys = sorted(stats.images_by_class_count, key=int)
    _bars(axes[2], keys, [stats.images_by_class_count[k] for k in keys], NEUTRAL, "Images by number of classes")
    axes[2].set_xlabel("classes in the image")
    return _save(fig, path)


def combinations_figure(stats: EdaStats, path: Path) -> Path:
    """Images per label combination, most frequent first."""
    items = sorted(stats.label_combinations.items(), key=lambda kv: (-kv[1], kv[0]))
    labels = [("clean" if not k else f"class {k}" if " " not in k else f"classes {k.replace(' ', ' + ')}")
              for k, _ in items]
    fig, ax = _subplots(1, 1, figsize=(8, 0.35 * len(items) + 1.2))
    bars = ax.barh(labels[::-1], [v for _, v in items][::-1], color=NEUTRAL, edgecolor="#333")
    ax.bar_label(bars, fmt="%d", padding=3, fontsize=8)
    ax.set_xlabel("images")
    ax.set_title("Images per label combination")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.margins(x=0.12)
    return _save(fig, path)


def area_stats_figure(stats: EdaStats, path: Path) -> Path:
    """Mean (with std) and median defect area per group, % of the image (capstone Figure 12)."""
    names = [n for n, v in stats.area_pct.items() if v is not None]
    fig, ax = _subplots(1, 1, figsize=(9, 3.6))
    if not names:
        _empty(ax, "no defect images")
        return _save(fig, path)
    x = np.arange(len(names))
    means = [stats.area_pct[n]["mean"] for n in names]
    ax.bar(x - 0.2, means, 0.4, yerr=[stats.area_pct[n]["std"] for n in names], capsize=3,
           label="mean (± std)", color=NEUTRAL, edgecolor="#333")
    ax.bar(x + 0.2, [stats.area_pct[n]["median"] for n in names], 0.4, label="median", color="#d9a441",
           edgecolor="#333")
    ax.set_xticks(x, names)
    ax.set_ylabel("defect area, % of image")
    ax.set_ylim(bottom=0)
    ax.set_title("Defect area per image")
    ax.legend(frameon=False)
    return _save(fig, path)


def area_hist_figure(stats: EdaStats, path: Path) -> Path:
    """Histogram of every mask's area (% of the image), one panel per class."""
    fig, axes = _subplots(1, 4, figsize=(14, 3.2))
    for ax, c in zip(axes, CLASS_IDS):
        values = stats.class_area_pct[str(c)]
        ax.set_title(f"Class {c} ({_plural(len(values), 'mask')})")
        if not values:
            _empty(ax, "no masks")
            continue
        ax.hist(values, bins=min(30, max(5, len(values))), color=colour_hex(c), edgecolor="#333")
        ax.set_xlabel("mask area, % of image")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0].set_ylabel("masks")
    return _save(fig, path)


def co_occurrence_figure(stats: EdaStats, path: Path) -> Path:
    matrix = np.array(stats.co_occurrence)
    fig, ax = _subplots(1, 1, figsize=(4.8, 4))
    im = ax.imshow(matrix, cmap="Blues", vmin=0)
    labels = [f"class {c}" for c in CLASS_IDS]
    ax.set_xticks(range(4), labels)
    ax.set_yticks(range(4), labels)
    top = max(int(matrix.max()), 1)
    for i in range(4):
        for j in range(4):
            ax.text(j, i, str(matrix[i, j]), ha="center", va="center",
                    color="white" if matrix[i, j] > top / 2 else "black")
    ax.set_title("Images carrying both classes\n(diagonal: images with the class)", fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.046)
    return _save(fig, path)


def heatmap_figure(stats: EdaStats, path: Path) -> Path:
    """Per class, the share of its masks covering each point of the 1600x256 strip."""
    height, width = IMAGE_SHAPE
    fig, axes = _subplots(4, 1, figsize=(12, 7.4))
    for ax, c in zip(axes, CLASS_IDS):
        n = stats.masks_per_class[str(c)]
        ax.set_title(f"Class {c} ({_plural(n, 'mask')}): share of masks covering each point", fontsize=9, loc="left")
        if n == 0:
            ax.set_facecolor("#f4f4f4")
            _empty(ax, "no masks")
            continue
        im = ax.imshow(stats.heatmaps[str(c)], cmap="magma", aspect="auto", extent=(0, width, height, 0), vmin=0,
                       interpolation="nearest")
        ax.set_yticks([0, height // 2, height])
        fig.colorbar(im, ax=ax, fraction=0.02, pad=0.01)
    axes[-1].set_xlabel(f"x (pixels of the {width}x{height} strip)")
    return _save(fig, path)


def brightness_figure(stats: EdaStats, path: Path) -> Path:
    """Mean grey level per image, the pixel grey-level histogram, and black-band widths (on the sample)."""
    fig, axes = _subplots(1, 3, figsize=(14, 3.4), gridspec_kw={"width_ratios": [1, 1.3, 1]})
    if stats.image_means:
        axes[0].hist(stats.image_means, bins=40, range=(0, 255), color="#888", edgecolor="#333")
        axes[0].yaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0].set_title(f"Mean grey level per image ({stats.brightness_sample} images)", fontsize=10)
    axes[0].set_xlabel("mean grey level")
    axes[0].set_ylabel("images")
    total = max(int(stats.brightness_hist.sum()), 1)
    axes[1].bar(np.arange(256), stats.brightness_hist / total, width=1.0, color="#555")
    axes[1].set_yscale("log")
    axes[1].set_title("Pixel grey levels (share of pixels, log scale)", fontsize=10)
    axes[1].set_xlabel("grey level")
    share = (stats.black_band_share or 0) * 100
    axes[2].set_title(f"Black out-of-strip band: {stats.black_band_images} images ({share:.1f}%)", fontsize=10)
    if stats.band_widths:
        axes[2].hist(stats.band_widths, bins=20, range=(0, IMAGE_SHAPE[1]), color="#444", edgecolor="#222")
        axes[2].set_xlabel("band width (columns)")
        axes[2].yaxis.set_major_locator(MaxNLocator(integer=True))
    else:
        _empty(axes[2], "no band found")
    return _save(fig, path)


def _stack_figure(panels: list[tuple[np.ndarray, str]], title: str, path: Path) -> Path:
    """Pictures (RGB, all the same width) one under another, each with a small caption, and a class legend.

    Laid out by hand in inches (no tight_layout, which would render the figure twice)."""
    width, margin, caption, legend, top = 12.0, 0.2, 0.3, 0.45, (0.4 if title else 0.1)
    heights = [width * rgb.shape[0] / rgb.shape[1] for rgb, _ in panels]
    fig_w = width + 2 * margin
    fig_h = top + sum(h + caption for h in heights) + legend
    fig = _figure((fig_w, fig_h))
    pixels = int(width * DPI)
    y = fig_h - top
    for (rgb, label), h in zip(panels, heights):
        y -= caption + h
        ax = fig.add_axes((margin / fig_w, y / fig_h, width / fig_w, h / fig_h))
        if rgb.shape[1] > pixels:  # shrink once with OpenCV: matplotlib's resampling holds float copies
            rgb = cv2.resize(rgb, (pixels, round(rgb.shape[0] * pixels / rgb.shape[1])), interpolation=cv2.INTER_AREA)
        ax.imshow(rgb, interpolation="nearest", aspect="auto")
        ax.set_title(label, fontsize=9, loc="left", pad=4)
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=12, y=1 - 0.06 / fig_h, va="top")
    fig.legend(handles=legend_handles(), loc="center", ncol=4, frameon=False,
               bbox_to_anchor=(0.5, legend / 2 / fig_h))
    return _write(fig, path)


def example_figure(panels: list[tuple[np.ndarray, str]], title: str, path: Path) -> Path | None:
    """A gallery: each example as its overlay above its masks on black (overlay.stacked_view pictures)."""
    if not panels:
        return None
    return _stack_figure(panels, title, path)
