"""``satchel migrate beaker``: a whole Beaker store converted ahead of the switch."""

from __future__ import annotations

import json
import pickle
import uuid
from base64 import b64encode
from pathlib import Path
from typing import Any

import pytest
from beaker.session import Session as BeakerSession

from satchel.cli import main
from tests.beaker.shop import SECRET, beaker_app, satchel_app, shop_visit

SESSIONS = 10_000


def _ini(tmp_path: Path, transition: bool = True) -> Path:
    ini = tmp_path / "app.ini"
    ini.write_text(
        f"""[app:main]
use = egg:shop
session.type = file
session.data_dir = {tmp_path}/sessions
session.lock_dir = {tmp_path}/locks
session.key = shop
session.secret = {SECRET}
{"session.beaker_transition = true" if transition else ""}
"""
    )
    return ini


def _beaker_writes(tmp_path: Path, count: int) -> None:
    """Sessions written by Beaker itself, as pyramid_beaker would have."""
    for n in range(count):
        session = BeakerSession(
            {}, type="file", data_dir=f"{tmp_path}/sessions", lock_dir=f"{tmp_path}/locks", key="shop", secret=SECRET
        )
        session["user"] = f"user{n}"
        session["_f_"] = ["welcome"]
        session.save()


def _plant_unsafe(tmp_path: Path) -> str:
    beaker_id = uuid.uuid4().hex
    folder = tmp_path / "sessions" / "container_file" / beaker_id[:1] / beaker_id[:2]
    folder.mkdir(parents=True, exist_ok=True)
    crafted = b"\x80\x02cposix\nsystem\nX\x04\x00\x00\x00trueR."
    (folder / f"{beaker_id}.cache").write_bytes(pickle.dumps({"session": b64encode(crafted)}))
    return beaker_id


def _satchel_records(tmp_path: Path) -> int:
    return sum(1 for p in (tmp_path / "sessions").glob("[0-9a-f][0-9a-f]/*") if p.is_file())


def test_a_store_of_ten_thousand_beaker_sessions_is_converted_and_counted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _beaker_writes(tmp_path, SESSIONS)
    unsafe = _plant_unsafe(tmp_path)
    ini = _ini(tmp_path)

    assert main(["migrate", "beaker", str(ini), "--dry-run"]) == 0
    assert capsys.readouterr().out.strip() == f"would convert {SESSIONS}, skipped 0, refused 1"
    assert _satchel_records(tmp_path) == 0

    assert main(["migrate", "beaker", str(ini)]) == 0
    assert capsys.readouterr().out.strip() == f"converted {SESSIONS}, skipped 0, refused 1"
    assert main(["sessions", "count", str(ini)]) == 0
    assert capsys.readouterr().out.strip() == str(SESSIONS)

    assert main(["migrate", "beaker", str(ini)]) == 0
    assert capsys.readouterr().out.strip() == f"converted 0, skipped {SESSIONS}, refused 1"
    assert (tmp_path / "sessions" / "container_file" / unsafe[:1] / unsafe[:2] / f"{unsafe}.cache").exists()


def test_a_migrated_session_is_adopted_when_its_visitor_comes_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ini = _ini(tmp_path)
    settings: dict[str, Any] = {
        "session.type": "file",
        "session.data_dir": f"{tmp_path}/sessions",
        "session.lock_dir": f"{tmp_path}/locks",
        "session.key": "shop",
        "session.secret": SECRET,
    }
    browser = beaker_app(settings)
    token = shop_visit(browser, "alice")
    assert main(["migrate", "beaker", str(ini), "--delete-beaker"]) == 0
    assert capsys.readouterr().out.strip() == "converted 1, skipped 0, refused 0"
    assert not list((tmp_path / "sessions" / "container_file").rglob("*.cache"))

    after = satchel_app({**settings, "session.beaker_transition": "true"}, cookiejar=browser.cookiejar)
    shown = json.loads(after.get("/page").text)
    assert (shown["user"], shown["cart"], shown["flash"], shown["csrf"]) == (
        "alice",
        ["teapot", "kettle"],
        ["Welcome back, alice"],
        token,
    )
    assert main(["sessions", "count", str(ini)]) == 0
    assert capsys.readouterr().out.strip() == "2"  # the session, and for a minute the marker of its conversion


def test_migrating_needs_the_transition_mode_that_adopts_the_sessions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "sessions").mkdir()
    assert main(["migrate", "beaker", str(_ini(tmp_path, transition=False))]) == 1
    assert "session.beaker_transition = true" in capsys.readouterr().err


def test_each_listable_beaker_store_is_migrated_and_adopted(
    beaker_settings: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.beaker.conftest import beaker_only, switched

    browser = beaker_app(beaker_only(beaker_settings))
    shop_visit(browser, "alice")
    ini = tmp_path / "switched.ini"
    lines = "\n".join(f"{k} = {v}" for k, v in switched(beaker_settings).items())
    ini.write_text(f"[app:main]\n{lines}\n")
    if beaker_settings["session.type"] == "ext:memcached":
        assert main(["migrate", "beaker", str(ini)]) == 1
        assert "cannot be listed" in capsys.readouterr().err
        return
    if beaker_settings["session.type"] == "ext:database":
        satchel_app(switched(beaker_settings))  # the app's first start creates satchel's table
    assert main(["migrate", "beaker", str(ini), "--delete-beaker"]) == 0
    converted = capsys.readouterr().out.strip()
    assert converted.startswith("converted ") and converted.endswith(", refused 0")
    assert int(converted.split()[1].rstrip(",")) >= 1  # Redis db 15 may hold others' Beaker sessions too
    after = satchel_app(switched(beaker_settings), cookiejar=browser.cookiejar)
    assert json.loads(after.get("/page").text)["user"] == "alice"
