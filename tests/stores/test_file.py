from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from satchel.stores.file import STALE_TEMP_SECONDS, FileStore
from satchel.testing import FakeClock, StoreContract, new_key


class TestFileStore(StoreContract):
    uses_clock = True

    @pytest.fixture
    def store(self, tmp_path: Path, clock: FakeClock) -> Iterator[FileStore]:
        store = FileStore(tmp_path / "data", tmp_path / "lock", clock=clock)
        yield store
        store.close()

    @pytest.fixture
    def foreign_record(self, tmp_path: Path) -> Callable[[], bool]:
        """A file of somebody else's under data_dir, last modified long ago."""
        foreign = tmp_path / "data" / "uploads" / "report.pdf"
        foreign.parent.mkdir(parents=True)
        foreign.write_bytes(b"not a session")
        os.utime(foreign, (0, 0))
        return foreign.exists



def test_keys_cannot_escape_data_dir(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "data")
    for key in ("..", ".hidden", "a/b", "../x", "", "a" * 300):
        with pytest.raises(ValueError):
            store.save(key, b"x", 60, None)
    assert not (tmp_path / "x").exists()


def test_locking_leaves_no_file_per_session(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "data", tmp_path / "lock")
    for _ in range(200):
        store.save(new_key(), b"x", 60, None)
    assert len(os.listdir(tmp_path / "lock")) <= 64


def test_stale_temp_files_are_purged(tmp_path: Path) -> None:
    # The file's change time cannot be set back, so the clock starts at the real time.
    clock = FakeClock(time.time())
    store = FileStore(tmp_path / "data", clock=clock)
    key = new_key()
    store.save(key, b"x", None, None)
    shard = next(p for p in (tmp_path / "data").iterdir() if not p.name.startswith("."))
    leftover = shard / ".tmp-leftover"
    leftover.write_bytes(b"half a rec")
    # Young, it may be a write in progress; old, it is a killed writer's. Either way
    # it is not a record: purging does not count it.
    assert store.purge_expired() == 0
    assert leftover.exists()
    clock.advance(STALE_TEMP_SECONDS + 1)
    assert store.purge_expired() == 0
    assert not leftover.exists()
    assert store.load(key) is not None


def test_a_damaged_record_loads_as_undecodable_bytes(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "data")
    key = new_key()
    store.save(key, b"good", 60, None)
    path = store._path(key)
    path.write_bytes(b"garbage without header")
    os.utime(path, (time.time() + 60, time.time() + 60))
    record = store.load(key)
    assert record is not None and record.data == b"garbage without header"
    assert store.save(key, b"new", 60, record.version) is not None


def test_longest_keys_can_be_written(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "data")
    key = "k" * 250
    assert store.save(key, b"x", 60, None)
    record = store.load(key)
    assert record is not None and record.data == b"x"


def test_data_dir_removed_under_the_store_is_recreated(tmp_path: Path) -> None:
    import shutil

    store = FileStore(tmp_path / "data", tmp_path / "lock")
    shutil.rmtree(tmp_path / "data")
    assert store.save(new_key(), b"x", 60, None)


def test_os_errors_become_store_errors(tmp_path: Path) -> None:
    from satchel.errors import StoreError

    store = FileStore(tmp_path / "data")
    key = new_key()
    store._path(key).mkdir(parents=True)  # a directory where the record should be
    with pytest.raises(StoreError):
        store.delete(key)


def test_purge_removes_only_the_stores_own_records(tmp_path: Path) -> None:
    """data_dir pointed at an application's folder, with Beaker's old files in it too."""
    clock = FakeClock()
    data = tmp_path / "app"
    store = FileStore(data, clock=clock)
    key = "a" * 64
    store.save(key, b"expiring", 1, None)
    photo = data / "uploads" / "photo.jpg"
    beaker = data / "container_file" / "a" / "ab" / "abcdef.cache"
    lookalike = data / "ab" / "notes.txt"
    for path in (photo, beaker, lookalike):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"not a session")
        os.utime(path, (0, 0))
    clock.advance(10)
    assert store.purge_expired() == 1
    assert photo.exists() and beaker.exists() and lookalike.exists()
    assert store.count() == 0


def test_a_file_named_like_a_record_but_without_its_header_is_left_alone(tmp_path: Path) -> None:
    clock = FakeClock()
    store = FileStore(tmp_path / "d", clock=clock)
    key = "c" * 64
    store.save(key, b"x", 1, None)
    path = store._path(key)
    path.write_bytes(b"somebody else's")
    os.utime(path, (0, 0))
    clock.advance(10)
    assert store.purge_expired() == 0
    assert path.read_bytes() == b"somebody else's"


def test_the_store_survives_its_directories_being_removed(tmp_path: Path) -> None:
    data = tmp_path / "data"
    store = FileStore(data)  # lock_dir defaults to data/.locks: removed with it
    key = "d" * 64
    assert store.save(key, b"before", 60, None) is not None
    shutil.rmtree(data)
    assert store.load(key) is None
    version = store.save(key, b"after", 60, None)
    assert version is not None
    record = store.load(key)
    assert record is not None and record.data == b"after"
    assert store.touch(key, 60) and store.count() == 1
