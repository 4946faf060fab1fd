"""theo/http/web.py and theo/web/static: the page, /docs, their files, and their packaging."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml
from setuptools import glob as setuptools_glob
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocket

from tests.conftest import REPO_ROOT
from theo.http.web import CONTENT_SECURITY_POLICY, WebPages
from theo.web import STATIC_DIR

# Theo's own files; swagger-ui/ is vendored as published (its README has the hashes).
OWN_FILES = sorted(p for p in STATIC_DIR.rglob("*") if p.is_file() and "swagger-ui" not in p.parts)


async def inner_page(_: object) -> PlainTextResponse:
    return PlainTextResponse("inner app")


async def inner_socket(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text("inner socket")
    await websocket.close()


@pytest.fixture
def client() -> TestClient:
    inner = Starlette(
        routes=[
            Route("/v1/models", inner_page),
            Route("/openapi.json", inner_page),
            WebSocketRoute("/v1/realtime", inner_socket),
        ]
    )
    return TestClient(WebPages(inner))


def test_the_page_is_served_at_the_root_with_a_same_origin_policy(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert '<script type="module" src="/web/app.js">' in response.text
    assert "default-src 'self'" in CONTENT_SECURITY_POLICY
    assert "script-src 'self';" in CONTENT_SECURITY_POLICY  # no inline script, no other host


def test_docs_is_the_vendored_swagger_ui_and_redoc_points_to_it(client: TestClient) -> None:
    docs = client.get("/docs")
    assert docs.status_code == 200
    assert "/web/swagger-ui/swagger-ui-bundle.js" in docs.text
    assert "cdn" not in docs.text
    redoc = client.get("/redoc", follow_redirects=False)
    assert redoc.status_code == 308 and redoc.headers["location"] == "/docs"


def test_other_requests_reach_the_app(client: TestClient) -> None:
    assert client.get("/v1/models").text == "inner app"
    assert client.get("/openapi.json").text == "inner app"
    with client.websocket_connect("/v1/realtime") as socket:
        assert socket.receive_text() == "inner socket"


def test_assets_are_served_revalidated_and_nothing_outside_them(client: TestClient) -> None:
    script = client.get("/web/app.js")
    assert script.status_code == 200
    assert "javascript" in script.headers["content-type"]
    assert script.headers["cache-control"] == "no-cache"
    revalidated = client.get("/web/app.js", headers={"if-none-match": script.headers["etag"]})
    assert revalidated.status_code == 304
    for path in ("/web/missing.js", "/web/", "/web/../http/web.py", "/web/%2e%2e/__init__.py"):
        assert client.get(path).status_code == 404, path


def test_every_file_a_page_names_exists(client: TestClient) -> None:
    for page in ("/", "/docs"):
        html = client.get(page).text
        for path in re.findall(r'(?:src|href)="(/web/[^"]+)"', html):
            assert client.get(path).status_code == 200, path
    for script in STATIC_DIR.glob("*.js"):
        for module in re.findall(r'from "\./([^"]+)"', script.read_text(encoding="utf-8")):
            assert (STATIC_DIR / module).is_file(), f"{script.name} imports {module}"
    assert (STATIC_DIR / "pcm-worklet.js").is_file()  # loaded by live.js as an AudioWorklet


@pytest.mark.parametrize("path", OWN_FILES, ids=lambda p: str(p.relative_to(STATIC_DIR)))
def test_the_page_names_no_other_host(path: Path) -> None:
    if path.suffix == ".svg":
        text = re.sub(r'xmlns="http://www\.w3\.org/2000/svg"', "", path.read_text(encoding="utf-8"))
    else:
        text = path.read_text(encoding="utf-8")
    assert re.findall(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, re.IGNORECASE) == []


def test_the_static_files_ship_in_the_wheel_and_the_bentos() -> None:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = project["tool"]["setuptools"]["package-data"]["theo"]
    theo_dir = REPO_ROOT / "theo"
    packaged = {
        Path(found)
        for pattern in patterns
        for found in setuptools_glob.glob(str(theo_dir / pattern), recursive=True)
    }
    files = {p for p in STATIC_DIR.rglob("*") if p.is_file()}
    assert files and files <= packaged
    for bentofile in ("bentofile.yaml", "deploy/bentofile.gpu.yaml"):
        config = yaml.safe_load((REPO_ROOT / bentofile).read_text(encoding="utf-8"))
        assert "theo/web/static/**" in config["include"], bentofile
