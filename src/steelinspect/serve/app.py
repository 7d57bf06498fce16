"""The inspection web service (FastAPI): a page to upload or browse images, and a JSON API.

- GET  /                     the page (static/index.html)
- GET  /api/health           status and the loaded runs
- POST /api/predict          multipart "files": one result per file (or a per-file error)
- GET  /api/dataset          with --data: images with ground truth and (once computed) predictions, filterable
- GET  /api/dataset/{image}  with --data: ground truth beside prediction for one image
- GET  /docs                 OpenAPI documentation

Models load once at start. Model compute runs in worker threads, so the server keeps answering while a
prediction runs; decoding, encoding and the network are not serialised behind it.
"""

from __future__ import annotations

import threading
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from fastapi import FastAPI, File, HTTPException, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from steelinspect import rle
from steelinspect.constants import CLASS_IDS
from steelinspect.data.images import decode_gray, read_gray
from steelinspect.data.layout import data_dir
from steelinspect.data.master import RLE_COLUMNS, build_master
from steelinspect.errors import ImageError, SteelInspectError
from steelinspect.infer.cascade import PredictConfig
from steelinspect.infer.inspect import Inspector
from steelinspect.serve.render import pictures

STATIC = Path(__file__).parent / "static"


@dataclass
class ServeConfig:
    binary: Path
    multiclass: Path
    segment: Path | None = None
    data: Path | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    max_upload_mb: float = 20.0
    max_files: int = 32
    engine: str = "auto"
    precision: str = "fp32"
    device: str = "auto"
    tta: bool = False


class DatasetBrowser:
    """The labelled dataset behind --data: ground truth from the master table, predictions computed once in a
    background thread (verdict and classes, for the filters)."""

    def __init__(self, root: Path, inspector: Inspector):
        self.layout = data_dir(root)
        self.master = build_master(root).set_index("ImageId", drop=False)
        self.inspector = inspector
        self.predicted: dict[str, dict] = {}
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
                result = self.inspector.inspect(read_gray(self.layout.image(image_id)), image_id)
            except ImageError:
                continue
            self.predicted[image_id] = {"has_defect": result.has_defect, "classes": result.classes}

    def path(self, image_id: str) -> Path:
        """The image's path, refusing anything that is not a plain file name of this dataset."""
        if Path(image_id).name != image_id or image_id.startswith(".") or "\\" in image_id:
            raise HTTPException(400, f"refused: {image_id!r} is outside the data folder")
        if image_id not in self.master.index:
            raise HTTPException(404, f"no image {image_id!r} in the dataset")
        return self.layout.image(image_id)

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
                         "has_defect": None if pred is None else pred["has_defect"]})
        return {"total": len(rows), "predicted": len(self.predicted), "images": len(self.master),
                "items": rows[offset : offset + limit]}

    def truth_masks(self, image_id: str) -> np.ndarray:
        row = self.master.loc[image_id]
        return rle.build_mask([row[c] for c in RLE_COLUMNS])


def create_app(config: ServeConfig, inspector: Inspector | None = None) -> FastAPI:
    """The app, with models loaded now (bad run directories fail here, before the server starts)."""
    inspector = inspector or Inspector(config.binary, config.multiclass, config.segment,
                                       PredictConfig(batch_size=1, workers=1, engine=config.engine,
                                                     precision=config.precision, device=config.device),
                                       tta=config.tta)
    browser = DatasetBrowser(config.data, inspector) if config.data else None
    limit = int(config.max_upload_mb * 1024 * 1024)
    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        if browser is not None:
            browser.stop()

    app = FastAPI(title="steelinspect", description="Steel-plate defect inspection (Severstal format).",
                  version="0.1.0", lifespan=lifespan)
    app.state.inspector, app.state.browser = inspector, browser

    @app.middleware("http")
    async def refuse_large_bodies(request: Request, call_next):
        size = request.headers.get("content-length")
        if size and size.isdigit() and int(size) > limit * config.max_files:
            return JSONResponse({"detail": f"upload too large (limit {config.max_upload_mb:g} MB per file)"}, 413)
        return await call_next(request)

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/api/health")
    async def health() -> dict:
        return {"status": "ok", "runs": inspector.runs, "segmentation": inspector.segment is not None,
                "dataset": None if browser is None else {"images": len(browser.master), "predicted": len(browser.predicted)},
                "max_upload_mb": config.max_upload_mb, "max_files": config.max_files}

    def inspect_bytes(name: str, data: bytes) -> dict:
        try:
            gray = decode_gray(data, name)
        except ImageError as exc:
            return {"image_id": name, "error": exc.problem}
        result = inspector.inspect(gray, name)
        return {**result.to_json(), **pictures(result.image, result.masks)}

    @app.post("/api/predict")
    async def predict(files: list[UploadFile] = File(..., description="One or more images (JPEG or PNG).")) -> list[dict]:
        if len(files) > config.max_files:
            raise HTTPException(413, f"too many files ({len(files)}; at most {config.max_files} per request)")
        results = []
        for upload in files:
            name = Path(upload.filename or "upload").name
            data = await upload.read(limit + 1)
            if len(data) > limit:
                raise HTTPException(413, f"{name} is larger than {config.max_upload_mb:g} MB")
            results.append(await run_in_threadpool(inspect_bytes, name, data))
        return results

    @app.get("/api/dataset")
    async def dataset(cls: int | None = Query(None, ge=1, le=4, description="only images with this true class"),
                      verdict: str | None = Query(None, pattern="^(defect|clean)$"),
                      disagree: bool = Query(False, description="only images where prediction and truth differ"),
                      offset: int = Query(0, ge=0), limit: int = Query(50, ge=1, le=500)) -> dict:
        if browser is None:
            raise HTTPException(404, "no dataset: start the server with --data DATA_DIR")
        return browser.listing(cls, verdict, disagree, offset, limit)

    @app.get("/api/dataset/{image_id:path}")
    async def dataset_image(image_id: str) -> dict:
        if browser is None:
            raise HTTPException(404, "no dataset: start the server with --data DATA_DIR")
        path = browser.path(image_id)

        def work() -> dict:
            gray = read_gray(path)
            result = inspector.inspect(gray, image_id)
            truth = browser.truth_masks(image_id)
            return {"image_id": image_id, "prediction": {**result.to_json(), **pictures(gray, result.masks)},
                    "truth": {"classes": [c for c in CLASS_IDS if truth[c - 1].any()], **pictures(gray, truth)}}

        try:
            return await run_in_threadpool(work)
        except ImageError as exc:
            raise HTTPException(422, str(exc)) from None

    @app.exception_handler(SteelInspectError)
    async def library_error(_request: Request, exc: SteelInspectError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, 422)

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def serve(config: ServeConfig) -> None:
    import uvicorn

    uvicorn.run(create_app(config), host=config.host, port=config.port, log_level="info")

