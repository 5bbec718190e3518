"""File store faults: a writer killed mid-write, a full disk, purging under load."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from satchel.errors import StoreError
from satchel.stores.file import FileStore
from satchel.testing import FakeClock

KEY = "k" * 64
WRITER = """
import sys
from satchel.stores.file import FileStore
store = FileStore(sys.argv[1])
key = sys.argv[2]
n = 0
while True:
    record = store.load(key)
    n += 1
    payload = (b"%08d" % n) * 250_000  # 2 MB: a write takes long enough to be interrupted
    store.save(key, payload, 600, record.version if record else None)
"""


def complete(data: bytes) -> bool:
    """A record written by WRITER: one 8-digit counter repeated, nothing cut off."""
    return len(data) == 2_000_000 and data == data[:8] * 250_000


def test_writer_killed_mid_write_leaves_a_complete_record(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "data")
    store.save(KEY, b"00000000" * 250_000, 600, None)
    for round_ in range(8):
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path / "data"), KEY])
        time.sleep(0.15 + 0.05 * round_)
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        record = store.load(KEY)
        assert record is not None
        assert complete(record.data), f"round {round_}: a torn record of {len(record.data)} bytes"
    # The killed writers' temporary files are not records and do not count.
    assert store.count() == 1


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount_point)], capture_output=True
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {result.stderr.decode().strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=False)


def test_full_disk_is_a_clear_error_and_keeps_the_old_record(tiny_disk: Path) -> None:
    store = FileStore(tiny_disk / "data", tiny_disk / "lock")
    store.save(KEY, b"precious", 600, None)
    before = store.load(KEY)
    assert before is not None
    with pytest.raises(StoreError, match="out of space"):
        store.save(KEY, b"x" * 1_000_000, 600, before.version)
    after = store.load(KEY)
    assert after is not None and after.data == b"precious"
    leftovers = [p for p in (tiny_disk / "data").rglob(".tmp-*")]
    assert leftovers == []


def test_purge_runs_while_requests_continue(tmp_path: Path, clock: FakeClock) -> None:
    store = FileStore(tmp_path / "data", clock=clock)
    for i in range(300):
        store.save(f"dead{i:04d}", b"x", 1, None)
    clock.advance(2)
    live_keys = [f"live{i:04d}" for i in range(16)]
    errors: list[BaseException] = []
    stop = threading.Event()

    def traffic(key: str) -> None:
        try:
            store.save(key, b"0", 600, None)
            while not stop.is_set():
                record = store.load(key)
                assert record is not None
                assert store.save(key, str(int(record.data) + 1).encode(), 600, record.version)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=traffic, args=(k,)) for k in live_keys]
    for thread in threads:
        thread.start()
    removed = store.purge_expired()
    stop.set()
    for thread in threads:
        thread.join()
    assert errors == []
    assert removed == 300
    assert store.count() == len(live_keys)
    assert all(store.load(k) is not None for k in live_keys)


def test_data_dir_on_a_read_only_path_is_a_clear_error(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        target = Path("/proc/satchel-cannot-be-here")
    else:
        target = tmp_path / "ro" / "data"
        (tmp_path / "ro").mkdir(mode=0o500)
    from satchel.errors import StoreUnavailable

    with pytest.raises(StoreUnavailable, match="cannot create"):
        FileStore(target)
    shutil.rmtree(tmp_path, ignore_errors=True)
