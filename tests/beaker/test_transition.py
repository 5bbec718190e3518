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
