"""The OpenAPI document and its two renderings, /docs (Swagger UI) and /redoc, working offline: their scripts and
styles come from the pinned `fastapi-offline` package (Swagger UI and ReDoc builds, MIT; Swagger UI itself is
Apache-2.0), served by the app under /static/docs, never from a CDN. With a token set, all three need it, in the
Authorization header or as `?token=` (a browser navigating to /docs cannot send a header; the page passes it on to
/openapi.json)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import fastapi_offline
from fastapi import APIRouter, Depends, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from service.api.deps import require_token_header_or_query

ASSETS_DIR = Path(fastapi_offline.__file__).resolve().parent / "static"
ASSETS_URL = "/static/docs"

router = APIRouter(dependencies=[Depends(require_token_header_or_query)], include_in_schema=False)


def assets() -> StaticFiles:
    """Swagger UI's and ReDoc's files: library code, no data, so served without the token."""
    return StaticFiles(directory=ASSETS_DIR)


def _openapi_url(request: Request) -> str:
    token = request.query_params.get("token")
    return "/openapi.json" + (f"?token={quote(token, safe='')}" if token else "")


@router.get("/openapi.json")
def openapi(request: Request) -> JSONResponse:
    return JSONResponse(request.app.openapi())


@router.get("/docs")
def swagger_ui(request: Request) -> HTMLResponse:
    return get_swagger_ui_html(openapi_url=_openapi_url(request), title=f"{request.app.title} - Swagger UI",
                               swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
                               swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
                               swagger_favicon_url=f"{ASSETS_URL}/favicon.png",
                               swagger_ui_parameters={"persistAuthorization": True})


@router.get("/redoc")
def redoc(request: Request) -> HTMLResponse:
    return get_redoc_html(openapi_url=_openapi_url(request), title=f"{request.app.title} - ReDoc",
                          redoc_js_url=f"{ASSETS_URL}/redoc.standalone.js",
                          redoc_favicon_url=f"{ASSETS_URL}/favicon.png", with_google_fonts=False)
