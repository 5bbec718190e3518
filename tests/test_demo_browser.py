"""Headless Chromium clicks through the demo app served by waitress on loopback."""

from __future__ import annotations

import os
import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from services import need

CHROMIUM = os.environ.get("SATCHEL_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def demo_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from paste.deploy import appconfig
    from waitress.server import create_server

    from satchel_demo import main

    here = tmp_path_factory.mktemp("demo")
    ini = Path(__file__).resolve().parent.parent / "demo.ini"
    settings = dict(appconfig(f"config:{ini}", relative_to=str(ini.parent)))
    settings["session.data_dir"] = str(here / "data")
    settings["session.lock_dir"] = str(here / "lock")
    app = main({}, **settings)
    port = free_port()
    server = create_server(app, host="127.0.0.1", port=port, threads=4)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        thread.join(timeout=5)


@pytest.fixture(scope="module")
def page(demo_url: str) -> Iterator[Any]:
    need(shutil.which(CHROMIUM) is not None or Path(CHROMIUM).exists(), f"Chromium at {CHROMIUM}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        need(False, "Playwright for Python")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser.new_page()
        finally:
            browser.close()


def test_click_through_the_demo(page: Any, demo_url: str, tmp_path: Path) -> None:
    page.goto(demo_url + "/")
    assert page.text_content("#visits") == "1"
    page.reload()
    assert page.text_content("#visits") == "2"

    page.fill("input[name=user]", "ada")
    page.click("text=Log in")
    assert page.text_content("#user") == "ada"
    assert "Welcome, ada!" in page.text_content(".flash")
    page.reload()
    assert page.query_selector(".flash") is None  # a flash is shown once

    page.fill("input[name=note]", "buy milk")
    page.click("text=Add note")
    assert "Saved note: buy milk" in page.text_content(".flash")
    assert page.text_content("#notes") == "buy milk"

    page.goto(demo_url + "/cached")
    first = page.text_content("#computed")
    page.reload()
    assert page.text_content("#computed") == first  # served from the short_term region

    page.goto(demo_url + "/session")
    assert '"user": "ada"' in page.text_content("#state")

    page.goto(demo_url + "/")
    page.click("text=Log out")
    assert "You are logged out." in page.text_content(".flash")
    assert page.query_selector("#user") is None
    page.screenshot(path=str(tmp_path / "demo.png"))


def test_forged_form_gets_a_clear_400(page: Any, demo_url: str) -> None:
    page.goto(demo_url + "/")
    page.eval_on_selector_all("input[name=csrf_token]", "els => els.forEach(el => el.value = 'forged')")
    page.fill("input[name=note]", "sneaky")
    with page.expect_response(lambda r: r.url.endswith("/notes")) as info:
        page.click("text=Add note")
    assert info.value.status == 400
    assert "stale or forged" in page.content()
