"""A setting whose prefix is ``session.`` or ``cache.`` misspelled is reported at start-up."""

from __future__ import annotations

import logging

import pytest

from satchel.config import parse_session_settings
from satchel.config.names import misspelled_prefixes
from tests.support.apps import SECRET


@pytest.mark.parametrize(
    ("name", "meant"),
    [
        ("sesion.type", "session.type"),
        ("sessoin.type", "session.type"),
        ("sessions.key", "session.key"),
        ("Session.type", "session.type"),
        ("cahce.regions", "cache.regions"),
        ("caches.type", "cache.type"),
        ("beaker.sesion.type", "beaker.session.type"),
    ],
)
def test_misspelled_prefix_names_the_setting_meant(name: str, meant: str) -> None:
    assert misspelled_prefixes([name]) == [f"setting {name} is ignored: did you mean {meant}?"]


@pytest.mark.parametrize(
    "name",
    ["session.type", "cache.regions", "beaker.session.key", "version.major", "pyramid.includes", "sessionid"],
)
def test_other_settings_are_left_alone(name: str) -> None:
    assert misspelled_prefixes([name]) == []


def test_start_up_warns_instead_of_falling_back_silently(caplog: pytest.LogCaptureFixture) -> None:
    settings = {"session.secret": SECRET, "sesion.type": "file", "sesion.data_dir": "/tmp/x"}
    with caplog.at_level(logging.WARNING, logger="satchel"):
        config = parse_session_settings(settings)
    expected = [
        "setting sesion.data_dir is ignored: did you mean session.data_dir?",
        "setting sesion.type is ignored: did you mean session.type?",
    ]
    assert [w for w in config.warnings if "sesion" in w] == expected
    assert all(message in caplog.text for message in expected)
