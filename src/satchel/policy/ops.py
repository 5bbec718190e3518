"""The store operations a policy asks for.

Policies are generators: they yield one of these, a runner carries it out on a
store (synchronously or with ``await``) and sends the result back in; a store's
exception is thrown back in at the same point. So every session rule is written
once, for both kinds of runner.

Operations are values: nothing changes one once it is made. They are plain
slotted dataclasses rather than frozen ones because a request makes several and
a frozen dataclass costs three times as much to make (each field is set through
``object.__setattr__``): about a tenth of a changing request's own work.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ..stores.base import Version

if TYPE_CHECKING:
    from ..stores.aio.base import AsyncStore
    from ..stores.base import Store

T = TypeVar("T")


@dataclass(slots=True)
class Load:
    """``store.load(key)`` -> Record | None."""

    key: str

    def call(self, store: Store | AsyncStore) -> Any:
        """The store's call: its result from a store, an awaitable from an async store."""
        return store.load(self.key)


@dataclass(slots=True)
class Save:
    """``store.save(key, data, ttl, expected)`` -> the new version, or None on a conflict."""

    key: str
    data: bytes
    ttl: int | None
    expected: Version | None

    def call(self, store: Store | AsyncStore) -> Any:
        return store.save(self.key, self.data, self.ttl, self.expected)


@dataclass(slots=True)
class Touch:
    """``store.touch(key, ttl)`` -> bool."""

    key: str
    ttl: int | None

    def call(self, store: Store | AsyncStore) -> Any:
        return store.touch(self.key, self.ttl)


@dataclass(slots=True)
class Delete:
    """``store.delete(key)``."""

    key: str

    def call(self, store: Store | AsyncStore) -> Any:
        return store.delete(self.key)


@dataclass(slots=True)
class Count:
    """``store.count()`` -> int | None."""

    def call(self, store: Store | AsyncStore) -> Any:
        return store.count()


@dataclass(slots=True)
class Purge:
    """``store.purge_expired()`` -> int."""

    def call(self, store: Store | AsyncStore) -> Any:
        return store.purge_expired()


@dataclass(slots=True)
class Pause:
    """Wait ``seconds`` before trying again (a backoff between conflicting writes)."""

    seconds: float


@dataclass(slots=True)
class ReadBeaker:
    """The session dict Beaker stored for ``beaker_id`` (its reader's ``load``), or None."""

    beaker_id: str


@dataclass(slots=True)
class DeleteBeaker:
    """Remove Beaker's record for ``beaker_id`` once it has been converted."""

    beaker_id: str


#: The operations a store carries out, each with its ``call(store)``.
STORE_OPS = (Load, Save, Touch, Delete, Count, Purge)
StoreOp = Load | Save | Touch | Delete | Count | Purge
Op = StoreOp | Pause | ReadBeaker | DeleteBeaker

#: A policy step: yields operations, receives their results, returns a ``T``.
Steps = Generator[Op, Any, T]


def immediately(value: T) -> Steps[T]:
    """A step that needs no store: it returns ``value`` at once."""
    return value
    yield  # pragma: no cover - the yield makes this a generator


@dataclass(slots=True)
class Done(Generic[T]):
    """A policy step's result: it asks for no more operations."""

    value: T


def advance(steps: Steps[T], reply: Any, failure: BaseException | None) -> Op | Done[T]:
    """The step's next operation once the last one's ``reply`` is sent in (or its
    ``failure`` thrown in), or :class:`Done` with the step's result. Every runner,
    sync or async, drives a step with this; only how it carries an operation out differs."""
    try:
        return steps.send(reply) if failure is None else steps.throw(failure)
    except StopIteration as done:
        return Done(done.value)
