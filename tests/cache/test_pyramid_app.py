"""A real Pyramid app, driven through WebTest, configured by the documented settings block."""

from __future__ import annotations

import itertools
import re
import time
from pathlib import Path
from typing import Any

import pytest
from pyramid.config import Configurator
from pyramid.response import Response
from webtest import TestApp

from satchel.cache import cache_region, get_region
from satchel.errors import ConfigurationError
from tests.support.cache import FIELD_BLOCK, SESSION

counter = itertools.count(1)


def text(value: Any) -> Response:
    return Response(str(value), content_type="text/plain")


@cache_region("short_term", "greeting", ignore=("request",))
def greeting(request: Any, name: str) -> str:
    return f"hello {name} #{next(counter)}"


def second_view(request: Any) -> Response:
    region = request.cache_region("second")
    return text(region.get_or_create("tick", lambda: next(counter)))


def greeting_view(request: Any) -> Response:
    return text(greeting(request, request.params.get("name", "world")))


def forget_view(request: Any) -> Response:
    greeting.invalidate(request.params.get("name", "world"))
    return text("forgotten")


def registry_view(request: Any) -> Response:
    return text(",".join(sorted(request.registry.cache_regions)))


def unknown_view(request: Any) -> Response:
    return text(request.cache_region("short_trem"))


def session_view(request: Any) -> Response:
    request.session["n"] = request.session.get("n", 0) + 1
    return text(request.session["n"])


def make_app(settings: dict[str, str]) -> TestApp:
    with Configurator(settings=settings) as config:
        config.include("satchel")
        for name, view in [
            ("second", second_view),
            ("greeting", greeting_view),
            ("forget", forget_view),
            ("registry", registry_view),
            ("unknown", unknown_view),
            ("session", session_view),
        ]:
            config.add_route(name, f"/{name}")
            config.add_view(view, route_name=name)
        return TestApp(config.make_wsgi_app())


@pytest.fixture
def app() -> TestApp:
    return make_app({**FIELD_BLOCK, **SESSION})


def test_the_documented_block_configures_four_regions(app: TestApp) -> None:
    assert app.get("/registry").text == "default_term,long_term,second,short_term"
    assert get_region("long_term").expiration_time == 3600


def test_a_view_reaches_a_region_and_it_expires_as_configured(app: TestApp) -> None:
    first = app.get("/second").text
    assert app.get("/second").text == first
    time.sleep(1.2)
    assert app.get("/second").text != first


def test_a_decorated_function_in_a_view(app: TestApp) -> None:
    first = app.get("/greeting", {"name": "ann"}).text
    assert first.startswith("hello ann #")
    assert app.get("/greeting", {"name": "ann"}).text == first  # the request object is not in the key
    assert app.get("/greeting", {"name": "bob"}).text != first
    app.get("/forget", {"name": "ann"})
    assert app.get("/greeting", {"name": "ann"}).text != first


def test_sessions_work_alongside(app: TestApp) -> None:
    assert app.get("/session").text == "1"
    assert app.get("/session").text == "2"


def test_an_unknown_region_names_the_nearest(app: TestApp) -> None:
    message = "no cache region 'short_trem' in cache.regions; did you mean 'short_term'?"
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        app.get("/unknown")


def test_bad_cache_settings_stop_the_app_at_start_up() -> None:
    with pytest.raises(ConfigurationError, match=r"did you mean cache\.second\.expire"):
        make_app({**FIELD_BLOCK, **SESSION, "cache.second.expires": "1"})
    with pytest.raises(ConfigurationError, match=r"cache\.second\.expire must be a whole number"):
        make_app({**FIELD_BLOCK, **SESSION, "cache.second.expire": "a second"})


def test_cache_without_sessions(tmp_path: Path) -> None:
    settings = {"cache.regions": "short_term", "cache.type": "file", "cache.data_dir": str(tmp_path)}
    app = make_app(settings)
    first = app.get("/greeting").text
    assert app.get("/greeting").text == first
    assert "Set-Cookie" not in app.get("/greeting").headers
    assert any(p.is_file() for p in tmp_path.rglob("*"))


def test_include_satchel_cache_directly() -> None:
    with Configurator(settings=dict(FIELD_BLOCK)) as config:
        config.include("satchel.cache")
        assert set(config.registry.cache_regions) == {"default_term", "second", "short_term", "long_term"}
