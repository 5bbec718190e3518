"""Beaker's and Pyramid's session API on satchel's sessions, through a real Pyramid app."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from pyramid.config import Configurator
from pyramid.response import Response
from webtest import TestApp

from satchel.errors import ConfigurationError
from tests.support.apps import BASE_SETTINGS


def _app(**views: Callable[[Any], Any]) -> TestApp:
    config = Configurator(settings={**BASE_SETTINGS, "session.type": "memory"})
    config.include("satchel")
    for name, view in views.items():

        def wrapped(request: Any, view: Callable[[Any], Any] = view) -> Response:
            return Response(json.dumps(view(request.session)), content_type="application/json", charset="utf-8")

        config.add_route(name, "/" + name)
        config.add_view(wrapped, route_name=name)
    return TestApp(config.make_wsgi_app())


def _set(session: Any) -> Any:
    session["cart"] = ["teapot"]
    session.persist()
    return [session.is_new, session.last_accessed]


def _show(session: Any) -> Any:
    return [dict(session), session.is_new, session.last_accessed is not None]


def test_is_new_last_accessed_and_persist_mean_what_they_meant_in_beaker() -> None:
    app = _app(set=_set, show=_show)
    assert app.get("/set").json == [True, None]
    assert app.get("/show").json == [{"cart": ["teapot"]}, False, True]


def _change_then_revert(session: Any) -> Any:
    session["cart"] = ["everything"]
    session.flash("oops")
    session.revert()
    return dict(session)


def test_revert_undoes_the_requests_changes() -> None:
    app = _app(set=_set, revert=_change_then_revert, show=_show)
    app.get("/set")
    assert app.get("/revert").json == {"cart": ["teapot"]}
    assert app.get("/show").json[0] == {"cart": ["teapot"]}


def _delete(session: Any) -> Any:
    session.delete()
    return dict(session)


def test_delete_ends_the_session_like_invalidate() -> None:
    app = _app(set=_set, delete=_delete, show=_show)
    app.get("/set")
    response = app.get("/delete")
    assert "Max-Age=0" in response.headers["Set-Cookie"]
    assert app.get("/show").json[0] == {}


def _pyramid_keys(session: Any) -> Any:
    session.flash("hello")
    token = session.get_csrf_token()
    seen = [session["_f_"], session.get("_csrft_") == token, "_f_" in session, "_f_other" in session]
    session["_f_other"] = ["written as a key"]
    session.setdefault("_f_third", []).append("appended")
    return seen


def _pop_pyramid_keys(session: Any) -> Any:
    return [session.pop_flash("other"), session.pop("_f_third"), session.pop("_f_none", []), "_f_" in session]


def test_pyramids_flash_and_csrf_keys_read_and_write_satchels_queues_and_token() -> None:
    app = _app(keys=_pyramid_keys, pop=_pop_pyramid_keys)
    assert app.get("/keys").json == [["hello"], True, True, False]
    assert app.get("/pop").json == [["written as a key"], ["appended"], [], True]


def _set_domain(session: Any) -> Any:
    session.domain = "example.com"


def test_setting_a_sessions_cookie_domain_names_the_setting_to_use() -> None:
    app = _app(domain=_set_domain)
    with pytest.raises(AttributeError, match=r"session\.cookie_domain"):
        app.get("/domain")


def test_constant_csrf_token_is_refused_with_the_reason() -> None:
    from satchel.config import parse_session_settings

    with pytest.raises(ConfigurationError, match="forge"):
        parse_session_settings({**BASE_SETTINGS, "session.constant_csrf_token": "abc"})
    parse_session_settings({**BASE_SETTINGS, "session.constant_csrf_token": "false"})
