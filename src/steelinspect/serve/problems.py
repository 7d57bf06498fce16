"""One image's failure as the answer shows it: the library's own words, never a traceback."""

from __future__ import annotations

import logging

from steelinspect.errors import SteelInspectError

log = logging.getLogger("steelinspect.serve")
INTERNAL = "could not inspect this image (internal error; the server log has the details)"


def image_problem(exc: Exception, image_id: str) -> str:
    """The message for one image that failed; anything but a library error is logged with its traceback."""
    if isinstance(exc, SteelInspectError):
        return exc.problem
    log.error("inspecting %r failed", image_id, exc_info=exc)
    return INTERNAL
