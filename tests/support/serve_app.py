"""A real Pyramid app with satchel sessions, served by waitress in a process of its own.

Run it as ``python tests/serve_app.py --port N --settings-json '{"session.type": ...}'``.
``--port 0`` lets the system pick a free port; either way the first line on
stdout is ``serving on 127.0.0.1:PORT`` once the socket is listening, so a
parent process knows when it can send requests.

Views (every view that changes the session takes ``delay_ms``: it sleeps that
long after loading the session, to widen the window for conflicts, and
``hold=NAME``: it then waits until ``/release?name=NAME``):

- ``/start``: creates the session (``session["started"] = True``);
- ``/add?k=KEY[&m=MSG][&pop=1]``: ``session[KEY] = True``; with ``m`` it also
  flashes MSG, with ``pop`` it also pops the flash queue (the answer is the
  JSON list popped, else ``[]``);
- ``/cart?i=N``: ``session.setdefault("cart", {})[str(N)] = N``, appends N to
  ``session.setdefault("appended", [])`` and ``session.increment("items")``;
- ``/flash?m=MSG``: flashes MSG;
- ``/pop``: JSON of ``pop_flash()``; ``/peek``: JSON of ``peek_flash()``;
- ``/dump``: JSON of ``dict(session)``; ``/incr``: increments ``count``;
- ``/ping``: never touches the session;
- ``/state[?k=KEY[&v=VALUE]]``: with ``k`` sets ``session[KEY]`` (to VALUE, else
  ``True``); answers JSON ``{"store_unavailable": ..., "data": dict(session)}``,
  so a client sees whether ``on_store_error = fresh`` gave a stand-in session;
- ``/held?name=NAME``: how many views wait for NAME; ``/release?name=NAME``;
- ``/stats``: JSON counts of the store calls this process made (``save_conflict``
  counts conditional writes that lost), plus ``conflict_errors``, the requests
  that ran out of merge retries, and the policy's merge statistics (``merges``,
  ``overwritten``).

:class:`~satchel.errors.StoreUnavailable` becomes a 503 with a short text, and
:class:`~satchel.errors.SessionConflict` a 409, by exception views.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Mapping
from typing import Any

from pyramid.config import Configurator
from pyramid.interfaces import ISessionFactory
from pyramid.response import Response

from satchel.errors import SessionConflict, StoreUnavailable
from satchel.stores.base import Record, Store, Version

UNAVAILABLE_TEXT = "session store unavailable, try again shortly"
CONFLICT_TEXT = "session conflict"
#: How long a held view waits for its release at most.
HOLD_LIMIT = 60.0


class StatsStore(Store):
    """Wraps the app's store and counts its calls, safely across threads."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.name = inner.name
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()

    def count(self) -> int | None:
        return self.inner.count()

    def bump(self, name: str) -> None:
        with self._lock:
            self.calls[name] += 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.calls)

    @property
    def address(self) -> str:
        return self.inner.address

    def load(self, key: str) -> Record | None:
        self.bump("load")
        return self.inner.load(key)

    def save(self, key: str, data: bytes, ttl: int | None, expected_version: Version | None) -> Version | None:
        self.bump("save")
        saved = self.inner.save(key, data, ttl, expected_version)
        if saved is None:
            self.bump("save_conflict")
        return saved

    def touch(self, key: str, ttl: int | None) -> bool:
        self.bump("touch")
        return self.inner.touch(key, ttl)

    def delete(self, key: str) -> None:
        self.bump("delete")
        self.inner.delete(key)

    def purge_expired(self) -> int:
        return self.inner.purge_expired()

    def close(self) -> None:
        self.inner.close()


