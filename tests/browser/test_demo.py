"""Headless Chromium clicks through the demo app served by waitress on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.browser import chromium, serve


@pytest.fixture(scope="module")
def demo_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from paste.deploy import appconfig

    from satchel.demo import main

    here = tmp_path_factory.mktemp("demo")
    ini = Path(__file__).resolve().parents[2] / "demo.ini"
    settings = dict(appconfig(f"config:{ini}", relative_to=str(ini.parent)))
    settings["session.data_dir"] = str(here / "data")
    settings["session.lock_dir"] = str(here / "lock")
    settings["demo.docs_dir"] = str(here / "docs")  # not built
    with serve(main({}, **settings)) as url:
        yield url


@pytest.fixture(scope="module")
def page(demo_url: str) -> Iterator[Any]:
    with chromium() as browser:
        yield browser.new_page()


def test_click_through_the_demo(page: Any, demo_url: str, tmp_path: Path) -> None:
    page.goto(demo_url + "/")
    assert page.text_content("#visits") == "1"
    page.reload()
    assert page.text_content("#visits") == "2"

    page.fill("input[name=user]", "ada")
    page.click("button:has-text('Log in')")
    assert page.text_content("#user") == "ada"
    assert "Welcome, ada!" in page.text_content(".flash")
    page.reload()
    assert page.query_selector(".flash") is None  # a flash is shown once

    page.fill("input[name=note]", "buy milk")
    page.click("button:has-text('Add note')")
    assert "Saved note: buy milk" in page.text_content(".flash")
    assert page.text_content("#notes") == "buy milk"

    page.goto(demo_url + "/cached")
    first = page.text_content("#computed")
    page.reload()
    assert page.text_content("#computed") == first  # served from the short_term region

    page.goto(demo_url + "/session")
    assert '"user": "ada"' in page.text_content("#state")

    page.goto(demo_url + "/")
    page.click("button:has-text('Log out')")
    assert "You are logged out." in page.text_content(".flash")
    assert page.query_selector("#user") is None
    page.screenshot(path=str(tmp_path / "demo.png"))


def test_forged_form_gets_a_clear_400(page: Any, demo_url: str) -> None:
    page.goto(demo_url + "/")
    page.eval_on_selector_all("input[name=csrf_token]", "els => els.forEach(el => el.value = 'forged')")
    page.fill("input[name=note]", "sneaky")
    with page.expect_response(lambda r: r.url.endswith("/notes")) as info:
        page.click("button:has-text('Add note')")
    assert info.value.status == 400
    assert "stale or forged" in page.content()


def test_home_page_is_a_tour_with_one_title(page: Any, demo_url: str) -> None:
    page.goto(demo_url + "/")
    assert page.title() == "satchel demo"
    tour = page.text_content(".tour")
    for feature in ("Counter", "Login", "Flash messages", "CSRF", "Cache", "Session inspector"):
        assert feature in tour
    assert page.get_attribute("a:has-text('Documentation')", "href") == "/docs/"


def test_login_page_is_a_styled_form(page: Any, demo_url: str) -> None:
    response = page.goto(demo_url + "/login")
    assert response.status == 200
    assert page.title() == "Login · satchel demo"
    assert page.query_selector("input[name=user]") is not None
    assert page.query_selector("header nav") is not None


def test_missing_page_and_unbuilt_docs_explain_themselves(page: Any, demo_url: str) -> None:
    assert page.goto(demo_url + "/nowhere").status == 404
    assert "Back to the tour" in page.text_content("body")
    assert page.goto(demo_url + "/docs/").status == 404
    assert "python3 dev.py docs" in page.text_content("body")
