"""The inspection station's API over the inspection log (serve --db): summary, review queue, history, one
inspection with its pictures, reviews, coils and their reports, the tuned bands.

Reads are open; the one write here (a review) needs a reviewer's token and stores the token's reviewer name, never
a name the client sends. Input is checked here, at the boundary: a bad value answers 400 with the reason, a missing
inspection or coil 404, and a database that cannot be read 503. Database calls run in worker threads.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from steelinspect.constants import CLASS_IDS, IMAGE_SHAPE
from steelinspect.data.images import read_gray, resize
from steelinspect.errors import ConfigError, LogError, SteelInspectError
from steelinspect.inspect_log import coil_report
from steelinspect.inspect_log.bands import BANDS, Bands
from steelinspect.inspect_log.coils import class_counts, coil_frames, coils
from steelinspect.inspect_log.models import VERDICTS
from steelinspect.inspect_log.store import MAX_PAGE_SIZE, Entry, InspectionLog, LogFilter, StoredDefect
from steelinspect.serve.auth import reviewer
from steelinspect.serve.render import pictures

router = APIRouter()
MAX_REVIEW_BYTES = 16 * 1024  # a review is a verdict, a few classes and a note
MAX_NOTE_CHARS = 2000
REVIEW_FIELDS = ("verdict", "classes", "defect_id", "note")


# --- shared pieces -----------------------------------------------------------------------------------------------

def _log(request: Request) -> InspectionLog:
    log = request.app.state.log
    if log is None:
        raise HTTPException(404, "no inspection log: start the server with --db URL")
    return log


async def _read(function, *args):
    """A database read in a worker thread; a log that cannot be read answers 503."""
    try:
        return await run_in_threadpool(function, *args)
    except LogError as exc:
        raise HTTPException(503, f"the inspection log cannot be read: {exc}") from None


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.astimezone(timezone.utc).isoformat()


def entry_json(entry: Entry, reviewed: bool) -> dict:
    return {"id": entry.id, "image_id": entry.image_id, "coil": entry.coil, "frame": entry.frame,
            "inspected_at": _iso(entry.inspected_at), "p_defect": entry.p_defect, "p_class": list(entry.p_class),
            "classes": list(entry.classes), "band": entry.band, "uncertainty": entry.uncertainty,
            "reviewed": reviewed}


def _defect_json(d: StoredDefect, with_id: bool = True) -> dict:
    r = d.region
    found = {"class_id": r.class_id, "area": r.area, "x": r.x, "y": r.y, "width": r.width, "height": r.height}
    return {"id": d.id, **found} if with_id else found


def _counts_json(counts: dict[int, int]) -> dict[str, int]:
    return {str(c): counts.get(c, 0) for c in CLASS_IDS}


def _int(value: str | None, name: str, low: int, high: int, default: int | None = None) -> int | None:
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise HTTPException(400, f"{name} must be a whole number, got {value[:40]!r}") from None
    if not low <= number <= high:
        raise HTTPException(400, f"{name} must be {low} to {high}, got {number}")
    return number


def _time(value: str | None, name: str) -> datetime | None:
    if not value:
        return None
    text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
    if len(text) > 19 and text[-6] == " ":  # an unescaped "+" in a query string arrives as a space
        text = text[:-6] + "+" + text[-5:]
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise HTTPException(400, f"{name} must be an ISO-8601 time with its zone (e.g. 2026-01-31T08:00:00Z), "
                                 f"got {value[:40]!r}") from None
    if at.tzinfo is None:
        raise HTTPException(400, f"{name} needs a time zone (e.g. 2026-01-31T08:00:00Z or +01:00)")
    return at


def _bool(value: str | None, name: str) -> bool | None:
    if value is None or value == "":
        return None
    if value.lower() in ("true", "1", "yes"):
        return True
    if value.lower() in ("false", "0", "no"):
        return False
    raise HTTPException(400, f"{name} must be true or false, got {value[:40]!r}")


def _inspection_id(value: str) -> int:
    if not value.isdigit() or len(value) > 18:
        raise HTTPException(404, f"no inspection with id {value[:40]!r}")
    return int(value)


# --- routes ------------------------------------------------------------------------------------------------------

@router.get("/api/auth/whoami")
async def whoami(name: str = Depends(reviewer)) -> dict:
    return {"reviewer": name}


@router.get("/api/log/summary")
async def summary(request: Request) -> dict:
    log: InspectionLog | None = request.app.state.log
    if log is None:
        return {"enabled": False, "db": None, "total": 0, "bands": {b: 0 for b in BANDS}, "to_review": 0}

    def work() -> dict:
        bands = log.band_counts()
        to_review = log.count(LogFilter(band="REVIEW", reviewed=False))
        return {"enabled": True, "db": log.shown_url, "total": sum(bands.values()), "bands": bands,
                "to_review": to_review}

    return await _read(work)


@router.get("/api/log/review")
async def review_queue(request: Request, limit: str | None = Query(None, description="1 to 1000; 20")) -> dict:
    log = _log(request)
    entries = await _read(log.review_queue, _int(limit, "limit", 1, MAX_PAGE_SIZE, 20))
    return {"entries": [entry_json(e, False) for e in entries]}


@router.get("/api/log/history")
async def history(request: Request,
                  coil: str | None = Query(None), class_id: str | None = Query(None, description="1 to 4"),
                  band: str | None = Query(None, description="OK, REVIEW or NG"),
                  since: str | None = Query(None, description="ISO-8601 with zone, inclusive"),
                  until: str | None = Query(None, description="ISO-8601 with zone, exclusive"),
                  reviewed: str | None = Query(None, description="true or false"),
                  limit: str | None = Query(None, description="1 to 1000; 50"),
                  after: str | None = Query(None, description="next_after of the previous page")) -> dict:
    log = _log(request)
    if band is not None and band != "" and band not in BANDS:
        raise HTTPException(400, f"band must be one of {', '.join(BANDS)}, got {band[:40]!r}")
    if coil is not None and len(coil) > 128:
        raise HTTPException(400, "coil is at most 128 characters")
    filt = LogFilter(coil=coil or None, band=band or None, class_id=_int(class_id, "class_id", 1, 4),
                     since=_time(since, "since"), until=_time(until, "until"), reviewed=_bool(reviewed, "reviewed"))
    page_size = _int(limit, "limit", 1, MAX_PAGE_SIZE, 50)
    after_id = _int(after, "after", 1, 2**63 - 1)

    def work():
        page = log.query(filt, page_size=page_size, after=after_id)
        return page, log.reviewed_ids(e.id for e in page.entries)

    page, reviewed_ids = await _read(work)
    return {"entries": [entry_json(e, e.id in reviewed_ids) for e in page.entries], "next_after": page.next_after}


def stored_pictures(path: str | None, defects: list[StoredDefect]) -> dict:
    """The stored image decoded (within the pixel limit) with masks drawn from the stored regions, or why not."""
    if path is None:
        return {"image_missing": True, "image_problem": "the log keeps no path for this image (an upload)"}
    try:
        gray = read_gray(path)
    except SteelInspectError as exc:
        return {"image_missing": True, "image_problem": exc.problem}
    if gray.shape[:2] != IMAGE_SHAPE:  # as inspected: brought to 1600x256, where the regions were found
        gray = resize(gray, IMAGE_SHAPE)
    masks = None
    if defects:
        masks = np.zeros((len(CLASS_IDS), *IMAGE_SHAPE), dtype=bool)
        for d in defects:
            try:
                masks[d.region.class_id - 1] |= d.region.mask(IMAGE_SHAPE)
            except SteelInspectError:  # a malformed stored region is left out; the others are drawn
                continue
    return {"pictures": pictures(gray, masks)}


@router.get("/api/log/inspection/{inspection_id}")
async def inspection(request: Request, inspection_id: str) -> dict:
    log = _log(request)
    number = _inspection_id(inspection_id)

    def work():
        entry = log.entry(number)
        if entry is None:
            return None
        return entry, log.defects(number), log.reviews(number)

    found = await _read(work)
    if found is None:
        raise HTTPException(404, f"no inspection with id {number}")
    entry, defects, reviews = found
    shown = await run_in_threadpool(stored_pictures, entry.path, defects)
    return {**entry_json(entry, bool(reviews)), "defects": [_defect_json(d) for d in defects],
            "reviews": [{"reviewer": r.reviewer, "reviewed_at": _iso(r.reviewed_at), "verdict": r.verdict,
                         "classes": None if r.classes is None else list(r.classes), "defect_id": r.defect_id,
                         "note": r.note} for r in reviews],
            **shown}


async def _json_body(request: Request, limit: int) -> object:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"a review is at most {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise HTTPException(413, f"a review is at most {limit} bytes")
    try:
        return json.loads(body)
    except ValueError:
        raise HTTPException(400, "the review must be a JSON object") from None


def _review_fields(body: object) -> tuple[str, list[int] | None, int | None, str | None]:
    if not isinstance(body, dict):
        raise HTTPException(400, "the review must be a JSON object")
    unknown = sorted(set(body) - set(REVIEW_FIELDS))
    if unknown:
        raise HTTPException(400, f"unknown field(s) {', '.join(map(repr, unknown))}; a review takes "
                                 f"{', '.join(REVIEW_FIELDS)}")
    verdict = body.get("verdict")
    if verdict not in VERDICTS:
        raise HTTPException(400, f"verdict must be one of {', '.join(VERDICTS)}, got {str(verdict)[:40]!r}")
    classes = body.get("classes")
    if classes is not None:
        if not isinstance(classes, list) or len(classes) > len(CLASS_IDS) \
                or any(type(c) is not int or c not in CLASS_IDS for c in classes):
            raise HTTPException(400, f"classes must be a list of class ids 1 to 4, got {str(classes)[:60]}")
    if verdict == "correct" and classes is None:
        raise HTTPException(400, "a 'correct' review needs the true classes ([] for no defect)")
    if verdict != "correct":
        if classes:
            raise HTTPException(400, f"classes are given with the 'correct' verdict only, not {verdict!r}")
        classes = None
    defect_id = body.get("defect_id")
    if defect_id is not None and (type(defect_id) is not int or defect_id < 1):
        raise HTTPException(400, f"defect_id must be a region's id (a whole number), got {str(defect_id)[:40]!r}")
    if verdict == "reject_region" and defect_id is None:
        raise HTTPException(400, "a 'reject_region' review needs the region's defect_id")
    if verdict != "reject_region" and defect_id is not None:
        raise HTTPException(400, f"defect_id is given with the 'reject_region' verdict only, not {verdict!r}")
    note = body.get("note")
    if note is not None and not isinstance(note, str):
        raise HTTPException(400, "note must be text")
    if note is not None and len(note) > MAX_NOTE_CHARS:
        raise HTTPException(400, f"note is at most {MAX_NOTE_CHARS} characters")
    return verdict, classes, defect_id, (note or None)


@router.post("/api/log/inspection/{inspection_id}/review")
async def add_review(request: Request, inspection_id: str, name: str = Depends(reviewer)) -> dict:
    """Body {"verdict": "confirm"|"correct"|"reject_region", "classes": [1..4], "defect_id": int, "note": str}."""
    log = _log(request)
    number = _inspection_id(inspection_id)
    verdict, classes, defect_id, note = _review_fields(await _json_body(request, MAX_REVIEW_BYTES))

    def check():
        if log.entry(number) is None:
            return "missing"
        if defect_id is not None and defect_id not in {d.id for d in log.defects(number)}:
            return "foreign"
        return None

    problem = await _read(check)
    if problem == "missing":
        raise HTTPException(404, f"no inspection with id {number}")
    if problem == "foreign":
        raise HTTPException(400, f"inspection {number} has no region with id {defect_id}")
    try:
        review_id = await run_in_threadpool(log.add_review, number, name, verdict, classes, defect_id, note)
    except LogError as exc:
        raise HTTPException(400, exc.problem) from None
    return {"review_id": review_id}


@router.get("/api/log/coils")
async def coil_list(request: Request, limit: str | None = Query(None, description="1 to 1000; 100")) -> dict:
    log = _log(request)
    found = await _read(coils, log, _int(limit, "limit", 1, MAX_PAGE_SIZE, 100))
    return {"coils": [{"coil": c.coil, "frames": c.frames, "first_at": _iso(c.first_at), "last_at": _iso(c.last_at),
                       "counts": _counts_json(c.counts), "bands": c.bands} for c in found]}


async def _coil(request: Request, coil: str):
    log = _log(request)
    if not coil or len(coil) > 128:
        raise HTTPException(400, "a coil name is 1 to 128 characters")
    frames = await _read(coil_frames, log, coil)
    if not frames:
        raise HTTPException(404, f"no coil {coil!r} in the inspection log")
    return frames


def _attachment(coil: str, suffix: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", coil)[:100] or "coil"
    return f'attachment; filename="coil-{safe}.{suffix}"'


@router.get("/api/log/coil/{coil:path}/report.csv")
async def coil_csv(request: Request, coil: str) -> Response:
    frames = await _coil(request, coil)
    return Response(coil_report.csv_text(frames), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": _attachment(coil, "csv")})


@router.get("/api/log/coil/{coil:path}/report.html")
async def coil_html(request: Request, coil: str) -> Response:
    frames = await _coil(request, coil)
    page = await run_in_threadpool(coil_report.html_text, coil, frames)
    return Response(page, media_type="text/html; charset=utf-8", headers={"Content-Disposition": _attachment(coil, "html")})


# After the reports: a coil name may hold "/" (sent as %2F), so the view takes the rest of the path.
@router.get("/api/log/coil/{coil:path}")
async def coil_view(request: Request, coil: str) -> dict:
    frames = await _coil(request, coil)
    return {"coil": coil,
            "frames": [{"id": f.entry.id, "frame": f.entry.frame, "image_id": f.entry.image_id, "band": f.entry.band,
                        "classes": list(f.entry.classes), "reviewed": f.reviewed_classes is not None,
                        "reviewed_classes": None if f.reviewed_classes is None else list(f.reviewed_classes),
                        "defects": [_defect_json(d, with_id=False) for d in f.defects]} for f in frames],
            "counts": _counts_json(class_counts(frames))}


@router.get("/api/log/bands")
async def bands(request: Request) -> dict:
    return request.app.state.bands_report  # runs.bands.bands_report, read once at start
