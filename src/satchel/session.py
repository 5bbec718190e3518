"""The session as the application sees it: a dict with flash queues and CSRF tokens.

A Session holds state and intents only; it never talks to a store. The policy
(:mod:`satchel.policy`) builds it from what a store or a cookie held, and at the
end of the request reads what the view did to it: the data, the flash queues and
the CSRF token as they are now, and the intents the view expressed
(``invalidate()``, ``regenerate_id()``, ``bind_user()``, ``changed()``).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from .clock import Clock, system_clock
from .codecs import (
    Entries,
    all_plain_flash,
    check_value,
    decode_body,
    encode_body,
    encode_piece,
    encode_tail,
    encode_value,
    new_session_id,
    new_token,
    only_plain,
    open_body,
    same_layout,
)
from .codecs.tagged import IMMUTABLE_TYPES
from .errors import BadData, NotSerializable

log = logging.getLogger("satchel.security")

#: More changed keys than this and the body is encoded whole instead of line by line.
SPLICE_LIMIT = 32

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(slots=True)
class Loaded:
    """What a session was loaded from: the policy's baseline for change detection and merging.

    A value, never changed once made (not frozen only because that triples the cost
    of making one, twice a request; see :mod:`satchel.policy.ops`)."""

    #: The record's body as it was read (JSON bytes).
    body: bytes
    #: The store's version of the record (``None`` in cookie mode).
    version: Any = None
    #: When the store will expire the record, where it could tell.
    expires_at: float | None = None
    #: The user the stored session was bound to.
    user: str | None = None
    #: The store key the record was read from or written to (None in cookie mode).
    key: str | None = None


@dataclass(frozen=True, slots=True)
class Ended:
    """A stored session this request ended with ``invalidate()``."""

    id: str
    user: str | None


def _mutation(method: F) -> F:
    """Declare ``method`` a write: it marks the session written, and where the session
    has a ``guard`` (cookie mode checks the size there) a write the guard refuses is
    undone before the error reaches the view."""

    @functools.wraps(method)
    def write(self: Session, *args: Any, **kwargs: Any) -> Any:
        guard = self.guard
        if guard is None:
            result = method(self, *args, **kwargs)
            self.written = True
            return result
        before = self._snapshot()
        try:
            result = method(self, *args, **kwargs)
            guard(self)
        except BaseException:
            self._restore(before)
            raise
        self.written = True
        return result

    return write  # type: ignore[return-value]


def _whole(name: str) -> Any:
    """``dict``'s method ``name``, after the values still encoded have been decoded."""
    method = getattr(dict, name)

    @functools.wraps(method)
    def read(self: Session, *args: Any) -> Any:
        if self._entries is not None:
            self._materialize()
        return method(self, *args)

    return read


