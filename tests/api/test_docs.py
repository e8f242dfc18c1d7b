"""/docs, /redoc and /openapi.json: served with their assets from the app (no CDN), and behind the token when one is
set; the OpenAPI document declares the bearer scheme."""

import re

import httpx


def test_docs_redoc_and_openapi_need_the_token(clip_server):
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert httpx.get(clip_server + path, timeout=30).status_code == 401, path
        assert httpx.get(clip_server + path + "?token=wrong", timeout=30).status_code == 401, path
        assert httpx.get(clip_server + path + "?token=s3cret", timeout=30).status_code == 200, path
        assert httpx.get(clip_server + path, headers={"Authorization": "Bearer s3cret"},
                         timeout=30).status_code == 200, path


def test_docs_pass_the_token_on_to_the_openapi_document(clip_server):
    page = httpx.get(clip_server + "/docs?token=s3cret", timeout=30).text
    assert "/openapi.json?token=s3cret" in page
    assert "/openapi.json?token=s3cret" in httpx.get(clip_server + "/redoc?token=s3cret", timeout=30).text


def test_openapi_declares_the_bearer_scheme(clip_server):
    document = httpx.get(clip_server + "/openapi.json", headers={"Authorization": "Bearer s3cret"}, timeout=30).json()
    schemes = document["components"]["securitySchemes"]
    assert [s for s in schemes.values() if s["type"] == "http" and s["scheme"] == "bearer"]
    name = next(iter(schemes))
    for path in ("/v1/clips", "/v1/state", "/v1/models", "/metrics", "/healthz"):
        operations = document["paths"][path].values()
        assert all({name: []} in operation["security"] for operation in operations), path


def test_docs_assets_come_from_the_app(clip_server):
    for path in ("/docs", "/redoc"):
        page = httpx.get(clip_server + path + "?token=s3cret", timeout=30).text
        urls = re.findall(r'(?:src|href)="([^"]+)"', page)
        assert urls and all(url.startswith("/static/docs/") for url in urls), urls
        assert "https://" not in page and "http://" not in page
        for url in urls:  # library files: served without the token
            response = httpx.get(clip_server + url, timeout=30)
            assert response.status_code == 200 and len(response.content) > 1000, url
