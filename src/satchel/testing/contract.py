"""The store contract as one pytest suite that every store runs.

A store's test module subclasses :class:`StoreContract` and provides a ``store``
fixture that yields a fresh, empty store; every test is shared::

    class TestMyStore(StoreContract):
        uses_clock = True

        @pytest.fixture
        def store(self, clock):
            store = MyStore(clock=clock)
            yield store
            store.close()

An async store subclasses :class:`AsyncStoreContract` and provides an
``async_store`` fixture instead: the same test bodies drive it through
:class:`~satchel.testing.facade.BlockingStore`.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from ..stores.base import Record
from .clock import FakeClock
from .facade import AsyncStore, BlockingStore, SyncStore

#: Added to :attr:`StoreContract.expiry_wait` when a test really waits: room for
#: a loaded machine between the write and the check.
EXPIRY_MARGIN = 0.8

#: Keys every store refuses: empty, too long, outside the alphabet (path
#: separators, whitespace, a line break, non-ASCII).
INVALID_KEYS = ("", "k" * 251, "../../etc/passwd", "a/b", "a b", "key\n", "schlüssel")

#: A check that something the store did not write is still where it was put.
StillThere = Callable[[], bool]


def new_key() -> str:
    """A fresh key of the shape the session policy uses (hex SHA-256)."""
    return secrets.token_hex(32)


def assert_fork_safe(store: SyncStore, connections_made: Callable[[], int]) -> None:
    """A forked child uses ``store`` on connections of its own, and the parent's
    stay in step. ``connections_made`` counts the connections the server accepted
    so far (Redis: ``INFO stats``; memcached: ``stats``)."""
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
    assert os.waitstatus_to_exitcode(status) == 0, "the child could not use the store"
    assert connections_made() > before, "the child connected itself"
    record = store.load(key)  # the parent's connection is still open and in step
    assert record is not None and record.data == b"parent"
    assert store.save(key, b"parent again", 60, record.version) is not None


class StoreContract:
    """The store contract (:mod:`satchel.stores.base`) as tests.

    Subclasses (or their module) provide a ``store`` fixture yielding a fresh,
    empty store, and set the class attributes below to say how the store keeps
    time. The class has no ``store`` fixture of its own, so that one defined at
    module level in the test file is found.
    """

    #: Whether ``save`` answers the very version the next ``load`` reads (a
    #: memcached ``cas`` reply cannot tell it). Either way, a version ``save``
    #: answered must be safe to pass as the next ``expected_version``.
    tells_new_version = True
    #: The server expires records itself: expiry is checked by waiting for a real
    #: 1-second TTL to run out (once), and ``purge_expired`` must answer 0.
    server_expires = False
    #: The store reads the time only from the ``clock`` fixture (a
    #: :class:`FakeClock`): the expiry tests move it instead of sleeping.
    uses_clock = False
    #: Seconds within which the store surely drops a record written with a
    #: 1-second TTL (memcached's clock ticks in whole seconds). Only stores that do
    #: not use the clock wait, once, this long plus :data:`EXPIRY_MARGIN`.
    expiry_wait = 1.3

    # -- fixtures -------------------------------------------------------------------

    @pytest.fixture
    def clock(self) -> FakeClock:
        """The time a store with ``uses_clock = True`` must read."""
        return FakeClock()

    @pytest.fixture
    def foreign_record(self, store: SyncStore) -> StillThere | None:
        """Override to put something the store did not write where it keeps its
        records (a file beside them, a key outside its prefix, a row of another
        table), as stale as can be, and return a check that it is still there.
        ``None`` (the default): the store has no such place to share."""
        return None

    # -- versions and conditional writes ----------------------------------------------

    def test_save_gives_the_version_the_next_load_reads(self, store: SyncStore) -> None:
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

    def test_version_from_save_never_overwrites_another_writer(self, store: SyncStore) -> None:
        key = new_key()
        mine = store.save(key, b"mine", 60, None)
        assert mine is not None
        theirs = store.load(key)
        assert theirs is not None
        assert store.save(key, b"theirs", 60, theirs.version) is not None
        assert store.save(key, b"mine again", 60, mine) is None
        record = store.load(key)
        assert record is not None and record.data == b"theirs"

    def test_version_from_save_is_usable_for_the_next_save(self, store: SyncStore) -> None:
        key = new_key()
        created = store.save(key, b"one", 60, None)
        assert created is not None
        following = store.save(key, b"two", 60, created)
        record = store.load(key)
        assert record is not None
        if self.tells_new_version:
            assert following is not None and record.data == b"two"
        else:
            # A store that cannot name the new version may refuse; then nothing was written.
            assert record.data == (b"one" if following is None else b"two")

    def test_save_new_then_load(self, store: SyncStore) -> None:
        key = new_key()
        assert store.save(key, b"hello", 60, None) is not None
        record = store.load(key)
        assert isinstance(record, Record)
        assert record.data == b"hello"

    def test_create_refused_when_record_exists(self, store: SyncStore) -> None:
        key = new_key()
        assert store.save(key, b"first", 60, None) is not None
        assert store.save(key, b"second", 60, None) is None
        record = store.load(key)
        assert record is not None and record.data == b"first"

    def test_conditional_update(self, store: SyncStore) -> None:
        key = new_key()
        store.save(key, b"v1", 60, None)
        first = store.load(key)
        assert first is not None
        assert store.save(key, b"v2", 60, first.version) is not None
        second = store.load(key)
        assert second is not None
        assert second.data == b"v2"
        assert second.version != first.version

    def test_stale_version_is_a_conflict(self, store: SyncStore) -> None:
        key = new_key()
        store.save(key, b"v1", 60, None)
        stale = store.load(key)
        assert stale is not None
        assert store.save(key, b"v2", 60, stale.version) is not None
        assert store.save(key, b"lost", 60, stale.version) is None
        record = store.load(key)
        assert record is not None and record.data == b"v2"

    def test_same_bytes_written_again_still_change_version(self, store: SyncStore) -> None:
        key = new_key()
        store.save(key, b"same", 60, None)
        first = store.load(key)
        assert first is not None
        assert store.save(key, b"same", 60, first.version) is not None
        assert store.save(key, b"same", 60, first.version) is None

    def test_concurrent_conditional_writes_lose_nothing(self, store: SyncStore) -> None:
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
            except BaseException as exc:  # noqa: BLE001 - reported by the test thread below
                errors.append(exc)

        workers = [threading.Thread(target=work) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        assert not errors
        record = store.load(key)
        assert record is not None and int(record.data) == per_thread * threads

    # -- loading, deleting, counting --------------------------------------------------

    def test_load_unknown_key_returns_none(self, store: SyncStore) -> None:
        assert store.load(new_key()) is None

    def test_loading_unknown_key_creates_nothing(self, store: SyncStore) -> None:
        key = new_key()
        store.load(key)
        before = store.count()
        store.load(key)
        assert store.load(key) is None
        assert store.count() == before
        # The key is still free: a create succeeds.
        assert store.save(key, b"x", 60, None) is not None

    def test_save_does_not_resurrect_deleted_record(self, store: SyncStore) -> None:
        key = new_key()
        store.save(key, b"alive", 60, None)
        loaded = store.load(key)
        assert loaded is not None
        store.delete(key)
        assert store.save(key, b"zombie", 60, loaded.version) is None
        assert store.load(key) is None

    def test_delete_missing_is_not_an_error(self, store: SyncStore) -> None:
        store.delete(new_key())

    def test_count_follows_creates_and_deletes(self, store: SyncStore) -> None:
        before = store.count()
        first, second = new_key(), new_key()
        store.save(first, b"1", 60, None)
        store.save(second, b"2", 60, None)
        if before is None:
            assert store.count() is None
            return
        assert store.count() == before + 2
        store.delete(first)
        assert store.count() == before + 1

    def test_binary_and_large_values_round_trip(self, store: SyncStore) -> None:
        key = new_key()
        data = bytes(range(256)) * 400  # 100 KiB, every byte value
        assert store.save(key, data, 60, None) is not None
        record = store.load(key)
        assert record is not None and record.data == data

    def test_empty_value_round_trips(self, store: SyncStore) -> None:
        key = new_key()
        assert store.save(key, b"", 60, None) is not None
        record = store.load(key)
        assert record is not None and record.data == b""

    @pytest.mark.parametrize("key", INVALID_KEYS, ids=repr)
    def test_invalid_key_is_refused(self, store: SyncStore, key: str) -> None:
        with pytest.raises(ValueError):
            store.save(key, b"x", 60, None)

    def test_longest_valid_key_is_accepted(self, store: SyncStore) -> None:
        key = "k" * 250
        assert store.save(key, b"x", 60, None) is not None
        record = store.load(key)
        assert record is not None and record.data == b"x"

    # -- expiry -----------------------------------------------------------------------

    def test_touch_does_not_change_version(self, store: SyncStore) -> None:
        key = new_key()
        store.save(key, b"kept", 60, None)
        before = store.load(key)
        assert before is not None
        assert store.touch(key, 120) is True
        assert store.save(key, b"next", 60, before.version) is not None

    def test_touch_missing_returns_false(self, store: SyncStore) -> None:
        key = new_key()
        assert store.touch(key, 60) is False
        assert store.load(key) is None

    def test_records_expire_in_real_time(self, store: SyncStore) -> None:
        """One real wait covers expiry, touch and purge for a store off the clock."""
        if self.uses_clock:
            pytest.skip("the store reads the FakeClock: the clock tests cover expiry without waiting")
        gone, touched, live = new_key(), new_key(), new_key()
        store.save(gone, b"short", 1, None)
        store.save(touched, b"kept", 1, None)
        store.save(live, b"live", 60, None)
        assert store.touch(touched, 60) is True
        assert store.load(gone) is not None
        time.sleep(self.expiry_wait + EXPIRY_MARGIN)
        assert store.load(gone) is None
        assert store.touch(gone, 60) is False, "touch brought an expired record back"
        record = store.load(touched)
        assert record is not None and record.data == b"kept"
        removed = store.purge_expired()
        assert removed == 0 if self.server_expires else removed >= 1
        record = store.load(live)
        assert record is not None and record.data == b"live"
        # An expired record is as good as absent: a create succeeds.
        assert store.save(gone, b"again", 60, None) is not None

    def test_record_expires_once_its_ttl_has_passed(self, store: SyncStore, clock: FakeClock) -> None:
        self.need_clock()
        key = new_key()
        store.save(key, b"short", 60, None)
        clock.advance(59)
        assert store.load(key) is not None
        clock.advance(2)
        assert store.load(key) is None
        # An expired record is as good as absent: a create succeeds.
        assert store.save(key, b"again", 60, None) is not None

    def test_touch_restarts_the_ttl_from_now(self, store: SyncStore, clock: FakeClock) -> None:
        self.need_clock()
        key = new_key()
        store.save(key, b"kept", 60, None)
        clock.advance(50)
        assert store.touch(key, 60) is True
        clock.advance(50)  # past the first TTL
        record = store.load(key)
        assert record is not None and record.data == b"kept"
        clock.advance(11)  # past the touched one
        assert store.load(key) is None

    def test_touch_does_not_bring_back_an_expired_record(self, store: SyncStore, clock: FakeClock) -> None:
        self.need_clock()
        key = new_key()
        store.save(key, b"short", 60, None)
        clock.advance(61)
        assert store.touch(key, 60) is False
        assert store.load(key) is None

    def test_no_ttl_keeps_record(self, store: SyncStore, clock: FakeClock) -> None:
        key, touched = new_key(), new_key()
        store.save(key, b"forever", None, None)
        store.save(touched, b"forever too", 60, None)
        assert store.touch(touched, None) is True
        if self.uses_clock:
            clock.advance(10 * 365 * 86400)
        for name, data in ((key, b"forever"), (touched, b"forever too")):
            record = store.load(name)
            assert record is not None and record.data == data

    def test_purge_removes_only_expired_records(self, store: SyncStore, clock: FakeClock) -> None:
        self.need_clock()
        live, dead, forever = new_key(), new_key(), new_key()
        store.save(live, b"live", 600, None)
        store.save(dead, b"dead", 60, None)
        store.save(forever, b"forever", None, None)
        clock.advance(61)
        assert store.purge_expired() == (0 if self.server_expires else 1)
        assert store.purge_expired() == 0
        assert store.load(dead) is None
        for key, data in ((live, b"live"), (forever, b"forever")):
            record = store.load(key)
            assert record is not None and record.data == data

    def test_purge_leaves_what_the_store_did_not_write(
        self, store: SyncStore, clock: FakeClock, foreign_record: StillThere | None
    ) -> None:
        if foreign_record is None:
            pytest.skip("the test module plants no foreign record (the foreign_record fixture)")
        if self.uses_clock:
            clock.advance(86400)  # whatever the foreign record's age, it now looks expired
        store.purge_expired()
        assert foreign_record(), "purge_expired removed something the store did not write"

    def need_clock(self) -> None:
        if not self.uses_clock:
            pytest.skip("the store does not read the FakeClock: test_records_expire_in_real_time covers expiry")


class AsyncStoreContract(StoreContract):
    """The same contract for an async store: subclasses provide an ``async_store``
    fixture (fresh and empty, as for :class:`StoreContract`), and every test body
    drives it through :class:`~satchel.testing.facade.BlockingStore`, which also
    closes it."""

    @pytest.fixture
    def store(self, async_store: AsyncStore) -> Iterator[SyncStore]:
        blocking = BlockingStore(async_store)
        yield blocking
        blocking.close()