class Session(dict[str, Any]):
    """A dict that persists itself at the end of the request.

    Values are JSON plus tuples, sets, frozensets, bytes, datetimes, dates, times,
    timedeltas, UUIDs, Decimals and dicts with keys of those types, and come back
    as exactly what was stored. Assigning anything else raises
    :class:`~satchel.errors.NotSerializable` right there, inside the view, naming
    the key and the type. Changes inside nested values
    (``session["cart"][item] = 1``) are found without help, and merge with a
    concurrent request's changes at the leaf; :meth:`changed` is still there for
    code that calls it.

    A loaded session decodes a value when the view first reads it; reading the
    session whole (iterating it, ``len``, ``items()``, comparing it) decodes the
    rest. At commit only what the view touched is encoded (see :meth:`changed_body`).
    """

    # Slots: a session is made on every request that touches one, and a dict
    # subclass with this many attributes in a __dict__ costs as much to make as
    # decoding a small session. Subclasses without __slots__ still get a __dict__.
    __slots__ = (
        "_entries",
        "_fetched",
        "_id",
        "_removed",
        "_unreadable",
        "accessed",
        "clock",
        "created",
        "csrf",
        "ended",
        "flash_queues",
        "guard",
        "had_cookie",
        "increments",
        "loaded",
        "marked_changed",
        "new",
        "regenerated_from",
        "store_unavailable",
        "transport",
        "unsaved",
        "user_id",
        "written",
    )

    def __init__(
        self,
        data: Mapping[str, Any] | None = None,
        *,
        entries: Entries | None = None,
        id: str | None = None,
        created: float | None = None,
        accessed: float | None = None,
        flash: dict[str, list[Any]] | None = None,
        csrf: str | None = None,
        user_id: str | None = None,
        loaded: Loaded | None = None,
        had_cookie: bool = False,
        store_unavailable: bool = False,
        clock: Clock = system_clock,
    ) -> None:
        super().__init__(data or ())
        self._reset_entries(entries)
        #: Where the session reads the time (the policy's clock).
        self.clock = clock
        now = clock()
        self._id = id
        #: True until the session has been stored (or sent, in cookie mode).
        self.new = loaded is None
        #: When the session was started (Unix time).
        self.created = created if created is not None else now
        #: When the session was last written or renewed (Unix time).
        self.accessed = accessed if accessed is not None else now
        #: The flash queues, by name.
        self.flash_queues: dict[str, list[Any]] = flash if flash is not None else {}
        #: The CSRF token, if one was made.
        self.csrf: str | None = csrf
        #: The user this session belongs to, if the app said so with :meth:`bind_user`.
        self.user_id = user_id
        #: What the session was loaded from; None for a new session.
        self.loaded = loaded
        #: Whether the request carried a session cookie (valid or not).
        self.had_cookie = had_cookie
        #: True when the store could not be reached and ``on_store_error = fresh``
        #: gave this empty stand-in: nothing in it will be saved.
        self.store_unavailable = store_unavailable
        #: True for a stand-in session that is never saved.
        self.unsaved = store_unavailable
        #: Set by a write through the session's methods.
        self.written = False
        #: Set by :meth:`changed`: write even if the data compares equal.
        self.marked_changed = False
        #: What :meth:`increment` added to each key since the load: a merge adds it
        #: to the latest number instead of overwriting it.
        self.increments: dict[str, int | float] = {}
        #: Stored sessions this request ended with :meth:`invalidate`; their records go at commit.
        self.ended: list[Ended] = []
        #: The id :meth:`regenerate_id` moved the session away from.
        self.regenerated_from: str | None = None
        #: Called after each write with the session; raising undoes the write.
        self.guard: Callable[[Session], None] | None = None
        #: What the policy remembers of how the session travelled (cookie mode: which
        #: chunk cookies the request carried).
        self.transport: Any = None

    # -- the id ---------------------------------------------------------------

    @property
    def id(self) -> str:
        """The id the response will carry: made when first asked for on a new session,
        and after :meth:`regenerate_id` the new one."""
        if self._id is None:
            self._id = new_session_id()
        return self._id

    @property
    def has_id(self) -> bool:
        """Whether an id was loaded or handed out (reading :attr:`id` makes one)."""
        return self._id is not None

    def assign_new_id(self) -> str:
        """Give the session a fresh id (the policy does this when an id is taken)."""
        self._id = new_session_id()
        return self._id

    # -- what the policy reads ----------------------------------------------------

    def changed_body(self) -> bytes | None:
        """The body to store when the loaded session changed (or :meth:`changed` was
        called), else None; NotSerializable naming a key that cannot be stored.

        Only what the view touched is encoded: the values it set, and the mutable
        values (lists, dicts, sets...) it was handed, compared with the JSON they
        were read from. Values it only read as str, numbers and other immutable
        types cost nothing.
        """
        assert self.loaded is not None
        loaded, forced = self.loaded.body, self.marked_changed
        body = self._spliced()
        if body is not None:
            return body if forced or body != loaded else None
        if not (self.written or forced or self.flash_queues) and only_plain(self):
            return None
        body = self._encode_whole()
        if forced or body == loaded:
            return body if forced else None
        if same_layout(body, loaded):
            return body  # written the way it would be now: the bytes differ, so does what it holds
        # Written another way (whole by an earlier version, or tagged where it no
        # longer needs to be): compare what it holds, not how it was written.
        try:
            was = decode_body(loaded)
            same = body == encode_body(was.data, was.flash, was.csrf, was.user)
        except (BadData, NotSerializable):
            same = False
        return None if same else body

    def encode(self) -> bytes:
        """The session's body as it is now (NotSerializable naming a key that cannot be stored)."""
        body = self._spliced()
        return body if body is not None else self._encode_whole()

    def _spliced(self) -> bytes | None:
        """The loaded body with what the view changed spliced in (see :meth:`_splice`);
        None when the session holds no encoded values, or no longer does because its
        body must be encoded whole."""
        if self._entries is None:
            return None
        body = self._splice(self._entries)
        if body is None:
            self._materialize()
        return body

    def _reset_entries(self, entries: Entries | None = None) -> None:
        """Start over with ``entries`` still encoded (none: every value is in the dict)."""
        #: The loaded data's values still encoded, decoded one by one as they are read.
        self._entries = entries
        #: Keys decoded from ``_entries``, with the JSON they were decoded from.
        self._fetched: dict[str, bytes] = {}
        #: Keys of ``_entries`` deleted by this request.
        self._removed: set[str] = set()
        #: Keys of ``_entries`` whose value did not decode: absent for the view.
        self._unreadable: set[str] = set()
        if entries is not None and (first := entries.first()) is not None:
            # Code that reads a dict's storage directly (the json module's C encoder
            # answers "{}" for an empty one) must not take the session for empty.
            self._decoded(entries, *first)

    def _encode_whole(self) -> bytes:
        """The body of a session whose values are all decoded, from the dict's storage
        (a copy of it: the session's own read methods would look for encoded values)."""
        return encode_body(dict(dict.items(self)), self.flash_queues, self.csrf, self.user_id)

    def _splice(self, entries: Entries) -> bytes | None:
        """The loaded body with the lines of what the view changed replaced; the loaded
        body itself when nothing changed; None when it must be encoded whole (a plain
        body that now needs tags, or many changes)."""
        tagged, fetched = entries.tagged, self._fetched
        changed: dict[str, bytes] = {}
        for key, value in dict.items(self):
            before = fetched.get(key)
            if before is not None and type(value) in IMMUTABLE_TYPES:
                continue  # read, never set: what was stored
            piece = encode_piece(value, key, tagged)
            if piece is None:
                return None
            if piece != before:
                changed[key] = piece
        if not tagged and not all_plain_flash(self.flash_queues):
            return None
        tail = encode_tail(self.flash_queues, self.csrf, self.user_id, tagged)
        if not changed and not self._removed and tail == entries.tail:
            return entries.body
        removed = self._removed | self._unreadable
        if len(changed) + len(removed) > SPLICE_LIMIT:
            return None
        return entries.spliced(changed, removed, tail)

    def _missing_value(self, key: str) -> Any:
        """Decode ``key``'s value from the loaded body; KeyError when it has none."""
        entries = self._entries
        if entries is None or key in self._removed or key in self._unreadable:
            raise KeyError(key)
        piece = entries.piece(key)
        if piece is None:
            raise KeyError(key)
        return self._decoded(entries, key, piece)

    def _decoded(self, entries: Entries, key: str, piece: bytes) -> Any:
        """``key``'s value from its JSON, now held by the dict; KeyError when it does not decode."""
        try:
            value = entries.decode(piece)
        except BadData as exc:
            log.warning("stored session value %r is corrupt (%s); it reads as absent", key, exc)
            self._unreadable.add(key)
            raise KeyError(key) from None
        dict.__setitem__(self, key, value)
        self._fetched[key] = piece
        return value

    def _materialize(self) -> None:
        """Decode every value still encoded: the session is a plain dict from now on."""
        entries = self._entries
        assert entries is not None
        data, unreadable = entries.decode_all()
        for what in unreadable:
            log.warning("a stored session value is corrupt (%s); it reads as absent", what)
        for key in self._removed:
            data.pop(key, None)
        data.update(dict.items(self))  # what the view set or was handed, in place
        dict.clear(self)
        dict.update(self, data)
        self._reset_entries()

    def replace_state(
        self, data: Mapping[str, Any], flash: dict[str, list[Any]], csrf: str | None, user_id: str | None
    ) -> None:
        """Take the state a merge produced (no write is marked: it is what is stored)."""
        dict.clear(self)
        dict.update(self, data)
        self._reset_entries()
        self.flash_queues, self.csrf, self.user_id = flash, csrf, user_id

    def _snapshot(self) -> tuple[Any, ...]:
        return (
            dict(dict.items(self)),  # the storage as it is: dict.copy would decode the rest
            self._entries,
            dict(self._fetched),
            set(self._removed),
            {q: list(m) for q, m in self.flash_queues.items()},
            self.csrf,
            self.user_id,
        )

    def _restore(self, snapshot: tuple[Any, ...]) -> None:
        data, self._entries, self._fetched, self._removed, self.flash_queues, self.csrf, self.user_id = snapshot
        dict.clear(self)
        dict.update(self, data)

    # -- reading the session whole decodes what is still encoded ------------------

    keys = _whole("keys")
    values = _whole("values")
    items = _whole("items")
    copy = _whole("copy")
    __iter__ = _whole("__iter__")
    __reversed__ = _whole("__reversed__")
    __len__ = _whole("__len__")
    __eq__ = _whole("__eq__")
    __ne__ = _whole("__ne__")
    __or__ = _whole("__or__")
    __ror__ = _whole("__ror__")
    __hash__ = None

    def __bool__(self) -> bool:
        if dict.__len__(self):
            return True
        if self._entries is None:
            return False
        if not (self._removed or self._unreadable):
            return True  # a body written one entry per line holds at least one
        return len(self) > 0

    # -- dict writes are checked so a bad value fails inside the view -----------

    @_mutation
    def __setitem__(self, key: str, value: Any) -> None:
        if _pyramid_key(key):
            return self._set_pyramid_key(key, value)
        if not isinstance(key, str):
            raise NotSerializable(f"session keys must be str, not {type(key).__name__} ({key!r})", repr(key))
        check_value(value, key)
        dict.__setitem__(self, key, value)
        if self._fetched:
            self._fetched.pop(key, None)
        self.increments.pop(key, None)

    @_mutation
    def __delitem__(self, key: str) -> None:
        if _pyramid_key(key):
            return self._del_pyramid_key(key)
        self._drop(key)

    def _drop(self, key: str) -> None:
        """Delete ``key``, from the loaded body too; KeyError when the session has none."""
        present = dict.__contains__(self, key)
        if present:
            dict.__delitem__(self, key)
        entries = self._entries
        if entries is not None and key not in self._removed and key not in self._unreadable:
            if key in self._fetched or entries.piece(key) is not None:
                self._removed.add(key)
                present = True
        if not present:
            raise KeyError(key)
        self._fetched.pop(key, None)
        self.increments.pop(key, None)

    @_mutation
    def pop(self, key: str, *default: Any) -> Any:
        if _pyramid_key(key) and (key in self or not default):
            value = self[key]
            self._del_pyramid_key(key)
            return value
        try:
            value = self[key]
        except KeyError:
            if default:
                return default[0]
            raise
        self._drop(key)
        return value

    @_mutation
    def popitem(self) -> tuple[str, Any]:
        if self._entries is not None:
            self._materialize()
        key, value = dict.popitem(self)
        self.increments.pop(key, None)
        return key, value

    @_mutation
    def clear(self) -> None:
        dict.clear(self)
        self._reset_entries()
        self.increments.clear()

    @_mutation
    def increment(self, key: str, by: int | float = 1) -> int | float:
        """Add ``by`` to the number under ``key`` (0 when absent) and return it.

        Unlike ``session[key] = session.get(key, 0) + 1``, increments made by
        concurrent requests add up: a merge adds ``by`` to the latest number.
        """
        before = self.get(key, 0)
        if type(by) not in (int, float) or type(before) not in (int, float):
            raise TypeError(
                f"session.increment({key!r}) adds numbers: it holds a {type(before).__name__}, "
                f"by is a {type(by).__name__}"
            )
        value: int | float = before + by
        check_value(value, key)
        dict.__setitem__(self, key, value)
        self._fetched.pop(key, None)
        self.increments[key] = self.increments.get(key, 0) + by
        return value

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return self[key]

    @_mutation
    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        items: Iterable[tuple[str, Any]]
        if isinstance(other, Mapping):
            items = other.items()
        elif hasattr(other, "keys"):
            items = ((k, other[k]) for k in other.keys())
        else:
            items = other
        for key, value in [*items, *kwargs.items()]:
            self[key] = value

    def __ior__(self, other: Any) -> Session:  # type: ignore[override,misc]
        self.update(other)
        return self

    def __repr__(self) -> str:
        if self._entries is not None:
            self._materialize()
        return f"<{type(self).__name__} new={self.new} {dict.__repr__(self)}>"

    # -- ISession -------------------------------------------------------------

    def changed(self) -> None:
        """Mark the session as changed; it is written at the end of the request.

        Not needed for changes inside nested values: they are found by comparing
        the session with what was loaded, and that comparison also says what to
        merge with a concurrent request (see docs/concurrency.md); kept for code
        written for sessions that needed it.
        """
        self.marked_changed = True

    def save(self) -> None:
        """Beaker's explicit save; the session is saved at the end of the request anyway."""
        self.marked_changed = True

    def invalidate(self) -> None:
        """End this session: its record is deleted and the cookie expired, even if the
        view raises afterwards.

        The object stays usable: anything stored after this starts a new session
        with a new id.
        """
        if self.loaded is not None:
            self.ended.append(Ended(self.regenerated_from or self.id, self.loaded.user))
        dict.clear(self)
        self._reset_entries()
        self.increments = {}
        self.flash_queues, self.csrf, self.user_id = {}, None, None
        self._id = None
        self.new = True
        self.loaded = None
        self.marked_changed = False
        self.regenerated_from = None
        self.created = self.accessed = self.clock()

    @_mutation
    def regenerate_id(self) -> None:
        """Keep the data under a new id, and drop the old id (do this at login).

        A CSRF token the session had is replaced too: whoever planted the old id
        before the login may know it.
        """
        if self.loaded is not None and self.regenerated_from is None:
            self.regenerated_from = self.id
        self._id = None if self.loaded is None else new_session_id()
        if self.csrf is not None:
            self.csrf = new_token()

    @_mutation
    def bind_user(self, user_id: str | int) -> None:
        """Tie this session to a user, so ``SessionManager.revoke_user_sessions``
        can log that user out everywhere. Call it at login, with ``regenerate_id()``."""
        self.user_id = str(user_id)

    @property
    def invalidated_ids(self) -> list[str]:
        """Ids of the stored sessions this request ended."""
        return [ended.id for ended in self.ended]

    @property
    def is_invalidated(self) -> bool:
        return bool(self.ended)

    # -- flash messages ---------------------------------------------------------

    @_mutation
    def flash(self, msg: Any, queue: str = "", allow_duplicate: bool = True) -> None:
        encode_value(msg, f"flash queue {queue!r}")
        messages = self.flash_queues.setdefault(queue, [])
        if allow_duplicate or msg not in messages:
            messages.append(msg)

    def peek_flash(self, queue: str = "") -> list[Any]:
        return list(self.flash_queues.get(queue, ()))

    def pop_flash(self, queue: str = "") -> list[Any]:
        """Remove and return the queue's messages; the removal is stored at commit, and a
        request that changes the session concurrently never brings them back."""
        if queue not in self.flash_queues:
            return []
        return self._pop_queue(queue)

    @_mutation
    def _pop_queue(self, queue: str) -> list[Any]:
        return self.flash_queues.pop(queue)

    # -- CSRF -------------------------------------------------------------------

    @_mutation
    def new_csrf_token(self) -> str:
        self.csrf = new_token()
        return self.csrf

    def get_csrf_token(self) -> str:
        return self.csrf if self.csrf is not None else self.new_csrf_token()

    # -- Beaker's and Pyramid's session API ---------------------------------------

    @property
    def is_new(self) -> bool:
        """Beaker's name for :attr:`new`."""
        return self.new

    @property
    def last_accessed(self) -> float | None:
        """When the stored session was last written or renewed (Unix time); None for a
        new one. Beaker counted every read; satchel records time only when it writes."""
        return None if self.loaded is None else self.accessed

    def persist(self) -> None:
        """Beaker's save-now; the session is written at the end of the request, once."""
        self.marked_changed = True

    def delete(self) -> None:
        """Beaker's delete: the stored session and its cookie go (see :meth:`invalidate`)."""
        self.invalidate()

    def revert(self) -> None:
        """Undo this request's changes: back to the session as it was loaded (empty for a
        new one). Intents already expressed (``invalidate()``, a new id) stay."""
        loaded = open_body(self.loaded.body) if self.loaded is not None else None
        if loaded is None:
            self.replace_state({}, {}, None, None)
        else:
            self.replace_state(loaded.data, loaded.flash, loaded.csrf, loaded.user)
            self._reset_entries(loaded.entries)
        self.written = self.marked_changed = False

    @property
    def domain(self) -> str:
        raise AttributeError(_PER_SESSION_COOKIE.format("domain"))

    @domain.setter
    def domain(self, value: str) -> None:
        raise AttributeError(_PER_SESSION_COOKIE.format("domain"))

    @property
    def path(self) -> str:
        raise AttributeError(_PER_SESSION_COOKIE.format("path"))

    @path.setter
    def path(self, value: str) -> None:
        raise AttributeError(_PER_SESSION_COOKIE.format("path"))

    # Pyramid's sessions keep flash queues under "_f_<queue>" and the CSRF token under
    # "_csrft_"; code that reads or writes those keys gets satchel's queues and token.

    def __missing__(self, key: str) -> Any:
        """A key the dict does not hold yet: Pyramid's flash and CSRF keys, or a value
        still encoded in the loaded body."""
        if type(key) is not str:
            raise KeyError(key)
        if _pyramid_key(key):
            if key == CSRF_KEY:
                if self.csrf is None:
                    raise KeyError(key)
                return self.csrf
            return self.flash_queues[key[len(FLASH_PREFIX) :]]
        return self._missing_value(key)

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def __contains__(self, key: object) -> bool:
        if dict.__contains__(self, key):
            return True
        if type(key) is not str:
            return False
        if _pyramid_key(key):
            return self.csrf is not None if key == CSRF_KEY else key[len(FLASH_PREFIX) :] in self.flash_queues
        entries = self._entries
        return (
            entries is not None
            and key not in self._removed
            and key not in self._unreadable
            and entries.piece(key) is not None
        )

    def _set_pyramid_key(self, key: str, value: Any) -> None:
        if key == CSRF_KEY:
            if not isinstance(value, str):
                raise NotSerializable(f"session[{key!r}] is the CSRF token and must be a str", key)
            self.csrf = value
            return
        if not isinstance(value, list):
            raise NotSerializable(f"session[{key!r}] is a flash queue and must be a list", key)
        check_value(value, key)
        self.flash_queues[key[len(FLASH_PREFIX) :]] = value

    def _del_pyramid_key(self, key: str) -> None:
        if key not in self:
            raise KeyError(key)
        if key == CSRF_KEY:
            self.csrf = None
        else:
            del self.flash_queues[key[len(FLASH_PREFIX) :]]


FLASH_PREFIX, CSRF_KEY = "_f_", "_csrft_"
_PER_SESSION_COOKIE = (
    "a session's cookie {0} cannot be changed per session in satchel; set session.cookie_{0} in the settings"
)


def _pyramid_key(key: object) -> bool:
    """Whether ``key`` is one Pyramid's sessions keep their flash queues or CSRF token under."""
    return isinstance(key, str) and (key == CSRF_KEY or key.startswith(FLASH_PREFIX))
