"""The store contract, as one test suite every store runs.

A store's test module subclasses :class:`StoreContract` and provides a ``store``
fixture that yields a fresh, empty store; everything else is shared.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections.abc import Callable

import pytest

from satchel.stores.base import Record, Store


def new_key() -> str:
    return secrets.token_hex(32)


def assert_fork_safe(store: Store, connections_made: Callable[[], int]) -> None:
    """A forked child uses ``store`` on connections of its own (``connections_made``
    counts the server's accepted connections), and the parent's stay in step."""
    key = new_key()
    assert store.save(key, b"parent", 60, None)  # leaves an idle connection
    before = connections_made()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            record = store.load(key)
            ok = record is not None and record.data == b"parent" and store.save(new_key(), b"child", 60, None)
            code = 0 if ok else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert connections_made() > before, "the child connected itself"
    record = store.load(key)  # the parent's connection is still open and in step
    assert record is not None and record.data == b"parent"
    assert store.save(key, b"parent again", 60, record.version) is not None


class StoreContract:
    #: Whether save answers the very version the next load reads (a classic memcached cas cannot tell it).
    tells_new_version = True
    #: True where the server expires records itself (purge_expired returns 0).
    server_expires = False
    #: Seconds to wait for a 1-second TTL to run out (memcached rounds up).
    expiry_wait = 1.3

    def test_save_gives_the_version_the_next_load_reads(self, store: Store) -> None:
        key = new_key()
        created = store.save(key, b"one", 60, None)
        assert created is not None
        loaded = store.load(key)
        assert loaded is not None
        if self.tells_new_version:
            assert created == loaded.version
        updated = store.save(key, b"two", 60, loaded.version)
        assert updated is not None and updated != loaded.version
        again = store.load(key)
        assert again is not None and again.data == b"two"
        if self.tells_new_version:
            assert again.version == updated
        assert store.save(key, b"stale", 60, loaded.version) is None
        assert store.save(key, b"three", 60, again.version) is not None

    def test_load_unknown_key_returns_none(self, store: Store) -> None:
        assert store.load(new_key()) is None

    def test_loading_unknown_key_creates_nothing(self, store: Store) -> None:
        key = new_key()
        store.load(key)
        before = store.count()
        store.load(key)
        assert store.load(key) is None
        assert store.count() == before
        # The key is still free: a create succeeds.
        assert store.save(key, b"x", 60, None) is not None

    def test_save_new_then_load(self, store: Store) -> None:
        key = new_key()
        assert store.save(key, b"hello", 60, None) is not None
        record = store.load(key)
        assert isinstance(record, Record)
        assert record.data == b"hello"

    def test_create_refused_when_record_exists(self, store: Store) -> None:
        key = new_key()
        assert store.save(key, b"first", 60, None) is not None
        assert store.save(key, b"second", 60, None) is None
        record = store.load(key)
        assert record is not None and record.data == b"first"

    def test_conditional_update(self, store: Store) -> None:
        key = new_key()
        store.save(key, b"v1", 60, None)
        first = store.load(key)
        assert first is not None
        assert store.save(key, b"v2", 60, first.version) is not None
        second = store.load(key)
        assert second is not None
        assert second.data == b"v2"
        assert second.version != first.version

    def test_stale_version_is_a_conflict(self, store: Store) -> None:
        key = new_key()
        store.save(key, b"v1", 60, None)
        stale = store.load(key)
        assert stale is not None
        assert store.save(key, b"v2", 60, stale.version) is not None
        assert store.save(key, b"lost", 60, stale.version) is None
        record = store.load(key)
        assert record is not None and record.data == b"v2"

    def test_same_bytes_written_again_still_change_version(self, store: Store) -> None:
        key = new_key()
        store.save(key, b"same", 60, None)
        first = store.load(key)
        assert first is not None
        assert store.save(key, b"same", 60, first.version) is not None
        assert store.save(key, b"same", 60, first.version) is None

    def test_save_does_not_resurrect_deleted_record(self, store: Store) -> None:
        key = new_key()
        store.save(key, b"alive", 60, None)
        loaded = store.load(key)
        assert loaded is not None
        store.delete(key)
        assert store.save(key, b"zombie", 60, loaded.version) is None
        assert store.load(key) is None

    def test_delete_missing_is_not_an_error(self, store: Store) -> None:
        store.delete(new_key())

    def test_binary_and_large_values_round_trip(self, store: Store) -> None:
        key = new_key()
        data = bytes(range(256)) * 400  # 100 KiB, every byte value
        assert store.save(key, data, 60, None) is not None
        record = store.load(key)
        assert record is not None and record.data == data

    def test_record_expires_after_ttl(self, store: Store) -> None:
        key = new_key()
        store.save(key, b"short", 1, None)
        assert store.load(key) is not None
        time.sleep(self.expiry_wait + 0.8)
        assert store.load(key) is None
        # An expired record is as good as absent: a create succeeds.
        assert store.save(key, b"again", 60, None) is not None

    def test_touch_extends_expiry(self, store: Store) -> None:
        key = new_key()
        store.save(key, b"kept", 1, None)
        assert store.touch(key, 60) is True
        time.sleep(self.expiry_wait + 0.8)
        record = store.load(key)
        assert record is not None and record.data == b"kept"

    def test_touch_does_not_change_version(self, store: Store) -> None:
        key = new_key()
        store.save(key, b"kept", 60, None)
        before = store.load(key)
        assert before is not None
        store.touch(key, 120)
        assert store.save(key, b"next", 60, before.version) is not None

    def test_touch_missing_returns_false(self, store: Store) -> None:
        key = new_key()
        assert store.touch(key, 60) is False
        assert store.load(key) is None

    def test_no_ttl_keeps_record(self, store: Store) -> None:
        key = new_key()
        store.save(key, b"forever", None, None)
        record = store.load(key)
        assert record is not None and record.data == b"forever"

    def test_purge_expired_removes_only_expired(self, store: Store) -> None:
        live, dead = new_key(), new_key()
        store.save(live, b"live", 60, None)
        store.save(dead, b"dead", 1, None)
        time.sleep(self.expiry_wait + 0.8)
        removed = store.purge_expired()
        if self.server_expires:
            assert removed == 0
        else:
            assert removed >= 1
        assert store.load(dead) is None
        record = store.load(live)
        assert record is not None and record.data == b"live"

    def test_invalid_key_is_refused(self, store: Store) -> None:
        with pytest.raises(ValueError):
            store.save("../../etc/passwd", b"x", 60, None)

    def test_concurrent_conditional_writes_lose_nothing(self, store: Store) -> None:
        """Eight threads increment one counter through load + conditional save."""
        key = new_key()
        store.save(key, b"0", 60, None)
        per_thread, threads = 25, 8
        errors: list[BaseException] = []

        def work() -> None:
            try:
                for _ in range(per_thread):
                    while True:
                        record = store.load(key)
                        assert record is not None
                        if store.save(key, str(int(record.data) + 1).encode(), 60, record.version):
                            break
            except BaseException as exc:
                errors.append(exc)

        workers = [threading.Thread(target=work) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        assert not errors
        record = store.load(key)
        assert record is not None and int(record.data) == per_thread * threads
