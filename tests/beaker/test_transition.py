"""Switching a pyramid_beaker app to satchel with ``session.beaker_transition`` on:
visitors come back logged in, with their carts and pending messages."""

from __future__ import annotations

import json
from typing import Any

from tests.beaker.conftest import beaker_only, switched
from tests.beaker.shop import beaker_app, satchel_app, shop_visit


def test_visitors_of_the_beaker_app_come_back_logged_in_with_carts_and_messages(
    beaker_settings: dict[str, Any],
) -> None:
    before = beaker_app(beaker_only(beaker_settings))
    tokens = {user: shop_visit(before_app, user) for user, before_app in [("alice", before)]}
    other = beaker_app(beaker_only(beaker_settings))
    tokens["bob"] = shop_visit(other, "bob")

    for user, browser in (("alice", before), ("bob", other)):
        after = satchel_app(switched(beaker_settings), cookiejar=browser.cookiejar)
        shown = json.loads(after.get("/page").text)
        assert shown == {
            "user": user,
            "cart": ["teapot", "kettle"],
            "flash": [f"Welcome back, {user}"],
            "cart_flash": ["teapot added", "kettle added"],
            "csrf": tokens[user],
        }
        again = json.loads(after.get("/page").text)
        assert again["user"] == user and again["flash"] == [] and again["cart"] == ["teapot", "kettle"]


def _reader(settings: dict[str, Any]) -> Any:
    from satchel.beaker.readers import open_reader
    from satchel.config import parse_session_settings

    parsed = parse_session_settings(settings)
    assert parsed.beaker is not None
    return open_reader(parsed.store, parsed.beaker.type, parsed.beaker.table_name)


def _beaker_id(browser: Any) -> str:
    (cookie,) = [c for c in browser.cookiejar if c.name == "shop"]
    return str(cookie.value)[40:]


def test_beakers_record_is_deleted_once_the_session_is_stored_by_satchel(beaker_settings: dict[str, Any]) -> None:
    browser = beaker_app(beaker_only(beaker_settings))
    shop_visit(browser, "alice")
    beaker_id = _beaker_id(browser)
    reader = _reader(switched(beaker_settings))
    try:
        assert reader.load(beaker_id)["user"] == "alice"
        after = satchel_app(switched(beaker_settings), cookiejar=browser.cookiejar)
        response = after.get("/page")
        assert "shop=" in response.headers["Set-Cookie"]
        assert reader.load(beaker_id) is None
        assert not any(c.value.endswith(beaker_id) for c in browser.cookiejar)
    finally:
        reader.close()


def test_without_the_transition_a_beaker_visitor_starts_a_new_session(beaker_settings: dict[str, Any]) -> None:
    browser = beaker_app(beaker_only(beaker_settings))
    shop_visit(browser, "alice")
    settings = {k: v for k, v in switched(beaker_settings).items() if not k.startswith("session.beaker_")}
    after = satchel_app(settings, cookiejar=browser.cookiejar)
    assert json.loads(after.get("/page").text)["user"] is None
