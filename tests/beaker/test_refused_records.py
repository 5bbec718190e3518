"""Beaker records that are not plain data, or too old, give the visitor a fresh session."""

from __future__ import annotations

import json
import logging
import os
import pickle
import time
import uuid
from base64 import b64encode
from pathlib import Path
from typing import Any

import pytest
from webtest import TestApp

from satchel.testing import FakeClock
from tests.beaker.shop import SECRET, satchel_app
from tests.support.services import REDIS_URL, need_port


def _signed_cookie(beaker_id: str) -> str:
    import hashlib
    import hmac

    return hmac.new(SECRET.encode(), beaker_id.encode(), hashlib.sha1).hexdigest() + beaker_id


class RunsACommand:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def _session_value(session: Any) -> bytes:
    return b64encode(pickle.dumps(session, 2))


def _plant_file(data_dir: Path, beaker_id: str, session: Any) -> None:
    folder = data_dir / "container_file" / beaker_id[:1] / beaker_id[:2]
    folder.mkdir(parents=True)
    (folder / f"{beaker_id}.cache").write_bytes(pickle.dumps({"session": _session_value(session)}))


def _file_settings(tmp_path: Path) -> dict[str, Any]:
    return {
        "session.secret": SECRET,
        "session.key": "shop",
        "session.type": "file",
        "session.data_dir": str(tmp_path),
        "session.beaker_transition": "true",
    }


def _visit(app_settings: dict[str, Any], beaker_id: str, clock: FakeClock | None = None) -> TestApp:
    app = satchel_app(app_settings, clock=clock)
    app.set_cookie("shop", _signed_cookie(beaker_id))
    return app


def _replaced(app: TestApp) -> None:
    """What a browser does with the cookie a response replaced (WebTest files a cookie
    set by hand under another domain than one set by a response, and keeps both)."""
    app.cookiejar.clear(".localhost", "/", "shop")


def test_a_record_holding_code_is_refused_logged_and_replaced_by_a_fresh_session(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    marker = tmp_path / "ran"
    beaker_id = uuid.uuid4().hex
    _plant_file(tmp_path, beaker_id, {"user": "mallory", "x": RunsACommand(marker), "_creation_time": time.time()})
    app = _visit(_file_settings(tmp_path), beaker_id)
    with caplog.at_level(logging.WARNING, logger="satchel.security"):
        response = app.get("/page")
    assert json.loads(response.text)["user"] is None
    assert not marker.exists()
    assert any("Beaker session record refused" in r.getMessage() and "system" in r.getMessage() for r in caplog.records)
    fresh_cookie = response.headers["Set-Cookie"]
    assert fresh_cookie.startswith("shop=") and beaker_id not in fresh_cookie


def test_a_redis_record_holding_an_object_is_refused(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    need_port("127.0.0.1", 6379, "Redis")
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    beaker_id = uuid.uuid4().hex
    key = f"beaker_cache:{beaker_id}:session"
    client.set(key, pickle.dumps(RunsACommand(tmp_path / "ran")))
    try:
        settings = {**_file_settings(tmp_path), "session.type": "ext:redis", "session.url": REDIS_URL}
        app = _visit(settings, beaker_id)
        with caplog.at_level(logging.WARNING, logger="satchel.security"):
            assert json.loads(app.get("/page").text)["user"] is None
        assert not (tmp_path / "ran").exists()
        assert any("refused" in r.getMessage() for r in caplog.records)
    finally:
        client.delete(key)
        client.close()


def test_a_beaker_session_idle_past_the_timeout_is_not_revived_and_its_record_goes(tmp_path: Path) -> None:
    clock = FakeClock()
    beaker_id = uuid.uuid4().hex
    _plant_file(tmp_path, beaker_id, {"user": "alice", "_creation_time": clock(), "_accessed_time": clock()})
    clock.advance(1201)  # satchel's default idle timeout is 1200 s
    app = _visit(_file_settings(tmp_path), beaker_id, clock)
    assert json.loads(app.get("/page").text)["user"] is None
    assert not list((tmp_path / "container_file").rglob("*.cache"))


def test_a_beaker_session_within_the_timeout_keeps_its_creation_time(tmp_path: Path) -> None:
    clock = FakeClock()
    created = clock()
    beaker_id = uuid.uuid4().hex
    _plant_file(tmp_path, beaker_id, {"user": "alice", "_creation_time": created, "_accessed_time": created})
    clock.advance(600)
    app = _visit({**_file_settings(tmp_path), "session.absolute_timeout": "900"}, beaker_id, clock)
    assert json.loads(app.get("/page").text)["user"] == "alice"
    _replaced(app)
    assert json.loads(app.get("/page").text)["user"] == "alice"
    clock.advance(301)  # past the absolute timeout counted from Beaker's creation time
    assert json.loads(app.get("/page").text)["user"] is None


def test_a_visitor_whose_beaker_store_is_down_keeps_the_beaker_cookie(tmp_path: Path) -> None:
    beaker_id = uuid.uuid4().hex
    settings = {**_file_settings(tmp_path), "session.type": "ext:redis", "session.url": "redis://127.0.0.1:1/0"}
    settings["session.on_store_error"] = "fresh"
    app = _visit(settings, beaker_id)
    response = app.get("/page")
    assert json.loads(response.text)["user"] is None
    assert "Set-Cookie" not in response.headers


def test_a_request_still_carrying_the_converted_beaker_cookie_cannot_overtake_the_new_one(tmp_path: Path) -> None:
    clock = FakeClock()
    beaker_id = uuid.uuid4().hex
    _plant_file(tmp_path, beaker_id, {"user": "alice", "_creation_time": clock(), "_accessed_time": clock()})
    first = _visit(_file_settings(tmp_path), beaker_id, clock)
    assert json.loads(first.get("/page").text)["user"] == "alice"
    _replaced(first)

    # another tab's request, sent with the Beaker cookie before the new cookie arrived
    late = _visit(_file_settings(tmp_path), beaker_id, clock)
    response = late.get("/page")
    assert json.loads(response.text)["user"] is None
    assert "Set-Cookie" not in response.headers

    assert json.loads(first.get("/page").text)["user"] == "alice"
    clock.advance(61)  # the marker is gone: a stale Beaker cookie now just starts a new session
    assert "Set-Cookie" in late.get("/page").headers
