"""How real the synthetic data looks: per-image and per-mask statistics of a dataset against a real one.

    python bench/realism.py --real ../shared/severstal-sample --generate 120 [--seed 0] [--out realism.json]
    python bench/realism.py --real ../shared/severstal-sample --synth DATA_DIR
    python bench/realism.py --real DATA_DIR --synth OTHER_DATA_DIR --all-images

Prints, per statistic (steelinspect.data.realism.IMAGE_STATS / MASK_STATS): the real and synthetic medians,
the KS distance on all images, the KS distance at the floor's sample size (a random half of the real set
against as many synthetic images, averaged over --splits draws) and the floor itself (two random halves of
the real set, averaged over the same draws). A generator is realistic when KS@half is near the floor and
the real-vs-synthetic classifier's ROC AUC is near 0.5.

By default the synthetic images are chosen so that their class sets follow the real set's mix (the real
sample has only defect images; a clean plate's statistics differ from a defective one's); --all-images
takes every image (or the first N generated) instead.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np

from steelinspect.data import realism
from steelinspect.io import write_json


def synthetic_items(count: int, seed: int, target: list[tuple[int, ...]] | None):
    from steelinspect.data.synth import image_classes, image_id, render

    if target is None:
        indices = list(range(count))
    else:
        indices = realism.matching_mix(target, count, lambda i: image_classes(seed, i), limit=200 * count)
    for index in indices:
        image, masks = render(seed, index)
        # Through the JPEG codec like the written dataset, so compression artefacts count as they do on disk.
        ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 92])
        yield image_id(seed, index), cv2.imdecode(data, cv2.IMREAD_GRAYSCALE), masks


def folder_items(root: Path, count: int | None, target: list[tuple[int, ...]] | None, seed: int):
    sets = realism.dataset_class_sets(root)
    names = sorted(sets)
    if target is not None:
        chosen = realism.matching_mix(target, count or len(names), lambda i: sets[names[i]], limit=len(names))
        names = [names[i] for i in chosen]
    elif count is not None:
        names = list(np.random.default_rng(seed).permutation(names)[:count])
    return realism.dataset_items(root, names)


def _fmt(value: float) -> str:
    if not np.isfinite(value):
        return "   -"
    return f"{value:8.3f}" if abs(value) < 100 else f"{value:8.1f}"


def print_table(title: str, table, descriptions: dict[str, str]) -> None:
    print(f"\n{title}")
    print(f"{'statistic':<18}{'real med':>9}{'synth med':>10}{'KS all':>8}{'KS@half':>8}{'floor':>7}   what")
    for row in table.itertuples():
        print(
            f"{row.statistic:<18}{_fmt(row.real_median):>9}{_fmt(row.synth_median):>10}"
            f"{row.ks:8.2f}{row.ks_matched:8.2f}{row.floor:7.2f}   {descriptions[row.statistic]}"
        )
    print(
        f"{'mean':<18}{'':>9}{'':>10}{table.ks.mean():8.2f}{table.ks_matched.mean():8.2f}{table.floor.mean():7.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--real", type=Path, required=True, help="the real dataset (Kaggle layout)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--synth", type=Path, help="a synthetic dataset folder to compare")
    source.add_argument("--generate", type=int, metavar="N", help="render N images of the current generator")
    parser.add_argument("--images", type=int, default=None, help="with --synth: use at most this many images")
    parser.add_argument("--seed", type=int, default=0, help="generator seed (--generate); also the splits' seed")
    parser.add_argument("--splits", type=int, default=50, help="random half-splits averaged for the floor")
    parser.add_argument("--all-images", action="store_true", help="do not match the real set's class mix")
    parser.add_argument("--out", type=Path, default=None, help="write every number to this JSON file")
    args = parser.parse_args()

    start = time.perf_counter()
    real_sets = realism.dataset_class_sets(args.real)
    real = realism.collect(realism.dataset_items(args.real))
    target = None if args.all_images else list(real_sets.values())
    if args.generate is not None:
        synth = realism.collect(synthetic_items(args.generate, args.seed, target))
        source_name = f"generator, seed {args.seed}"
    else:
        synth = realism.collect(folder_items(args.synth, args.images, target, args.seed))
        source_name = str(args.synth)
    result = realism.compare(real, synth, splits=args.splits, seed=args.seed)

    mix = "class mix matched to the real set" if target is not None else "all images"
    print(f"real: {args.real} ({result.n_real} images, masks per class {result.real_masks})")
    print(f"synth: {source_name} ({result.n_synth} images, {mix}, masks per class {result.synth_masks})")
    print_table("Per image", result.images, realism.IMAGE_STATS)
    for class_id, table in result.masks.items():
        print_table(f"Per mask, class {class_id}", table, realism.MASK_STATS)
    mean = result.mean_ks
    print(
        f"\nmean KS over the image statistics: {mean['ks']:.3f} (all images), {mean['ks_matched']:.3f} "
        f"(KS@half) against the real-vs-real floor {mean['floor']:.3f}: gap {mean['ks_matched'] - mean['floor']:+.3f}"
    )
    print(
        "real-vs-synthetic classifier ROC AUC (image statistics, 5-fold CV): "
        + ", ".join(f"{k} {v:.3f}" for k, v in result.auc.items())
    )
    print(
        f"the same on {realism.PATCHES_PER_IMAGE} random {realism.PATCH}x{realism.PATCH} steel patches per image "
        "(local texture only; folds keep an image's patches together): "
        + ", ".join(f"{k} {v:.3f}" for k, v in result.patch_auc.items())
        + f"  ({time.perf_counter() - start:.0f} s)"
    )
    if args.out:
        write_json(args.out, {"real": str(args.real), "synth": source_name, "class_mix_matched": target is not None,
                              **result.to_dict()})


if __name__ == "__main__":
    main()
