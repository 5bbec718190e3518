"""One visitor, two app processes: the session follows the visitor (issue 3).

Two waitress processes run the app of ``serve_app.py`` on one store; one client
alternates between them. Whatever one process wrote, the other reads at once.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.servers import SHARED_STORES, Deployment, deployed

ROUNDS = 20


@pytest.fixture(scope="module", params=SHARED_STORES)
def deployment(request: pytest.FixtureRequest) -> Iterator[Deployment]:
    with deployed(request.param, "procs") as running:
        assert len(running.servers) == 2
        yield running


def test_counter_alternating_between_processes(deployment: Deployment) -> None:
    cookie = deployment.new_session()
    first, second = deployment.servers
    for n in range(1, ROUNDS + 1):
        server = (first, second)[n % 2]
        reply = server.get("/incr", cookie=cookie)
        assert reply.status == 200, reply.text
        assert reply.json() == n, f"request {n} on {server.log_path.stem} saw {reply.json() - 1} before it"
        assert reply.cookie() is None, "the session keeps its id and its cookie"
    for server in (first, second):
        assert server.get("/dump", cookie=cookie).json() == {"started": True, "count": ROUNDS}


def test_flash_shown_by_the_other_process_once(deployment: Deployment) -> None:
    cookie = deployment.new_session()
    first, second = deployment.servers
    assert first.get("/flash", {"m": "saved"}, cookie).status == 200
    assert second.get("/pop", cookie=cookie).json() == ["saved"]
    assert first.get("/pop", cookie=cookie).json() == []
    assert second.get("/peek", cookie=cookie).json() == []


def test_unknown_cookie_is_not_adopted_by_either_process(deployment: Deployment) -> None:
    cookie = deployment.new_session()
    first, second = deployment.servers
    forged = "A" * 43 + "." + cookie.rsplit(".", 1)[1]
    for server in (first, second):
        reply = server.get("/dump", cookie=forged)
        assert reply.status == 200 and reply.json() == {}
    # The real session is untouched by that.
    assert second.get("/dump", cookie=cookie).json() == {"started": True}
