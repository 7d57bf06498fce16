"""POST /api/predict: every uploaded file inspected on its own, within the request's limits."""

from __future__ import annotations

import asyncio
from pathlib import Path

from fastapi import APIRouter, File, HTTPException, Request, UploadFile
from fastapi.concurrency import run_in_threadpool

from steelinspect.data.images import decode_gray
from steelinspect.errors import ImageError
from steelinspect.infer.inspect import Inspector
from steelinspect.serve.limits import DEADLINE
from steelinspect.serve.problems import image_problem
from steelinspect.serve.render import pictures

router = APIRouter()
# The upload formats decoded (by their first bytes): OpenCV reads many more, each one more decoder to attack.
UPLOAD_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n")


def inspect_bytes(inspector: Inspector, name: str, data: bytes) -> dict:
    """One file's answer: its result, or its own error (whatever failed), never an exception."""
    try:
        if not data.startswith(UPLOAD_SIGNATURES):
            raise ImageError("not a readable image (the server accepts JPEG or PNG files)", name)
        result = inspector.inspect(decode_gray(data, name), name)
        return {**result.to_json(), **pictures(result.image, result.masks)}
    except Exception as exc:
        return {"image_id": name, "error": image_problem(exc, name)}


@router.post("/api/predict")
async def predict(request: Request,
                  files: list[UploadFile] = File(..., description="One or more images (JPEG or PNG).")) -> list[dict]:
    config, inspector = request.app.state.config, request.app.state.inspector
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
            results.append({"image_id": name, "error": f"larger than {config.max_upload_mb:g} MB "
                            "(the per-file limit, --max-upload-mb)"})
            continue
        results.append(await run_in_threadpool(inspect_bytes, inspector, name, data))
    return results
