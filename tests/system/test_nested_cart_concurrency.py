"""Concurrent requests changing one nested cart lose nothing.

For every server-side store, the app of ``serve_app.py`` runs in two waitress
processes of 8 threads (one for the memory store, which lives in a process)
sharing one store namespace. Sixteen client threads send ``/cart?i=N`` for one
session, spread over both processes: each request puts item N into the nested
dict ``session["cart"]`` (created by whichever request comes first), appends N
to the list ``session["appended"]`` and increments ``session["items"]``.
Afterwards every item is in the cart, every N appended exactly once, and the
counter equals the number of requests. With ``delay_ms`` the views sleep between
loading and saving, so nearly every write meets a conflict.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.support.servers import ALL_STORES, Deployment, deployed, get

ITEMS = 160
CLIENT_THREADS = 16
APP_THREADS = 8


@pytest.fixture(scope="module", params=ALL_STORES)
def deployment(request: pytest.FixtureRequest) -> Iterator[Deployment]:
    with deployed(request.param, "cart", threads=APP_THREADS) as running:
        yield running


@pytest.mark.parametrize("delay_ms", [0, 5])
def test_every_item_added_to_a_nested_cart_concurrently_is_there_once(deployment: Deployment, delay_ms: int) -> None:
    cookie = deployment.new_session()
    items = list(range(ITEMS))
    random.Random(delay_ms).shuffle(items)
    ports = deployment.ports
    before = deployment.stats()
    with ThreadPoolExecutor(CLIENT_THREADS) as pool:
        replies = list(
            pool.map(
                lambda n_item: get(
                    ports[n_item[0] % len(ports)], "/cart", {"i": n_item[1], "delay_ms": delay_ms}, cookie
                ),
                enumerate(items),
            )
        )
    stats = deployment.stats() - before
    print(
        f"\n[{deployment.setup.name} delay_ms={delay_ms}] {ITEMS} requests: {stats['save']} saves, "
        f"{stats['save_conflict']} conflicts, {stats['merges']} merges, {stats['overwritten']} leaves overwritten",
        file=sys.stderr,
    )
    failed = [(item, r.status, r.text[:200]) for item, r in zip(items, replies, strict=True) if r.status != 200]
    assert not failed, f"{len(failed)} requests failed: {failed[:3]}\n{deployment.logs()}"
    for port in ports:
        data = get(port, "/dump", cookie=cookie).json()
        assert data["cart"] == {str(i): i for i in range(ITEMS)}, f"cart items missing: {ITEMS - len(data['cart'])}"
        assert sorted(data["appended"]) == list(range(ITEMS)), "an append was lost or applied twice"
        assert data["items"] == ITEMS, "increments did not add up"
    assert stats["overwritten"] == 0, "no two requests changed the same leaf"
