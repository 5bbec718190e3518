"""The transition from Beaker: a visitor who comes back with Beaker's cookie keeps
their session.

While ``session.beaker_transition`` is on, a request whose cookie is Beaker's
(and not a valid satchel one) has its Beaker record read (``ReadBeaker``, which
the runner carries out with a :class:`~satchel.beaker.readers.BeakerReader`),
converted, and handed to the view as a new satchel session: the commit stores it
under a new id and sends satchel's cookie, and only then is Beaker's record
deleted. A record converted ahead of time by ``satchel migrate beaker`` is found
under :func:`migrated_key` when Beaker's own is gone.

Once converted, a marker stays under :func:`migrated_key` for a minute: a request
that was already under way with the Beaker cookie (another tab, a page's
assets) then gets an empty session that is never saved, so it cannot send a
cookie that overtakes the one the conversion sent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..clock import Clock
from ..codecs import decode_body, split_record, store_key
from ..errors import BadData
from ..policy.ops import Delete, DeleteBeaker, Load, ReadBeaker, Save, Steps
from ..policy.timeouts import Timeouts
from ..session import Session
from ..stores.base import Version
from ..throttled import ThrottledLog
from .records import BeakerSession, convert

log = logging.getLogger("satchel")

#: Builds a session: the policy's ``_fresh`` with data (keyword arguments of Session).
MakeSession = Callable[..., Session]

#: What stays under :func:`migrated_key` for a while once a Beaker session was converted.
CONVERTED_MARKER = b"S1 beaker-converted\n"
CONVERTED_MARKER_TTL = 60


class Converted(Exception):
    """The Beaker session was converted moments ago, by a request that sent the new cookie."""


@dataclass(frozen=True, slots=True)
class BeakerOrigin:
    """Where a session the transition converted came from (kept on ``session.transport``)."""

    beaker_id: str
    #: True when it was the copy ``satchel migrate beaker`` stored, not Beaker's record.
    migrated: bool = False
    #: The store's version of that copy.
    version: Version | None = None


def migrated_key(beaker_id: str) -> str:
    """The store key of the copy ``satchel migrate beaker`` makes of a Beaker session.
    No satchel session id contains a colon, so it never names one of theirs."""
    return store_key("beaker:" + beaker_id)


@dataclass(frozen=True)
class Transition:
    """What adopting a Beaker session needs of the policy."""

    clock: Clock
    timeouts: Timeouts
    refused: ThrottledLog
    #: What Beaker signed its cookies with.
    keys: tuple[str, ...]

    def open(self, beaker_id: str, make: MakeSession) -> Steps[Session]:
        """The converted session for a Beaker id, or a fresh one (marked unsaved when
        Beaker's store could not be read, so the visitor's Beaker cookie survives)."""
        try:
            found = yield from self._find(beaker_id)
        except Converted:
            session = make(had_cookie=True)
            session.unsaved = True
            return session
        except BadData as exc:
            self.refused.event(
                logging.WARNING, "beaker record refused", "Beaker session record refused (%s); starting afresh", exc
            )
            return make(had_cookie=True)
        except Exception as exc:  # noqa: BLE001 - any failure of Beaker's store: keep the cookie, try again later
            log.warning("Beaker's session store could not be read (%s); serving an unsaved session", exc)
            session = make(had_cookie=True)
            session.unsaved = True
            return session
        if found is None:
            return make(had_cookie=True)
        converted, origin = found
        now = self.clock()
        if self.timeouts.past_absolute(converted.created, now) or self.timeouts.idle_expired(converted.accessed, now):
            try:
                yield from self._forget(origin)
            except Exception as exc:  # noqa: BLE001 - a leftover record is converted (and found expired) again later
                log.warning("could not delete an expired Beaker session record (%s)", exc)
            return make(had_cookie=True)
        session = make(
            data=converted.data,
            created=converted.created,
            flash=converted.flash,
            csrf=converted.csrf,
            had_cookie=True,
        )
        session.transport = origin
        return session

    def _find(self, beaker_id: str) -> Steps[tuple[BeakerSession, BeakerOrigin] | None]:
        stored: dict[str, Any] | None = yield ReadBeaker(beaker_id)
        if stored is not None:
            return convert(stored, self.clock()), BeakerOrigin(beaker_id)
        record = yield Load(migrated_key(beaker_id))
        if record is None:
            return None
        if record.data == CONVERTED_MARKER:
            raise Converted
        created, accessed, body_bytes = split_record(record.data)
        body = decode_body(body_bytes)
        converted = BeakerSession(body.data, created, accessed, body.flash, body.csrf)
        return converted, BeakerOrigin(beaker_id, migrated=True, version=record.version)

    def finish(self, session: Session) -> Steps[None]:
        """After a commit: forget the Beaker record of a converted session once the
        session is stored (or was emptied); a session that could not be stored
        (past the record cap) keeps it, to be converted on the next request."""
        origin = session.transport
        if not isinstance(origin, BeakerOrigin):
            return
        emptied = not (dict(session) or session.flash_queues or session.csrf)
        if session.loaded is None and not emptied:
            return
        session.transport = None
        try:
            yield from self._mark_converted(origin)
        except Exception as exc:  # noqa: BLE001 - the session is saved; its cookie must still go out
            log.warning("could not delete a converted Beaker session record (%s)", exc)

    @staticmethod
    def _mark_converted(origin: BeakerOrigin) -> Steps[None]:
        """Leave the marker, then delete Beaker's record."""
        key = migrated_key(origin.beaker_id)
        if (yield Save(key, CONVERTED_MARKER, CONVERTED_MARKER_TTL, origin.version)) is None:
            # A copy ``satchel migrate beaker`` made while Beaker's record lived on: older.
            yield Delete(key)
            yield Save(key, CONVERTED_MARKER, CONVERTED_MARKER_TTL, None)
        if not origin.migrated:
            yield DeleteBeaker(origin.beaker_id)

    @staticmethod
    def _forget(origin: BeakerOrigin) -> Steps[None]:
        if origin.migrated:
            yield Delete(migrated_key(origin.beaker_id))
        else:
            yield DeleteBeaker(origin.beaker_id)
