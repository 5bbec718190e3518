"""Headless Chromium: the Pyramid demo (waitress) and its ASGI twin (uvicorn) on
loopback show one visitor one session."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.browser import chromium, free_port, serve


@pytest.fixture(scope="module")
def demo_urls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    import uvicorn
    from paste.deploy import appconfig

    from satchel.demo import main
    from satchel.demo.asgi import create_app

    here = tmp_path_factory.mktemp("demo")
    ini = Path(__file__).resolve().parents[2] / "demo.ini"
    settings = dict(appconfig(f"config:{ini}", relative_to=str(ini.parent)))
    settings["session.data_dir"] = str(here / "data")
    settings["session.lock_dir"] = str(here / "lock")
    port = free_port()
    twin = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=twin.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not twin.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert twin.started, "the ASGI twin did not start"
    try:
        with serve(main({}, **settings)) as pyramid_url:
            yield pyramid_url, f"http://127.0.0.1:{port}"
    finally:
        twin.should_exit = True
        thread.join(timeout=10)


def test_pyramid_login_and_asgi_note_are_one_session(demo_urls: tuple[str, str], tmp_path: Path) -> None:
    pyramid, asgi = demo_urls
    with chromium() as browser:
        page = browser.new_page()
        page.goto(pyramid + "/")
        page.fill("input[name=user]", "ada")
        page.click("button:has-text('Log in')")
        assert page.text_content("#user") == "ada"

        page.goto(asgi + "/")  # cookies belong to the host, whatever the port
        assert page.text_content("#user") == "ada"
        assert page.text_content("#visits") == "2"
        page.fill("input[name=note]", "from the twin")
        page.click("button:has-text('Add note')")
        assert "Saved note from ASGI: from the twin" in page.text_content(".flash")
        assert page.text_content("#notes") == "from the twin"

        page.goto(pyramid + "/")
        assert page.text_content("#notes") == "from the twin"
        assert page.query_selector(".flash") is None  # shown once, by the twin
        page.click("button:has-text('Log out')")
        page.goto(asgi + "/")
        assert page.query_selector("#user") is None
        page.screenshot(path=str(tmp_path / "twin.png"))
