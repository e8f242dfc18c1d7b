"""The live view in the browser: GET / serves a page (plain HTML, JS and CSS from service/api/static, no build step)
that shows, per live source, the latest frame with the tracked faces drawn on it, each track's label probabilities
over the last minute, the recent events, the prompt and chat messages for the LLM, and the source's status; it
updates from WS /v1/stream and has a clip upload form. The frame endpoint encodes the latest frame on request only,
at most `view_max_fps` times a second per source, at most `view_max_side` pixels. With `view=false` neither route
exists. With a token set, the page needs it (header or `?token=`, which the page then uses for every request it
makes, in the Authorization header); the frame endpoint takes the header."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends, HTTPException, status
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles

from service.api.deps import LiveDep, SettingsDep, require_token, require_token_header_or_query

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
STATIC_URL = "/static/view"

router = APIRouter(tags=["view"])


def static_files() -> StaticFiles:
    """The page's script and style: code, no data, so served without the token."""
    return StaticFiles(directory=STATIC_DIR)


@router.get("/", include_in_schema=False, dependencies=[Depends(require_token_header_or_query)])
def page() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-store"})


@router.get("/v1/view/frames/{source}", dependencies=[Depends(require_token)], response_class=Response, responses={
    200: {"content": {"image/jpeg": {}}, "description": "the latest frame with each face's box, track id, label and "
          "confidence drawn on it; header X-Frame-Time: its time on the service clock"},
    404: {"description": "no such live source"}, 503: {"description": "the source has delivered no frame yet"}})
def latest_frame(source: str, live: LiveDep, settings: SettingsDep) -> Response:
    """The latest frame of a live source as JPEG. Encoded only when asked for, at most view_max_fps times a second
    per source (viewers in between get the same encoding), never larger than view_max_side pixels."""
    try:
        if live is None:
            raise KeyError(source)
        encoded = live.view_frame(source)
    except KeyError:
        known = ", ".join(live.source_names()) if live else ""
        raise HTTPException(status.HTTP_404_NOT_FOUND,
                            f"no live source {source!r}; sources: {known or 'none'}") from None
    if encoded is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"no frame from source {source!r} yet",
                            headers={"Retry-After": "1"})
    jpeg, t = encoded
    return Response(jpeg, media_type="image/jpeg", headers={
        "Cache-Control": "no-store", "X-Frame-Time": f"{t:.3f}",
        "X-View-Max-Fps": f"{settings.view_max_fps:g}"})
