"""The EDA figures, each a function writing one PNG (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from steelinspect import rle  # noqa: E402
from steelinspect.constants import CLASS_IDS  # noqa: E402
from steelinspect.data.images import read_gray  # noqa: E402
from steelinspect.eda.overlay import black_background_masks, colour_hex, legend_handles, overlay_masks  # noqa: E402
from steelinspect.eda.stats import EdaStats  # noqa: E402
from steelinspect.data.master import RLE_COLUMNS  # noqa: E402
from steelinspect.io import atomic_write  # noqa: E402

CLASS_COLOURS_HEX = [colour_hex(c) for c in CLASS_IDS]


def _save(fig, path: Path, bottom: float = 0.0) -> Path:
    fig.tight_layout(rect=(0, bottom, 1, 1))  # `bottom` leaves room for a figure legend
    with atomic_write(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path


def _bars(ax, labels, values, colours, title, ylabel="images"):
    bars = ax.bar(labels, values, color=colours, edgecolor="#333")
    ax.bar_label(bars, fmt="%d", padding=2, fontsize=8)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.margins(y=0.15)


def counts_figure(stats: EdaStats, path: Path) -> Path:
    """Defect vs clean images, masks per class, images by number of classes (capstone Figures 4 and 5)."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    _bars(axes[0], ["defect", "clean"], [stats.defect_images, stats.clean_images], ["#c44", "#6a6"], "Images")
    _bars(axes[1], [f"class {c}" for c in CLASS_IDS], [stats.masks_per_class[str(c)] for c in CLASS_IDS],
          CLASS_COLOURS_HEX, "Masks per class", "masks")
    keys = sorted(stats.images_by_class_count, key=int)
    _bars(axes[2], keys, [stats.images_by_class_count[k] for k in keys], "#7790b0", "Images by number of classes")
    axes[2].set_xlabel("classes in the image")
    return _save(fig, path)


def area_stats_figure(stats: EdaStats, path: Path) -> Path:
    """Mean and median defect area (% of the image) per group, with the std as error bars (capstone Figure 12)."""
    names = [n for n, v in stats.area_pct.items() if v is not None]
    means = [stats.area_pct[n]["mean"] for n in names]
    medians = [stats.area_pct[n]["median"] for n in names]
    stds = [stats.area_pct[n]["std"] for n in names]
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(9, 3.6))
    ax.bar(x - 0.2, means, 0.4, yerr=stds, capsize=3, label="mean (± std)", color="#7790b0")
    ax.bar(x + 0.2, medians, 0.4, label="median", color="#d9a441")
    ax.set_xticks(x, names)
    ax.set_ylabel("defect area, % of image")
    ax.set_title("Defect area per image")
    ax.legend()
    return _save(fig, path)


def area_hist_figure(stats: EdaStats, path: Path) -> Path:
    fig, axes = plt.subplots(1, 4, figsize=(14, 3.2))
    for ax, c in zip(axes, CLASS_IDS):
        values = stats.class_area_pct[str(c)]
        if values:
            ax.hist(values, bins=30, color=colour_hex(c), edgecolor="#333")
        else:
            ax.text(0.5, 0.5, "no masks", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(f"Class {c} ({len(values)} masks)")
        ax.set_xlabel("area, % of image")
    axes[0].set_ylabel("masks")
    return _save(fig, path)


def co_occurrence_figure(stats: EdaStats, path: Path) -> Path:
    matrix = np.array(stats.co_occurrence)
    fig, ax = plt.subplots(figsize=(4.6, 4))
    im = ax.imshow(matrix, cmap="Blues")
    labels = [f"class {c}" for c in CLASS_IDS]
    ax.set_xticks(range(4), labels)
    ax.set_yticks(range(4), labels)
    for i in range(4):
        for j in range(4):
            colour = "white" if matrix[i, j] > matrix.max() / 2 else "black"
            ax.text(j, i, str(matrix[i, j]), ha="center", va="center", color=colour)
    ax.set_title("Images with both classes")
    fig.colorbar(im, ax=ax, fraction=0.046)
    return _save(fig, path)


def heatmap_figure(stats: EdaStats, path: Path) -> Path:
    fig, axes = plt.subplots(4, 1, figsize=(12, 7))
    for ax, c in zip(axes, CLASS_IDS):
        im = ax.imshow(stats.heatmaps[str(c)], cmap="magma", aspect="auto", extent=(0, 1600, 256, 0), vmin=0)
        ax.set_title(f"Class {c}: share of masks covering each point", fontsize=9)
        ax.set_yticks([0, 128, 256])
        fig.colorbar(im, ax=ax, fraction=0.02, pad=0.01)
    axes[-1].set_xlabel("x (pixels of the 1600x256 strip)")
    return _save(fig, path)


def brightness_figure(stats: EdaStats, path: Path) -> Path:
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.4))
    axes[0].hist(stats.image_means, bins=40, color="#888", edgecolor="#333")
    axes[0].set_title(f"Mean brightness per image ({stats.brightness_sample} images)")
    axes[0].set_xlabel("mean grey level")
    hist = stats.brightness_hist / max(stats.brightness_hist.sum(), 1)
    axes[1].bar(np.arange(256), hist, width=1.0, color="#555")
    axes[1].set_yscale("log")
    share = stats.black_band_images / max(stats.brightness_sample, 1) * 100
    axes[1].set_title(f"Pixel grey levels; {share:.1f}% of images carry a black out-of-strip band")
    axes[1].set_xlabel("grey level")
    return _save(fig, path)


def masks_of(row) -> np.ndarray:
    return rle.build_mask([getattr(row, col) if hasattr(row, col) else row[col] for col in RLE_COLUMNS])


def show_figure(image_path: Path, masks: np.ndarray, title: str, path: Path) -> Path:
    """One image with its masks: overlay (outline + fill) above the capstone's black-background masks."""
    gray = read_gray(image_path)
    fig, axes = plt.subplots(2, 1, figsize=(14, 4.6))
    axes[0].imshow(overlay_masks(gray, masks))
    axes[0].set_title(title)
    axes[1].imshow(black_background_masks(masks))
    axes[1].set_title("masks")
    for ax in axes:
        ax.axis("off")
    fig.legend(handles=legend_handles(), loc="lower center", ncol=4, frameon=False)
    fig.subplots_adjust(bottom=0.1)
    with atomic_write(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path


def gallery_figure(rows: pd.DataFrame, images_dir: Path, title: str, path: Path) -> Path | None:
    """K examples, each as overlay beside its black-background masks."""
    if rows.empty:
        return None
    fig, axes = plt.subplots(len(rows), 2, figsize=(16, 1.35 * len(rows) + 0.8), squeeze=False)
    for (ax_img, ax_mask), row in zip(axes, rows.itertuples(index=False)):
        masks = rle.build_mask([getattr(row, col) for col in RLE_COLUMNS])
        ax_img.imshow(overlay_masks(read_gray(images_dir / row.ImageId), masks))
        ax_img.set_title(f"{row.ImageId}  classes {' '.join(map(str, row.ClassIds))}", fontsize=8, loc="left")
        ax_mask.imshow(black_background_masks(masks))
        ax_img.axis("off")
        ax_mask.axis("off")
    fig.suptitle(title)
    fig.legend(handles=legend_handles(), loc="lower center", ncol=4, frameon=False)
    return _save(fig, path, bottom=0.35 / fig.get_figheight())
