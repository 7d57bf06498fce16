"""The inspection web service (FastAPI): a page to upload or browse images, and a JSON API.

- GET  /                     the page (static/index.html)
- GET  /api/health           status and the loaded runs
- POST /api/predict          multipart "files": one result per file (or a per-file error)
- GET  /api/dataset          with --data: images with ground truth and (once computed) predictions, filterable
- GET  /api/dataset/{image}  with --data: ground truth beside prediction for one image
- GET  /docs                 OpenAPI documentation

Models load once at start. Model compute runs in worker threads, so the server keeps answering while a
prediction runs; decoding, encoding and the network are not serialised behind it.

Hostile input is refused, not trusted (serve/limits.py, serve/security.py): the request body is counted as it
streams (413 over --max-request-mb, 408 when it does not arrive within --request-timeout), every file is
inspected on its own (a file that fails to decode or inspect gets its own error, the others are answered),
only JPEG and PNG uploads are decoded, a symlink in --data that leads outside it is neither listed nor served
(unless --follow-symlinks), and errors answer JSON without tracebacks.
"""

from __future__ import annotations

import asyncio
import logging
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
from steelinspect.errors import ConfigError, ImageError, SteelInspectError
from steelinspect.infer.cascade import PredictConfig
from steelinspect.infer.inspect import Inspector
from steelinspect.serve.limits import DEADLINE, BodyLimit
from steelinspect.serve.render import pictures
from steelinspect.serve.security import SecurityHeaders, wrap_outermost

STATIC = Path(__file__).parent / "static"
log = logging.getLogger("steelinspect.serve")
# The upload formats decoded (by their first bytes): OpenCV reads many more, each one more decoder to attack.
UPLOAD_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n")
INTERNAL = "could not inspect this image (internal error; the server log has the details)"


def image_problem(exc: Exception, image_id: str) -> str:
    """One image's failure as a message for the answer: the library's own words, never a traceback."""
    if isinstance(exc, SteelInspectError):
        return exc.problem
    log.error("inspecting %r failed", image_id, exc_info=exc)
    return INTERNAL


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
    max_request_mb: float = 64.0
    request_timeout: float = 120.0
    follow_symlinks: bool = False
    engine: str = "auto"
    precision: str = "fp32"
    device: str = "auto"
    tta: bool = False

    def __post_init__(self) -> None:
        for name in ("max_upload_mb", "max_files", "max_request_mb", "request_timeout"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be positive, got {getattr(self, name)}")


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


def create_app(config: ServeConfig, inspector: Inspector | None = None) -> FastAPI:
    """The app, with models loaded now (bad run directories fail here, before the server starts)."""
    inspector = inspector or Inspector(config.binary, config.multiclass, config.segment,
                                       PredictConfig(batch_size=1, workers=1, engine=config.engine,
                                                     precision=config.precision, device=config.device),
                                       tta=config.tta)
    browser = DatasetBrowser(config.data, inspector, config.follow_symlinks) if config.data else None
    limit = int(config.max_upload_mb * 1024 * 1024)
    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        if browser is not None:
            browser.stop()

    app = FastAPI(title="steelinspect", description="Steel-plate defect inspection (Severstal format).",
                  version="0.1.0", lifespan=lifespan)
    app.state.inspector, app.state.browser = inspector, browser
    # Outermost, around Starlette's error middleware: every answer, a 500 included, passes through both.
    wrap_outermost(app, lambda inner: SecurityHeaders(
        BodyLimit(inner, int(config.max_request_mb * 2**20), config.request_timeout)))

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/api/health")
    async def health() -> dict:
        return {"status": "ok", "runs": inspector.runs, "segmentation": inspector.segment is not None,
                "dataset": None if browser is None else browser.status(),
                "max_upload_mb": config.max_upload_mb, "max_files": config.max_files,
                "max_request_mb": config.max_request_mb, "request_timeout_s": config.request_timeout}

    def inspect_bytes(name: str, data: bytes) -> dict:
        """One file's answer: its result, or its own error (whatever failed), never an exception."""
        try:
            if not data.startswith(UPLOAD_SIGNATURES):
                raise ImageError("not a readable image (the server accepts JPEG or PNG files)", name)
            result = inspector.inspect(decode_gray(data, name), name)
            return {**result.to_json(), **pictures(result.image, result.masks)}
        except Exception as exc:
            return {"image_id": name, "error": image_problem(exc, name)}

    @app.post("/api/predict")
    async def predict(request: Request,
                      files: list[UploadFile] = File(..., description="One or more images (JPEG or PNG).")) -> list[dict]:
        if len(files) > config.max_files:
            raise HTTPException(413, f"too many files ({len(files)}; at most {config.max_files} per request, "
                                     "--max-files)")
        loop = asyncio.get_running_loop()
        deadline = request.scope.get(DEADLINE, loop.time() + config.request_timeout)
        results = []
        for upload in files:
            # The name is only ever returned in JSON (the page shows it with textContent); bounded in length.
            name = (Path(upload.filename or "upload").name or "upload")[:255]
            if loop.time() > deadline:
                results.append({"image_id": name, "error": f"not inspected: the request ran past its "
                                f"{config.request_timeout:g} s limit (--request-timeout)"})
                continue
            data = await upload.read(limit + 1)
            if len(data) > limit:
                results.append({"image_id": name, "error": f"larger than {config.max_upload_mb:g} MB "
                                "(the per-file limit, --max-upload-mb)"})
                continue
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
        except Exception as exc:  # this image's problem: answered, the server goes on
            raise HTTPException(422, f"{image_id}: {image_problem(exc, image_id)}") from None

    @app.exception_handler(SteelInspectError)
    async def library_error(_request: Request, exc: SteelInspectError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, 422)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        # Starlette logs the traceback; the client gets one line of JSON, never the traceback.
        return JSONResponse({"detail": "internal server error (the server log has the details)"}, 500)

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def serve(config: ServeConfig) -> None:
    import uvicorn

    uvicorn.run(create_app(config), host=config.host, port=config.port, log_level="info")

