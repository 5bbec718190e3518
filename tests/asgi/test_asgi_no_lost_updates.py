"""No lost updates on the ASGI stack: one visitor's concurrent requests against the
Starlette app under uvicorn, in one process and in two sharing the store. Every
key added is there afterwards; every flash message is shown once or still queued."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from tests.asgi.servers import deployed_asgi
from tests.support.servers import Deployment, get
from tests.system.test_no_lost_updates import KEYS, burst, workload

STORES = ("memory", "file", "sqlite", "postgresql", "mariadb", "redis", "rediscluster", "memcached")


#: (store, uvicorn processes); a memory store lives in one process.
SETUPS = [(store, n) for store in STORES for n in (1, 2) if not (store == "memory" and n == 2)]


@pytest.fixture(scope="module", params=SETUPS, ids=lambda p: f"{p[0]}-{p[1]}")
def deployment(request: pytest.FixtureRequest) -> Iterator[Deployment]:
    store, processes = request.param
    with deployed_asgi(store, "aconc", processes) as running:
        yield running


@pytest.mark.parametrize("delay_ms", [0, 5])
def test_no_lost_updates_on_uvicorn(deployment: Deployment, delay_ms: int) -> None:
    cookie = deployment.new_session()
    jobs = workload(seed=delay_ms)
    if delay_ms:
        jobs = [(path, {**params, "delay_ms": delay_ms}) for path, params in jobs]
    before = deployment.stats()
    replies = burst(deployment, cookie, jobs)
    stats = deployment.stats() - before
    print(
        f"\n[asgi {deployment.setup.name} x{len(deployment.servers)} delay_ms={delay_ms}] {len(jobs)} requests: "
        f"{stats['load']} loads, {stats['save']} saves, {stats['save_conflict']} conflicts",
        file=sys.stderr,
    )
    failed = [(path, r.status, r.text) for (path, _), r in zip(jobs, replies) if r.status != 200]
    assert not failed, f"{len(failed)} requests failed: {failed[:3]}\n{deployment.logs()}"
    assert not [r.set_cookies for r in replies if r.set_cookies], "no request changes the cookie"
    added = {params["m"] for _, params in jobs if "m" in params}
    popped = [m for (path, _), r in zip(jobs, replies) if path in ("/add", "/pop") for m in r.json()]
    for port in deployment.ports:
        data = get(port, "/dump", cookie=cookie).json()
        assert data == {"started": True, **{f"k{i:03d}": True for i in range(KEYS)}}
        left = get(port, "/peek", cookie=cookie).json()
        assert set(popped) | set(left) == added, "no flash message lost"
        assert not set(popped) & set(left), "none shown and still queued"
        assert len(left) == len(set(left)), "none queued twice"
