"""Log out everywhere misses nobody: concurrent logins of one user, across two app
processes on one store, are all indexed, and revoking ends every one of them."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.support.servers import SHARED_STORES, Deployment, deployed, get

LOGINS = 40


@pytest.fixture(scope="module", params=SHARED_STORES)
def deployment(request: pytest.FixtureRequest) -> Iterator[Deployment]:
    with deployed(request.param, "everywhere") as running:
        yield running


def test_every_concurrent_login_is_revoked(deployment: Deployment) -> None:
    user = f"user-{secrets.token_hex(4)}"
    ports = deployment.ports

    def log_in(n: int) -> str:
        reply = get(ports[n % len(ports)], "/login", {"user": user})
        cookie = reply.cookie()
        assert reply.status == 200 and cookie, (reply.status, reply.text)
        return cookie

    with ThreadPoolExecutor(16) as pool:
        cookies = list(pool.map(log_in, range(LOGINS)))
    deployment.cookies.extend(cookies)
    assert all(get(ports[0], "/whoami", cookie=c).text == user for c in cookies)

    assert get(ports[1 % len(ports)], "/revoke", {"user": user}).json() == LOGINS
    survivors = [c for c in cookies if get(ports[0], "/whoami", cookie=c).text != "None"]
    assert survivors == []
