"""The pyramid_beaker documentation's settings block, exactly as written, in an INI file."""

from __future__ import annotations

from pathlib import Path

import pytest
from webtest import TestApp

FIELD_BLOCK = """\
cache.regions = default_term, second, short_term, long_term
cache.type = memory
cache.second.expire = 1
cache.short_term.expire = 60
cache.default_term.expire = 300
cache.long_term.expire = 3600
session.type = memory            # or: file, with the two lines below
#session.data_dir = %(here)s/data/sessions/data
#session.lock_dir = %(here)s/data/sessions/lock
session.key = akhet_demo
session.secret = 0cb243f53ad865a0f70099c0414ffe9cfcfe03ac
"""


def write_ini(tmp_path: Path, block: str) -> Path:
    ini = tmp_path / "app.ini"
    ini.write_text(
        "[app:main]\nuse = call:satchel.demo:main\npyramid.includes =\n" + block,
        encoding="utf-8",
    )
    return ini


def load(ini: Path) -> TestApp:
    from paste.deploy import loadapp

    return TestApp(loadapp(f"config:{ini}"))


def strip_inline_comment(block: str) -> str:
    # INI files read by PasteDeploy keep "# ..." after a value as part of it; the
    # documented block puts a comment after "memory", so this checks both forms.
    return block.replace("            # or: file, with the two lines below", "")


@pytest.mark.parametrize("keep_inline_comment", [True, False])
def test_memory_block(tmp_path: Path, keep_inline_comment: bool) -> None:
    block = FIELD_BLOCK if keep_inline_comment else strip_inline_comment(FIELD_BLOCK)
    app = load(write_ini(tmp_path, block))
    res = app.get("/")
    assert "akhet_demo=" in res.headers["Set-Cookie"]
    assert 'id="visits">1<' in res.text
    assert 'id="visits">2<' in app.get("/").text


def test_file_block_with_data_and_lock_dir(tmp_path: Path) -> None:
    block = (
        strip_inline_comment(FIELD_BLOCK)
        .replace("session.type = memory", "session.type = file")
        .replace("#session.data_dir", "session.data_dir")
        .replace("#session.lock_dir", "session.lock_dir")
    )
    app = load(write_ini(tmp_path, block))
    app.get("/")
    assert 'id="visits">2<' in app.get("/").text
    data_files = [p for p in (tmp_path / "data/sessions/data").rglob("*") if p.is_file()]
    assert len(data_files) == 1
    assert (tmp_path / "data/sessions/lock").is_dir()


def test_pyramid_includes_line(tmp_path: Path) -> None:
    from pyramid.config import Configurator
    from pyramid.response import Response

    from tests.support.apps import SECRET

    settings = {"pyramid.includes": "satchel", "session.secret": SECRET, "session.key": "k"}
    with Configurator(settings=settings) as config:
        config.add_route("x", "/")

        def view(request: object) -> Response:
            request.session["n"] = 1  # type: ignore[attr-defined]
            return Response("ok")

        config.add_view(view, route_name="x")
        app = TestApp(config.make_wsgi_app())
    assert "k=" in app.get("/").headers["Set-Cookie"]
