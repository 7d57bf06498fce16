"""The dataset browser behind --data: ground truth beside prediction, computed once in the background, and its
two routes (GET /api/dataset, GET /api/dataset/{image})."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool

from steelinspect import rle
from steelinspect.constants import CLASS_IDS
from steelinspect.data.images import read_gray
from steelinspect.data.layout import data_dir
from steelinspect.data.master import RLE_COLUMNS, build_master
from steelinspect.errors import ImageError
from steelinspect.infer.inspect import Inspector
from steelinspect.serve.problems import image_problem
from steelinspect.serve.render import pictures

log = logging.getLogger("steelinspect.serve")
router = APIRouter()


class DatasetBrowser:
    """The labelled dataset behind --data: ground truth from the master table, predictions computed once in a
    background thread (verdict and classes, for the filters). An image that fails is a problem of that image
    (kept in `problems`, shown in the listing and /api/health); the others are still predicted. A symlink that
    leads outside the data folder is neither listed nor served unless `follow_symlinks`."""

    def __init__(self, root: Path, inspector: Inspector, follow_symlinks: bool = False):
        self.layout = data_dir(root)
        self.root = Path(root).resolve()
        self.follow_symlinks = follow_symlinks
        master = build_master(root)
        self.problems: dict[str, str] = {}
        for image_id in master["ImageId"]:
            if (reason := self.outside(image_id)) is not None:
                self.problems[image_id] = reason
        if self.problems:
            log.warning("not serving %d image(s) outside %s: %s", len(self.problems), self.root,
                        ", ".join(sorted(self.problems)))
        self.master = master[~master["ImageId"].isin(self.problems)].set_index("ImageId", drop=False)
        self.inspector = inspector
        self.predicted: dict[str, dict] = {}
        self.done = False
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._predict_all, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        """Stop the background predictions (at server shutdown, so no model call outlives the app)."""
        self.stopping.set()
        self.thread.join(timeout=30)

    def _predict_all(self) -> None:
        for image_id in self.master.index:
            if self.stopping.is_set():
                return
            try:
                if (reason := self.outside(image_id)) is not None:  # a symlink swapped in since the start
                    raise ImageError(reason, image_id)
                result = self.inspector.inspect(read_gray(self.layout.image(image_id)), image_id)
            except Exception as exc:  # one image's failure, whatever it is, must not end the others
                self.problems[image_id] = image_problem(exc, image_id)
                continue
            self.predicted[image_id] = {"has_defect": result.has_defect, "classes": result.classes}
        self.done = True

    def outside(self, image_id: str) -> str | None:
        """Why this image is not served (its real path is outside the data folder), or None."""
        if self.follow_symlinks:
            return None
        real = self.layout.image(image_id).resolve()
        if real.is_relative_to(self.root):
            return None
        return "refused: a symlink to a file outside the data folder (serve --follow-symlinks allows it)"

    def path(self, image_id: str) -> Path:
        """The image's path, refusing anything that is not a plain file name of this dataset."""
        if Path(image_id).name != image_id or image_id.startswith(".") or "\\" in image_id:
            raise HTTPException(400, f"refused: {image_id!r} is outside the data folder")
        if image_id not in self.master.index:
            if image_id in self.problems:  # refused at the start: a symlink to outside
                raise HTTPException(403, self.problems[image_id])
            raise HTTPException(404, f"no image {image_id!r} in the dataset")
        if (reason := self.outside(image_id)) is not None:
            raise HTTPException(403, reason)
        return self.layout.image(image_id)

    def status(self) -> dict:
        """For /api/health: progress of the background predictions and the images that failed (first 100)."""
        return {"images": len(self.master), "predicted": len(self.predicted), "done": self.done,
                "failed": len(self.problems),
                "problems": [{"image_id": k, "error": v} for k, v in sorted(self.problems.items())[:100]]}

    def listing(self, cls: int | None, verdict: str | None, disagree: bool, offset: int, limit: int) -> dict:
        rows = []
        for r in self.master.itertuples(index=False):
            truth = list(r.ClassIds)
            if cls is not None and cls not in truth:
                continue
            pred = self.predicted.get(r.ImageId)
            if verdict is not None:
                if pred is None or (verdict == "defect") != pred["has_defect"]:
                    continue
            if disagree and (pred is None or sorted(pred["classes"]) == sorted(truth)):
                continue
            rows.append({"image_id": r.ImageId, "truth": truth,
                         "predicted": None if pred is None else pred["classes"],
                         "has_defect": None if pred is None else pred["has_defect"],
                         "error": self.problems.get(r.ImageId)})
        return {"total": len(rows), "predicted": len(self.predicted), "images": len(self.master),
                "failed": len(self.problems),
                "items": rows[offset : offset + limit]}

    def truth_masks(self, image_id: str) -> np.ndarray:
        row = self.master.loc[image_id]
        return rle.build_mask([row[c] for c in RLE_COLUMNS])


def _browser(request: Request) -> DatasetBrowser:
    browser = request.app.state.browser
    if browser is None:
        raise HTTPException(404, "no dataset: start the server with --data DATA_DIR")
    return browser


@router.get("/api/dataset")
async def dataset(request: Request,
                  cls: int | None = Query(None, ge=1, le=4, description="only images with this true class"),
                  verdict: str | None = Query(None, pattern="^(defect|clean)$"),
                  disagree: bool = Query(False, description="only images where prediction and truth differ"),
                  offset: int = Query(0, ge=0), limit: int = Query(50, ge=1, le=500)) -> dict:
    return _browser(request).listing(cls, verdict, disagree, offset, limit)


@router.get("/api/dataset/{image_id:path}")
async def dataset_image(request: Request, image_id: str) -> dict:
    browser = _browser(request)
    inspector: Inspector = request.app.state.inspector
    path = browser.path(image_id)

    def work() -> dict:
        gray = read_gray(path)
        result = inspector.inspect(gray, image_id)
        truth = browser.truth_masks(image_id)
        return {"image_id": image_id, "prediction": {**result.to_json(), **pictures(gray, result.masks)},
                "truth": {"classes": [c for c in CLASS_IDS if truth[c - 1].any()], **pictures(gray, truth)}}

    try:
        return await run_in_threadpool(work)
    except Exception as exc:  # this image's problem: answered, the server goes on
        raise HTTPException(422, f"{image_id}: {image_problem(exc, image_id)}") from None
