"""Headless Chromium keeps and sends back a cookie session spread over several cookies.

A real Pyramid app in cookie mode (``max_cookies = 4``) is served by waitress on
loopback; the browser itself makes the requests, so what round-trips is what a
browser really stores and sends, each cookie within its 4096 bytes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
from pyramid.config import Configurator
from pyramid.response import Response

from satchel.errors import SessionTooLarge
from satchel.policy.cookie import COOKIE_LIMIT
from tests.support.apps import BASE_SETTINGS
from tests.support.browser import chromium, serve

KEY = "browser-key-Qm7xT2pLv9cRz4Nk8WsYd3Jh6FbA1gEu"
SETTINGS = {
    **BASE_SETTINGS,
    "session.type": "cookie",
    "session.encrypt_key": KEY,
    "session.max_cookies": "4",
}


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def store(request: Any) -> Response:
    """Random (barely compressible) text of ``n`` characters, or as much as fits."""
    n = int(request.params["n"])
    source = base64.urlsafe_b64encode(os.urandom(n)).decode()[:n]
    if request.params.get("fill"):
        low, high = 0, n
        while low < high:
            middle = (low + high + 1) // 2
            try:
                request.session["blob"] = source[:middle]
            except SessionTooLarge:
                high = middle - 1
            else:
                low = middle
        source = source[:low]
    request.session["blob"] = source
    return Response(json_body={"sha": sha(source), "length": len(source)})


def show(request: Any) -> Response:
    """What the browser sent: the session's digest, and the names of its cookies."""
    value = request.session.get("blob")
    body = {"sha": sha(value) if value is not None else None, "cookies": sorted(request.cookies)}
    return Response(json_body=body)


def shrink(request: Any) -> Response:
    request.session["blob"] = "small"
    return Response(json_body={"sha": sha("small")})


def make_wsgi_app() -> Any:
    with Configurator(settings=SETTINGS) as config:
        config.include("satchel")
        for name, view in {"store": store, "show": show, "shrink": shrink}.items():
            config.add_route(name, f"/{name}")
            config.add_view(view, route_name=name)
        return config.make_wsgi_app()


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with serve(make_wsgi_app(), threads=2) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context()
    try:
        yield context.new_page()
    finally:
        context.close()


def get_json(page: Any, url: str) -> Any:
    response = page.goto(url)
    assert response is not None and response.status == 200, response and response.text()
    return json.loads(response.text())


def session_cookies(page: Any) -> dict[str, str]:
    return {c["name"]: c["value"] for c in page.context.cookies() if c["name"].startswith("sid")}


def test_a_10kb_session_round_trips_over_several_cookies(page: Any, base_url: str) -> None:
    stored = get_json(page, f"{base_url}/store?n=10000")
    jar = session_cookies(page)
    assert set(jar) == {"sid", "sid.1", "sid.2"}  # 10 KB of random text takes three cookies
    assert jar["sid"].startswith("3")
    seen = get_json(page, f"{base_url}/show")
    assert seen["cookies"] == ["sid", "sid.1", "sid.2"]  # the browser sent every chunk back
    assert seen["sha"] == stored["sha"]
    # A read-only request changes nothing in the browser.
    assert session_cookies(page) == jar

    get_json(page, f"{base_url}/shrink")
    assert set(session_cookies(page)) == {"sid"}  # the unused chunks were deleted
    seen = get_json(page, f"{base_url}/show")
    assert seen == {"sha": sha("small"), "cookies": ["sid"]}


def test_a_session_filled_to_the_limit_is_kept_by_the_browser(page: Any, base_url: str) -> None:
    """Each of the four cookies is as large as satchel allows: Chromium keeps all of them."""
    stored = get_json(page, f"{base_url}/store?n=20000&fill=1")
    jar = session_cookies(page)
    assert set(jar) == {"sid", "sid.1", "sid.2", "sid.3"}
    # name=value alone is close to the limit; the attributes make up the rest of the 4096.
    assert all(len(name) + 1 + len(value) > COOKIE_LIMIT - 100 for name, value in jar.items())
    seen = get_json(page, f"{base_url}/show")
    assert seen["cookies"] == ["sid", "sid.1", "sid.2", "sid.3"]
    assert seen["sha"] == stored["sha"]
