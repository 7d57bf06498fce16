"""POST /api/predict: every uploaded file inspected on its own, within the request's limits. With --db each
inspected file is also recorded in the inspection log (answer's "inspection_id"), a file that could not be
inspected as a problem (source "upload"); the log keeps no copy of the upload itself."""

from __future__ import annotations

import asyncio
from pathlib import Path

from fastapi import APIRouter, File, Form, HTTPException, Request, UploadFile
from fastapi.concurrency import run_in_threadpool

from steelinspect.data.images import decode_gray
from steelinspect.errors import ImageError, SteelInspectError
from steelinspect.infer.inspect import Inspection, Inspector
from steelinspect.serve.limits import DEADLINE
from steelinspect.serve.problems import image_problem
from steelinspect.serve.render import pictures

router = APIRouter()
# The upload formats decoded (by their first bytes): OpenCV reads many more, each one more decoder to attack.
UPLOAD_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n")


def inspect_bytes(inspector: Inspector, name: str, data: bytes, log=None, models: dict | None = None,
                  coil: str | None = None) -> dict:
    """One file's answer: its result, or its own error (whatever failed), never an exception. With `log`, the
    result is recorded there too ("inspection_id"; None with "log_error" when the log refused it)."""
    try:
        if not data.startswith(UPLOAD_SIGNATURES):
            raise ImageError("not a readable image (the server accepts JPEG or PNG files)", name)
        result = inspector.inspect(decode_gray(data, name), name)
        answer = {**result.to_json(), **pictures(result.image, result.masks)}
    except Exception as exc:
        answer = {"image_id": name, "error": image_problem(exc, name)}
        if log is not None:
            _record(answer, lambda: log.record_problem(name, answer["error"], "upload", size=len(data)),
                    "problem_id")
        return answer
    answer["inspection_id"] = None
    if log is not None:
        _record(answer, lambda: log.record(_row(result), _regions(result), models, coil=coil), "inspection_id")
    return answer


def _row(result: Inspection) -> dict:
    """The inspection as a prediction row (what infer writes and the log stores)."""
    return {"ImageId": result.image_id, "p_defect": result.p_defect, "has_defect": result.has_defect,
            "classes": " ".join(map(str, result.classes)),
            **{f"p_class_{c}": p for c, p in result.p_class.items()}}


def _regions(result: Inspection) -> list:
    from steelinspect.inspect_log.regions import regions_from_masks

    return [] if result.masks is None else regions_from_masks(result.masks)


def _record(answer: dict, write, key: str) -> None:
    """Record in the log; a log that refuses costs this file its id (and says why), not its answer."""
    try:
        answer[key] = write()
    except SteelInspectError as exc:
        answer[key] = None
        answer["log_error"] = f"not recorded in the inspection log: {exc.problem}"


@router.post("/api/predict")
async def predict(request: Request,
                  files: list[UploadFile] = File(..., description="One or more images (JPEG or PNG)."),
                  coil: str | None = Form(None, description="With --db: the coil these images are frames of.")
                  ) -> list[dict]:
    config, inspector = request.app.state.config, request.app.state.inspector
    log, models = request.app.state.log, request.app.state.upload_models
    coil = (coil or "").strip() or None
    if coil is not None and len(coil) > 128:
        raise HTTPException(400, "a coil name is at most 128 characters")
    if len(files) > config.max_files:
        raise HTTPException(413, f"too many files ({len(files)}; at most {config.max_files} per request, "
                                 "--max-files)")
    limit = int(config.max_upload_mb * 1024 * 1024)
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
            refused = {"image_id": name, "error": f"larger than {config.max_upload_mb:g} MB "
                       "(the per-file limit, --max-upload-mb)"}
            if log is not None:  # kept with the other files that could not be inspected
                await run_in_threadpool(_record, refused, lambda: log.record_problem(name, refused["error"], "upload"),
                                        "problem_id")
            results.append(refused)
            continue
        results.append(await run_in_threadpool(inspect_bytes, inspector, name, data, log, models, coil))
    return results
