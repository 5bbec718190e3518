"""The session as the application sees it: a dict with flash queues and CSRF.

A Session holds state only; it never talks to a store. The manager loads it,
and at the end of the request compares what it holds with what was loaded.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .codecs import check_value, encode_value, new_token, only_plain
from .errors import NotSerializable


class Session(dict[str, Any]):
    """A dict that persists itself at the end of the request.

    Values must be JSON; assigning one that is not raises
    :class:`~satchel.errors.NotSerializable` right there, inside the view.
    Changes inside nested values (``session["cart"].append(item)``) are found
    without help; :meth:`changed` is still there for code that calls it.
    """

    __slots__ = (
        "_csrf",
        "_dirty",
        "_flash",
        "_flash_claimer",
        "_key",
        "_loaded_body",
        "_loaded_user",
        "_regenerate",
        "_touched",
        "accessed",
        "created",
        "expires_at",
        "had_cookie",
        "id",
        "invalidated_ids",
        "new",
        "store_unavailable",
        "unsaved",
        "user_id",
        "version",
    )

    def __init__(
        self,
        data: Mapping[str, Any] | None = None,
        *,
        session_id: str | None = None,
        new: bool = True,
        created: float | None = None,
        accessed: float | None = None,
        flash: dict[str, list[Any]] | None = None,
        csrf: str | None = None,
        version: Any = None,
        loaded_body: bytes | None = None,
        expires_at: float | None = None,
        had_cookie: bool = False,
        store_unavailable: bool = False,
        user_id: str | None = None,
    ) -> None:
        super().__init__(data or ())
        now = time.time()
        #: The session id; ``None`` until a new session is first saved.
        self.id = session_id
        #: True when this request started the session (nothing was stored yet).
        self.new = new
        #: When the session was started (Unix time).
        self.created = created if created is not None else now
        #: When the session was last written or renewed (Unix time).
        self.accessed = accessed if accessed is not None else now
        self.version = version
        self.expires_at = expires_at
        #: Whether the request carried a session cookie (valid or not).
        self.had_cookie = had_cookie
        #: True when the store could not be reached and ``on_store_error = fresh``
        #: gave this empty stand-in: nothing in it will be saved.
        self.store_unavailable = store_unavailable
        #: True for a stand-in session that is never saved (see the manager).
        self.unsaved = store_unavailable
        #: The user this session belongs to, if the app said so with ``bind_user``;
        #: lets the app list and revoke all of a user's sessions.
        self.user_id = user_id
        self._loaded_user = user_id
        #: Ids this request invalidated; their records are deleted at commit.
        self.invalidated_ids: list[str] = []
        self._flash: dict[str, list[Any]] = flash if flash is not None else {}
        #: Set by the manager for stored sessions: pops flash messages atomically.
        self._flash_claimer: Callable[[Session, str], list[Any]] | None = None
        self._csrf = csrf
        self._loaded_body = loaded_body
        self._dirty = False
        self._regenerate = False
        self._touched = False
        #: (id, store key) once the manager has hashed the id.
        self._key: tuple[str, str] | None = None

    @classmethod
    def _stored(
        cls,
        data: dict[str, Any],
        session_id: str,
        created: float,
        accessed: float,
        flash: dict[str, list[Any]],
        csrf: str | None,
        user_id: str | None,
        version: Any,
        loaded_body: bytes,
        expires_at: float | None,
        flash_claimer: Callable[[Session, str], list[Any]] | None,
        key: tuple[str, str] | None,
    ) -> Session:
        """A session loaded from a store: what ``__init__`` does, for the hot path
        (no keyword parsing, no clock read). A subclass with an ``__init__`` of its
        own gets it called instead."""
        if cls.__init__ is not Session.__init__:
            self = cls(
                data,
                session_id=session_id,
                new=False,
                created=created,
                accessed=accessed,
                flash=flash,
                csrf=csrf,
                version=version,
                loaded_body=loaded_body,
                expires_at=expires_at,
                had_cookie=True,
                user_id=user_id,
            )
            self._flash_claimer, self._key = flash_claimer, key
            return self
        self = cls.__new__(cls)
        dict.update(self, data)
        self.id, self.new, self.created, self.accessed = session_id, False, created, accessed
        self.version, self.expires_at, self.had_cookie = version, expires_at, True
        self.store_unavailable = self.unsaved = False
        self.user_id = self._loaded_user = user_id
        self.invalidated_ids = []
        self._flash, self._flash_claimer, self._csrf = flash, flash_claimer, csrf
        self._loaded_body = loaded_body
        self._dirty = self._regenerate = self._touched = False
        self._key = key
        return self

    def _unchanged(self) -> bool:
        """True when nothing can have changed since the load, without encoding.

        Every write through the session's methods marks it touched; what is left
        is a change made inside a value that is not a plain str, number, bool or
        None (a list, a dict, a flash message), so a session holding any is
        compared by encoding it, like a touched one.
        """
        return not (self._touched or self._dirty or self._flash) and only_plain(self)

    # -- dict writes are checked so a bad value fails inside the view -----------

    def __setitem__(self, key: str, value: Any) -> None:
        if type(key) is not str and not isinstance(key, str):  # the exact type first: the common case
            raise NotSerializable(f"session keys must be str, not {type(key).__name__} ({key!r})", repr(key))
        check_value(value, key)
        self._touched = True
        dict.__setitem__(self, key, value)

    def __delitem__(self, key: str) -> None:
        self._touched = True
        dict.__delitem__(self, key)

    def pop(self, key: str, *default: Any) -> Any:
        self._touched = True
        return dict.pop(self, key, *default)

    def popitem(self) -> tuple[str, Any]:
        self._touched = True
        return dict.popitem(self)

    def clear(self) -> None:
        self._touched = True
        dict.clear(self)

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return super().__getitem__(key)

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        items: Iterable[tuple[str, Any]]
        if isinstance(other, Mapping):
            items = other.items()
        elif hasattr(other, "keys"):
            items = ((k, other[k]) for k in other.keys())
        else:
            items = other
        for key, value in items:
            self[key] = value
        for key, value in kwargs.items():
            self[key] = value

    def __ior__(self, other: Any) -> Session:  # type: ignore[override,misc]
        self.update(other)
        return self

    def __repr__(self) -> str:
        return f"<{type(self).__name__} new={self.new} {dict.__repr__(self)}>"

    # -- ISession -------------------------------------------------------------

    def changed(self) -> None:
        """Mark the session as changed; it is written at the end of the request.

        Not needed for changes inside nested values, which are found by comparing
        the encoded session with what was loaded; kept for code written for
        sessions that needed it.
        """
        self._dirty = True

    def save(self) -> None:
        """Beaker's explicit save; the session is saved at the end of the request anyway."""
        self._dirty = True

    def invalidate(self) -> None:
        """End this session: its record is deleted and the cookie expired.

        The object stays usable: anything stored after this starts a new session
        with a new id.
        """
        if self.id is not None:
            self.invalidated_ids.append(self.id)
        dict.clear(self)
        self._flash = {}
        self._csrf = None
        self.user_id = None
        self.id = None
        self.new = True
        self.version = None
        self._loaded_body = None
        self._dirty = False
        self._regenerate = False
        self.created = self.accessed = time.time()
        self.expires_at = None

    def regenerate_id(self) -> None:
        """Keep the data under a new id, and drop the old id (do this at login).

        A CSRF token the session had is replaced too: whoever planted the old id
        before the login may know it.
        """
        self._regenerate = self._touched = True
        if self._csrf is not None:
            self._csrf = new_token()

    def bind_user(self, user_id: str | int) -> None:
        """Tie this session to a user, so ``SessionManager.revoke_user_sessions``
        can log that user out everywhere. Call it at login, with ``regenerate_id()``."""
        self._touched = True
        self.user_id = str(user_id)

    @property
    def is_invalidated(self) -> bool:
        return bool(self.invalidated_ids)

    # -- flash messages ---------------------------------------------------------

    def flash(self, msg: Any, queue: str = "", allow_duplicate: bool = True) -> None:
        encode_value(msg, f"flash queue {queue!r}")
        self._touched = True
        messages = self._flash.setdefault(queue, [])
        if allow_duplicate or msg not in messages:
            messages.append(msg)

    def peek_flash(self, queue: str = "") -> list[Any]:
        return list(self._flash.get(queue, ()))

    def pop_flash(self, queue: str = "") -> list[Any]:
        """Remove and return the queue's messages.

        For a stored session the removal is written at once and atomically, so
        two concurrent requests never both show the same message.
        """
        if queue not in self._flash:
            return []
        self._touched = True
        if self._flash_claimer is not None and self.id is not None and self._flash[queue]:
            return self._flash_claimer(self, queue)
        return self._flash.pop(queue)

    # -- CSRF -------------------------------------------------------------------

    def new_csrf_token(self) -> str:
        self._touched = True
        self._csrf = new_token()
        return self._csrf

    def get_csrf_token(self) -> str:
        return self._csrf if self._csrf is not None else self.new_csrf_token()

