"""Headless Chromium logs in on the pyramid_beaker shop, and comes back to it switched to satchel."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.beaker.conftest import COMMON
from tests.beaker.shop import beaker_app, satchel_app
from tests.support.browser import chromium, serve


def test_a_browser_logged_in_on_beaker_is_still_logged_in_after_the_switch(tmp_path: Path) -> None:
    settings: dict[str, Any] = {
        **COMMON,
        "session.type": "file",
        "session.data_dir": str(tmp_path / "sessions"),
        "session.lock_dir": str(tmp_path / "locks"),
    }
    with chromium() as browser:
        page = browser.new_page()
        with serve(beaker_app(settings).app) as url:
            page.goto(url + "/login?user=ada")
            page.goto(url + "/add?item=teapot")
            token = page.goto(url + "/token").text()
        # Cookies are not per port: the new server on another port gets the same cookie.
        with serve(satchel_app({**settings, "session.beaker_transition": "true"}).app) as url:
            shown = json.loads(page.goto(url + "/page").text())
            assert shown == {
                "user": "ada",
                "cart": ["teapot"],
                "flash": ["Welcome back, ada"],
                "cart_flash": ["teapot added"],
                "csrf": token,
            }
            cookie = next(c for c in page.context.cookies() if c["name"] == "shop")
            assert "." in cookie["value"]  # satchel's id.signature, no longer Beaker's
            assert json.loads(page.goto(url + "/page").text())["user"] == "ada"