class Holds:
    """Named gates that views wait at, opened by ``/release``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: dict[str, threading.Event] = {}
        self._waiting: Counter[str] = Counter()

    def _event(self, name: str) -> threading.Event:
        with self._lock:
            return self._events.setdefault(name, threading.Event())

    def wait(self, name: str) -> None:
        event = self._event(name)
        with self._lock:
            self._waiting[name] += 1
        try:
            event.wait(HOLD_LIMIT)
        finally:
            with self._lock:
                self._waiting[name] -= 1

    def waiting(self, name: str) -> int:
        with self._lock:
            return self._waiting[name]

    def release(self, name: str) -> None:
        self._event(name).set()


def _json(value: Any, status: int = 200) -> Response:
    return Response(json.dumps(value), status=status, content_type="application/json", charset="utf-8")


def _text(value: str, status: int = 200) -> Response:
    return Response(value, status=status, content_type="text/plain", charset="utf-8")


def _changing(request: Any) -> Any:
    """Load the session, then wait as the request asks, and return it."""
    session = request.session
    delay_ms = float(request.params.get("delay_ms", 0) or 0)
    if delay_ms > 0:
        time.sleep(delay_ms / 1000)
    hold = request.params.get("hold")
    if hold:
        request.registry.satchel_holds.wait(hold)
    return session


def start(request: Any) -> Response:
    _changing(request)["started"] = True
    return _text("started")


def add(request: Any) -> Response:
    session = _changing(request)
    popped: list[Any] = []
    if request.params.get("pop"):
        popped = session.pop_flash()
    session[request.params["k"]] = True
    message = request.params.get("m")
    if message is not None:
        session.flash(message)
    return _json(popped)


def cart(request: Any) -> Response:
    session = _changing(request)
    item = int(request.params["i"])
    session.setdefault("cart", {})[str(item)] = item
    session.setdefault("appended", []).append(item)
    session.increment("items")
    return _text("added")


def flash(request: Any) -> Response:
    _changing(request).flash(request.params["m"])
    return _text("flashed")


def pop(request: Any) -> Response:
    return _json(_changing(request).pop_flash())


def peek(request: Any) -> Response:
    return _json(request.session.peek_flash())


def dump(request: Any) -> Response:
    return _json(dict(request.session))


def incr(request: Any) -> Response:
    session = _changing(request)
    session["count"] = session.get("count", 0) + 1
    return _json(session["count"])


def login(request: Any) -> Response:
    session = _changing(request)
    session.regenerate_id()
    session.bind_user(request.params["user"])
    session["user"] = request.params["user"]
    return _text("in")


def whoami(request: Any) -> Response:
    return _text(str(request.session.get("user")))


def revoke(request: Any) -> Response:
    from pyramid.interfaces import ISessionFactory

    manager = request.registry.getUtility(ISessionFactory).manager
    return _json(manager.revoke_user_sessions(request.params["user"]))


def ping(request: Any) -> Response:
    return _text("pong")


def state(request: Any) -> Response:
    session = request.session
    key = request.params.get("k")
    if key:
        session[key] = request.params.get("v", True)
    return _json({"store_unavailable": session.store_unavailable, "data": dict(session)})


def held(request: Any) -> Response:
    return _json(request.registry.satchel_holds.waiting(request.params["name"]))


def release(request: Any) -> Response:
    request.registry.satchel_holds.release(request.params["name"])
    return _text("released")


def stats(request: Any) -> Response:
    counts = request.registry.satchel_stats.snapshot()
    with request.registry.satchel_errors_lock:
        counts["conflict_errors"] = request.registry.satchel_conflict_errors
    merge_stats = getattr(request.registry.getUtility(ISessionFactory).manager.policy, "merge_stats", None)
    if merge_stats is not None:
        counts.update(merge_stats.snapshot())
    return _json(counts)


def store_unavailable(exc: StoreUnavailable, request: Any) -> Response:
    return _text(UNAVAILABLE_TEXT, status=503)


def session_conflict(exc: SessionConflict, request: Any) -> Response:
    with request.registry.satchel_errors_lock:
        request.registry.satchel_conflict_errors += 1
    return _text(CONFLICT_TEXT, status=409)


VIEWS = {
    "start": start,
    "add": add,
    "cart": cart,
    "flash": flash,
    "pop": pop,
    "peek": peek,
    "dump": dump,
    "incr": incr,
    "login": login,
    "whoami": whoami,
    "revoke": revoke,
    "ping": ping,
    "state": state,
    "held": held,
    "release": release,
    "stats": stats,
}


def make_app(settings: Mapping[str, Any]) -> Any:
    """The WSGI app: ``config.include("satchel")`` with ``settings``, and the views above."""
    with Configurator(settings=dict(settings)) as config:
        config.include("satchel")
        for name, view in VIEWS.items():
            config.add_route(name, f"/{name}")
            config.add_view(view, route_name=name)
        config.add_view(store_unavailable, context=StoreUnavailable)
        config.add_view(session_conflict, context=SessionConflict)
        app = config.make_wsgi_app()
    registry = app.registry
    factory = registry.getUtility(ISessionFactory)
    registry.satchel_stats = factory.manager.store = StatsStore(factory.manager.store)
    registry.satchel_holds = Holds()
    registry.satchel_errors_lock = threading.Lock()
    registry.satchel_conflict_errors = 0
    return app


def _exit_when_parent_goes() -> None:
    """With ``--exit-with-stdin``: the parent holds our stdin; EOF means it is gone."""
    try:
        while sys.stdin.buffer.read(4096):
            pass
    finally:
        os._exit(0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True, help="0 picks a free port")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--settings-json", required=True, help="the app's settings as a JSON object")
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--exit-with-stdin", action="store_true", help="exit when stdin closes")
    args = parser.parse_args(argv)

    from waitress.server import create_server

    app = make_app(json.loads(args.settings_json))
    server: Any = create_server(
        app, host=args.host, port=args.port, threads=args.threads, connection_limit=256, channel_timeout=60
    )
    if args.exit_with_stdin:
        threading.Thread(target=_exit_when_parent_goes, daemon=True).start()
    print(f"serving on {args.host}:{server.effective_port}", flush=True)
    server.run()


if __name__ == "__main__":
    main()
