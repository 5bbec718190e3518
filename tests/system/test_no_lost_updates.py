"""No lost updates: one session, many concurrent requests, real servers.

For every server-side store, the app of ``serve_app.py`` runs in two waitress
processes (one for the memory store, which lives in a process) sharing one
store namespace. Sixteen client threads send requests for one session, spread
over both processes: each adds a distinct key, some also flash a message, some
pop the flash queue, and some only flash or only pop. Afterwards every key is
in the session, every message added was either shown or is still queued (none
lost), none that was shown is still queued, and nothing else appears. A pop is
carried out when its request commits, so two requests in flight at the same
moment that pop the same queue may both show a message; once either has
committed, the message is gone for good. With ``delay_ms`` the views sleep
between loading and saving, so nearly every write meets a conflict.

The last tests pin, in process, what the merge does around ``invalidate`` and
``regenerate_id``.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Iterator
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import Any

import pytest

from satchel.config import parse_session_settings
from satchel.manager import SessionManager
from satchel.stores.memory import MemoryStore
from tests.support.apps import SECRET
from tests.support.servers import ALL_STORES, Deployment, Reply, deployed, get

KEYS = 200
ONLY_FLASH = 20
ONLY_POP = 20
CLIENT_THREADS = 16
#: Seconds the whole burst may take before the test gives up (a hang, not a timing check).
BURST_LIMIT = 180.0


@pytest.fixture(scope="module", params=ALL_STORES)
def deployment(request: pytest.FixtureRequest) -> Iterator[Deployment]:
    with deployed(request.param, "conc") as running:
        yield running


def workload(seed: int) -> list[tuple[str, dict[str, Any]]]:
    """The requests of one burst, shuffled: (path, query)."""
    jobs: list[tuple[str, dict[str, Any]]] = []
    for i in range(KEYS):
        params: dict[str, Any] = {"k": f"k{i:03d}"}
        if i % 4 == 1:
            params["m"] = f"with-key-{i}"
        elif i % 4 == 3:
            params["pop"] = 1
        jobs.append(("/add", params))
    jobs += [("/flash", {"m": f"alone-{i}"}) for i in range(ONLY_FLASH)]
    jobs += [("/pop", {}) for _ in range(ONLY_POP)]
    random.Random(seed).shuffle(jobs)
    return jobs


def burst(deployment: Deployment, cookie: str, jobs: list[tuple[str, dict[str, Any]]]) -> list[Reply]:
    """Send every job from CLIENT_THREADS threads, alternating between the servers."""
    ports = deployment.ports
    with ThreadPoolExecutor(CLIENT_THREADS) as pool:
        futures = [
            pool.submit(get, ports[n % len(ports)], path, params, cookie) for n, (path, params) in enumerate(jobs)
        ]
        done, pending = wait(futures, timeout=BURST_LIMIT, return_when=FIRST_EXCEPTION)
        if pending:
            for future in pending:
                future.cancel()
            failed = [f.exception() for f in done if f.exception() is not None]
            raise AssertionError(
                f"{len(pending)} of {len(jobs)} requests unfinished; first error: {failed[:1]}\n{deployment.logs()}"
            )
        return [future.result() for future in futures]


@pytest.mark.parametrize("delay_ms", [0, 5])
def test_no_lost_updates(deployment: Deployment, delay_ms: int) -> None:
    cookie = deployment.new_session()
    jobs = workload(seed=delay_ms)
    if delay_ms:
        jobs = [(path, {**params, "delay_ms": delay_ms}) for path, params in jobs]
    before = deployment.stats()

    replies = burst(deployment, cookie, jobs)
    stats = deployment.stats() - before
    print(
        f"\n[{deployment.setup.name} delay_ms={delay_ms}] {len(jobs)} requests: {stats['load']} loads, "
        f"{stats['save']} saves, {stats['save_conflict']} conflicts, "
        f"{stats['conflict_errors']} out of merge retries",
        file=sys.stderr,
    )

    # Everything that went wrong, so one failing run tells the whole story.
    problems: list[str] = []
    failed = [(path, params, r.status, r.text) for (path, params), r in zip(jobs, replies) if r.status != 200]
    if failed:
        problems.append(
            f"{len(failed)} requests failed ({stats['conflict_errors']} ran out of merge retries): {failed[:3]}"
        )
    cookies = [r.set_cookies for r in replies if r.set_cookies]
    if cookies:
        problems.append(f"requests were told to change or drop the cookie: {cookies[:3]}")
    ok = [(path, params) for (path, params), r in zip(jobs, replies) if r.status == 200]
    added = [params["m"] for path, params in ok if "m" in params]
    popped = [
        m for (path, _), r in zip(jobs, replies) if r.status == 200 and path in ("/add", "/pop") for m in r.json()
    ]

    for port in deployment.ports:  # every process sees the same final state
        data = get(port, "/dump", cookie=cookie).json()
        lost = sorted(params["k"] for path, params in ok if path == "/add" and data.get(params["k"]) is not True)
        if lost:
            problems.append(f"lost updates: {len(lost)} keys of requests answered 200 are missing: {lost[:10]}")
        missing = [f"k{i:03d}" for i in range(KEYS) if f"k{i:03d}" not in data]
        if missing:
            problems.append(f"{len(missing)} of the {KEYS} keys are missing: {missing[:10]}")
        unexpected = set(data) - {"started"} - {f"k{i:03d}" for i in range(KEYS)}
        if unexpected or data.get("started") is not True:
            problems.append(f"unexpected session content: {sorted(unexpected)}, started={data.get('started')}")
        left = get(port, "/peek", cookie=cookie).json()
        if set(popped) | set(left) != set(added) or len(left) != len(set(left)) or set(popped) & set(left):
            problems.append(
                f"flash on port {port}: lost {sorted(set(added) - set(popped) - set(left))}, "
                f"not flashed by a successful request {sorted((set(popped) | set(left)) - set(added))}, "
                f"shown and still queued {sorted(set(popped) & set(left))}, queued twice {len(left) - len(set(left))}"
            )
        if problems:
            break
    assert not problems, "\n".join(problems) + "\n" + deployment.logs()


# -- invalidate and regenerate_id against concurrent writers, in process -------------------


@pytest.fixture
def manager() -> SessionManager:
    return SessionManager(parse_session_settings({"session.secret": SECRET}), MemoryStore())


def cookie_of(headers: list[str]) -> str:
    return headers[0].split(";", 1)[0].split("=", 1)[1]


def started(manager: SessionManager, **data: Any) -> str:
    session = manager.open(None)
    session.update(data)
    return cookie_of(manager.commit(session))


def test_invalidate_wins_over_requests_that_loaded_before_it(manager: SessionManager) -> None:
    cookie = started(manager, user="alice")
    late_writer, logout = manager.open(cookie), manager.open(cookie)
    logout.invalidate()
    manager.commit(logout)
    late_writer["cart"] = ["apple"]
    late_writer.flash("added")
    headers = manager.commit(late_writer)
    assert headers and "Max-Age=0" in headers[0], "the late request's client is told the session ended"
    assert manager.open(cookie).new


def test_regenerate_id_moves_the_data(manager: SessionManager) -> None:
    cookie = started(manager, cart=["apple"])
    login = manager.open(cookie)
    login.regenerate_id()
    login["user"] = "alice"
    new_cookie = cookie_of(manager.commit(login))
    assert new_cookie != cookie
    assert dict(manager.open(new_cookie)) == {"cart": ["apple"], "user": "alice"}
    assert manager.open(cookie).new, "the old id no longer opens the session"


def test_regenerate_id_keeps_a_change_committed_while_it_ran(manager: SessionManager) -> None:
    cookie = started(manager, x=1)
    login, other = manager.open(cookie), manager.open(cookie)
    other["cart"] = ["apple"]
    assert manager.commit(other) == []  # committed, before the login commits
    login.regenerate_id()
    login["user"] = "alice"
    new_cookie = cookie_of(manager.commit(login))
    assert dict(manager.open(new_cookie)) == {"x": 1, "cart": ["apple"], "user": "alice"}
