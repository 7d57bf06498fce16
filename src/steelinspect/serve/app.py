"""The inspection web service (FastAPI): a page to upload or browse images, and a JSON API.

- GET  /                     the page (static/index.html)
- GET  /api/health           status and the loaded runs
- POST /api/predict          multipart "files": one result per file (or a per-file error)
- GET  /api/dataset          with --data: images with ground truth and (once computed) predictions, filterable
- GET  /api/dataset/{image}  with --data: ground truth beside prediction for one image
- GET  /api/auth/whoami      with a reviewer's token: its name (401 otherwise)
- GET  /api/log/...          with --db: the inspection log (serve/log_api.py); POST .../review needs a token
- GET  /docs                 OpenAPI documentation

With --db every inspected upload is also recorded in the inspection log, and uploading then needs a reviewer's
token like every other write (serve/auth.py); --token-file names the reviewers' tokens (serve/tokens.py). Without
--token-file the server only reads, and it refuses to listen beyond this machine (a host that is not loopback).

Models load once at start. Model compute runs in worker threads, so the server keeps answering while a
prediction runs; decoding, encoding and the network are not serialised behind it.

Hostile input is refused, not trusted (serve/limits.py, serve/security.py): the request body is counted as it
streams (413 over --max-request-mb, 408 when it does not arrive within --request-timeout), every file is
inspected on its own (a file that fails to decode or inspect gets its own error, the others are answered),
only JPEG and PNG uploads are decoded, a symlink in --data that leads outside it is neither listed nor served
(unless --follow-symlinks), and errors answer JSON without tracebacks.
"""

from __future__ import annotations

import ipaddress
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from steelinspect.data.images import opencv_single_threaded
from steelinspect.errors import ConfigError, SteelInspectError
from steelinspect.infer.cascade import PredictConfig
from steelinspect.infer.inspect import Inspector
from steelinspect.serve import dataset, log_api, uploads
from steelinspect.serve.auth import AuthGate
from steelinspect.serve.dataset import DatasetBrowser
from steelinspect.serve.limits import BodyLimit
from steelinspect.serve.security import SecurityHeaders, wrap_outermost
from steelinspect.serve.tokens import TokenStore

STATIC = Path(__file__).parent / "static"


@dataclass
class ServeConfig:
    binary: Path | list[Path]  # a run directory or fold parent; a list: several runs averaged (an ensemble)
    multiclass: Path | list[Path]
    segment: Path | list[Path] | None = None
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
    db: str | None = None  # the inspection log's URL: uploads are recorded, /api/log/* reads it
    token_file: Path | None = None  # reviewers' tokens: without it the server takes no writes

    def __post_init__(self) -> None:
        for name in ("max_upload_mb", "max_files", "max_request_mb", "request_timeout"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be positive, got {getattr(self, name)}")
        if self.token_file is None and not is_loopback(self.host):
            raise ConfigError(f"--host {self.host} lets other machines connect; give --token-file too, so that only "
                              "reviewers with a token can write (or serve on 127.0.0.1)")


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and localhost; any other name or address (0.0.0.0 included) reaches beyond this machine."""
    if host.strip().lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def _open_log(config: ServeConfig, bands):
    from steelinspect.inspect_log.store import open_log

    return open_log(config.db, bands)


def _upload_models(inspector: Inspector) -> dict:
    """What the log keeps of the models deciding uploads (as predict --db keeps them), marked as uploads."""
    from steelinspect.inspect_log.sink import describe_run

    models = {"binary": describe_run(inspector.cascade.binary), "multiclass": describe_run(inspector.cascade.multiclass)}
    if inspector.segment is not None:
        models["segment"] = describe_run(inspector.segment.run)
    return {**models, "source": "upload"}


def create_app(config: ServeConfig, inspector: Inspector | None = None) -> FastAPI:
    """The app, with models loaded now (bad run directories fail here, before the server starts)."""
    # The quick checks first: a bad token file, bands file or database URL fails before any model loads.
    tokens = TokenStore(config.token_file) if config.token_file is not None else None
    from steelinspect.runs.bands import BandSet, bands_report, load_bands

    bands = load_bands(config.binary, config.multiclass) or BandSet()  # the runs' tune-bands, else the defaults
    report = bands_report(config.binary, config.multiclass)
    log = _open_log(config, bands) if config.db else None
    try:
        inspector = inspector or Inspector(config.binary, config.multiclass, config.segment,
                                           PredictConfig(batch_size=1, workers=1, engine=config.engine,
                                                         precision=config.precision, device=config.device),
                                           tta=config.tta)
        opencv_single_threaded()  # requests are decoded in the server's worker threads
        browser = DatasetBrowser(config.data, inspector, config.follow_symlinks) if config.data else None
    except BaseException:
        if log is not None:
            log.close()
        raise

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        if browser is not None:
            browser.stop()
        if log is not None:
            log.close()

    app = FastAPI(title="steelinspect", description="Steel-plate defect inspection (Severstal format).",
                  version="0.1.0", lifespan=lifespan)
    app.state.config, app.state.inspector, app.state.browser = config, inspector, browser
    app.state.tokens, app.state.log, app.state.bands_report = tokens, log, report
    app.state.upload_models = _upload_models(inspector) if log is not None else None

    def needs_token(path: str) -> bool:  # writes: reviews always, uploads when they are recorded
        return path.startswith("/api/log/") or (log is not None and path == "/api/predict")

    # Outermost, around Starlette's error middleware: every answer, a 500 included, passes through them.
    wrap_outermost(app, lambda inner: SecurityHeaders(
        BodyLimit(AuthGate(inner, tokens, needs_token), int(config.max_request_mb * 2**20), config.request_timeout)))
    app.include_router(uploads.router)
    app.include_router(dataset.router)
    app.include_router(log_api.router)
    app.get("/", include_in_schema=False)(page)
    app.get("/api/health")(health)
    app.exception_handler(SteelInspectError)(library_error)
    app.exception_handler(Exception)(internal_error)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


async def page() -> FileResponse:
    return FileResponse(STATIC / "index.html")


async def health(request: Request) -> dict:
    config, inspector, browser = request.app.state.config, request.app.state.inspector, request.app.state.browser
    log = request.app.state.log
    return {"status": "ok", "runs": inspector.runs, "segmentation": inspector.segment is not None,
            "dataset": None if browser is None else browser.status(),
            "log": {"enabled": log is not None, "db": None if log is None else log.shown_url},
            "writes": request.app.state.tokens is not None,
            "max_upload_mb": config.max_upload_mb, "max_files": config.max_files,
            "max_request_mb": config.max_request_mb, "request_timeout_s": config.request_timeout}


async def library_error(_request: Request, exc: SteelInspectError) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, 422)


async def internal_error(_request: Request, exc: Exception) -> JSONResponse:
    # Starlette logs the traceback; the client gets one line of JSON, never the traceback.
    return JSONResponse({"detail": "internal server error (the server log has the details)"}, 500)


def serve(config: ServeConfig) -> None:
    import uvicorn

    uvicorn.run(create_app(config), host=config.host, port=config.port, log_level="info")

