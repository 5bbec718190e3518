"""Finding a store by name, by "package.module:Class", or through the satchel.stores entry points."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from satchel.clock import Clock, system_clock
from satchel.config import parse_session_settings
from satchel.config.coerce import as_str
from satchel.errors import ConfigurationError
from satchel.stores import open_store, store_class
from satchel.stores.memory import MemoryStore
from tests.support.apps import SECRET

HERE = "tests.unit.test_store_registry"


class LabelledStore(MemoryStore):
    """A store from outside satchel, with an option of its own."""

    name = "labelled"
    options = {"label": as_str}

    def __init__(self, label: str, *, clock: Clock = system_clock) -> None:
        super().__init__(clock=clock)
        self.label = label

    @classmethod
    def from_options(cls, options: Mapping[str, Any], *, clock: Clock = system_clock) -> LabelledStore:
        return cls(options.get("label", "none"), clock=clock)


class NotAStore:
    pass


def parse(**options: Any) -> Any:
    return parse_session_settings({"session.secret": SECRET, **{f"session.{k}": v for k, v in options.items()}})


def test_a_store_named_by_module_and_class_parses_its_own_options() -> None:
    parsed = parse(type=f"{HERE}:LabelledStore", label=" blue ")
    assert parsed.store.type == f"{HERE}:LabelledStore"
    assert parsed.store.cls is LabelledStore
    assert parsed.store.options == {"label": "blue"}
    store = open_store(parsed.store)
    assert isinstance(store, LabelledStore)
    assert store.label == "blue"
    assert store.save("k", b"v", None, None) is not None
    assert store.load("k") is not None


def test_the_store_gets_the_clock_it_is_opened_with() -> None:
    now = [1000.0]
    store = open_store(parse(type=f"{HERE}:LabelledStore").store, clock=lambda: now[0])
    store.save("k", b"v", 10, None)
    now[0] += 11
    assert store.load("k") is None


def test_beaker_and_satchel_names_find_the_built_in_stores() -> None:
    assert store_class("memory") is MemoryStore
    assert store_class("MEMORY") is MemoryStore
    assert store_class("satchel.stores.memory:MemoryStore") is MemoryStore


def write_distribution(root: Path, entry_points: str) -> None:
    info = root / "satchel_labelled-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: satchel-labelled\nVersion: 1.0\n", encoding="utf-8")
    (info / "entry_points.txt").write_text(entry_points, encoding="utf-8")


def test_an_installed_entry_point_names_a_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_distribution(tmp_path, f"[satchel.stores]\nlabelled = {HERE}:LabelledStore\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    parsed = parse(type="labelled", label="green")
    assert parsed.store.cls is LabelledStore
    assert open_store(parsed.store).label == "green"  # type: ignore[attr-defined]


def test_a_misspelt_entry_point_is_suggested(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_distribution(tmp_path, f"[satchel.stores]\nlabelled = {HERE}:LabelledStore\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigurationError, match="did you mean labelled"):
        parse(type="labeled")


def test_an_entry_point_that_is_not_a_store_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_distribution(tmp_path, f"[satchel.stores]\nlabelled = {HERE}:NotAStore\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigurationError, match=r"session.type = labelled is not a store class"):
        parse(type="labelled")


def test_an_unknown_store_suggests_the_nearest_name() -> None:
    with pytest.raises(ConfigurationError, match=r"session.type = memcahced is not a store.*did you mean memcached\?"):
        parse(type="memcahced")


@pytest.mark.parametrize(
    ("target", "words"),
    [
        (f"{HERE}:NotAStore", "is not a store class"),
        (f"{HERE}:Missing", "cannot import it"),
        ("satchel_no_such_module:Store", "cannot import it"),
        ("os.path:join", "is not a store class"),
        (":", "cannot import it"),
    ],
)
def test_a_module_and_class_that_is_no_store_is_refused(target: str, words: str) -> None:
    with pytest.raises(ConfigurationError, match=words):
        parse(type=target)


def test_a_setting_neither_the_session_nor_the_store_knows_suggests_the_stores() -> None:
    with pytest.raises(ConfigurationError, match=r"unknown setting session.lable; did you mean session.label\?"):
        parse(type=f"{HERE}:LabelledStore", lable="x")


def test_a_store_of_its_own_has_no_built_in_requirements() -> None:
    assert parse(type=f"{HERE}:LabelledStore").store.options == {}
