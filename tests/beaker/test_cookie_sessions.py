"""Beaker cookie sessions (``type = cookie``) under the transition: converted from
Beaker's JSON encoding, never unpickled."""

from __future__ import annotations

import hashlib
import hmac
import json
import pickle
from base64 import b64encode
from pathlib import Path
from typing import Any

from tests.beaker.conftest import COMMON
from tests.beaker.shop import SECRET, beaker_app, satchel_app, shop_visit

BEAKER_COOKIES = {**COMMON, "session.type": "cookie", "session.validate_key": SECRET}


def test_a_json_beaker_cookie_session_comes_back_logged_in() -> None:
    settings = {**BEAKER_COOKIES, "session.data_serializer": "json"}
    browser = beaker_app(settings)
    token = shop_visit(browser, "alice")
    after = satchel_app({**settings, "session.beaker_transition": "true"}, cookiejar=browser.cookiejar)
    response = after.get("/page")
    assert json.loads(response.text) == {
        "user": "alice",
        "cart": ["teapot", "kettle"],
        "flash": ["Welcome back, alice"],
        "cart_flash": ["teapot added", "kettle added"],
        "csrf": token,
    }
    assert "shop=" in response.headers["Set-Cookie"]


class RunsACommand:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (__import__("os").system, (f"touch {self.marker}",))


def test_a_pickled_beaker_cookie_session_is_never_unpickled(tmp_path: Path) -> None:
    payload = b64encode(pickle.dumps({"user": "mallory", "x": RunsACommand(tmp_path / "ran")}, 2)).decode()
    signature = hmac.new(SECRET.encode(), payload.encode(), hashlib.sha1).hexdigest()
    app = satchel_app({**BEAKER_COOKIES, "session.beaker_transition": "true"})
    app.set_cookie("shop", f'"{signature}{payload}"')
    assert json.loads(app.get("/page").text)["user"] is None
    assert not (tmp_path / "ran").exists()


def test_a_pickled_beaker_cookie_session_written_by_beaker_starts_afresh() -> None:
    browser = beaker_app(BEAKER_COOKIES)  # Beaker's default serializer: pickle
    shop_visit(browser, "alice")
    after = satchel_app({**BEAKER_COOKIES, "session.beaker_transition": "true"}, cookiejar=browser.cookiejar)
    assert json.loads(after.get("/page").text)["user"] is None
