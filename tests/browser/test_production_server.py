"""The admin as production serves it: gunicorn, DEBUG off, static files by WhiteNoise."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Response, expect

from tests.browser.conftest import STAFF_PASSWORD, STAFF_USER, VIEWPORT
from tests.prodserver import get, production_env, serve

pytestmark = pytest.mark.slow


@pytest.fixture
def gunicorn_port(
    manage_env: dict[str, str], tmp_path: Path, transactional_db: None, staff_user: Any
) -> Any:
    env = production_env(manage_env, tmp_path / "static")
    log = tmp_path / "gunicorn.log"
    with serve(env, log) as port:
        yield port, log


def test_admin_css_loads_under_gunicorn_with_debug_off(
    browser: Browser, gunicorn_port: Any
) -> None:
    port, log = gunicorn_port
    context = browser.new_context(viewport=VIEWPORT, base_url=f"http://127.0.0.1:{port}")
    page = context.new_page()
    stylesheets: list[Response] = []
    page.on(
        "response",
        lambda r: stylesheets.append(r) if r.request.resource_type == "stylesheet" else None,
    )
    try:
        page.goto("/admin/login/")
        page.fill("#id_username", STAFF_USER)
        page.fill("#id_password", STAFF_PASSWORD)
        page.click("input[type=submit]")
        expect(page.locator("#user-tools")).to_contain_text(STAFF_USER)
        # The admin's own style: a coloured header, not the browser's transparent default.
        header = page.evaluate(
            "getComputedStyle(document.querySelector('#header')).backgroundColor"
        )
        assert header not in ("rgba(0, 0, 0, 0)", "transparent")
    finally:
        context.close()
    assert stylesheets, "the admin linked no stylesheet"
    for response in stylesheets:
        assert response.status == 200, response.url
        assert response.headers["content-type"].startswith("text/css"), response.url
    # collectstatic's manifest: hashed names, which browsers may cache for good.
    assert any(re.search(r"/static/admin/css/base\.[0-9a-f]{12}\.css$", r.url) for r in stylesheets)
    assert re.search(r"GET /admin/login/ 200 [0-9.]+ ms", log.read_text())


def test_static_files_are_compressed_and_cached_for_good(gunicorn_port: Any) -> None:
    port, _ = gunicorn_port
    assert get(port, "/readyz")[:2] == (200, b"ok\n")
    status, body, _ = get(port, "/admin/login/")
    assert status == 200
    css = re.search(rb'href="(/static/admin/css/base\.[0-9a-f]{12}\.css)"', body)
    assert css is not None
    status, _, headers = get(port, css.group(1).decode(), {"Accept-Encoding": "gzip"})
    assert status == 200
    assert headers["Content-Encoding"] == "gzip"
    assert "immutable" in headers["Cache-Control"]
