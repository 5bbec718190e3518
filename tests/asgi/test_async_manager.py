"""The async manager drives the same policy as the sync one: a few rules checked
through it, on the memory store and a fake clock."""

from __future__ import annotations

import asyncio

import pytest

from satchel.aio import AsyncSessionManager
from satchel.config import parse_session_settings
from satchel.stores.aio import AsyncMemoryStore
from satchel.testing import FakeClock
from tests.support.apps import BASE_SETTINGS


@pytest.fixture
def manager(clock: FakeClock) -> AsyncSessionManager:
    settings = parse_session_settings({**BASE_SETTINGS, "session.timeout": "600"})
    return AsyncSessionManager(settings, AsyncMemoryStore(clock=clock), clock=clock)


def cookie_of(headers: list[str]) -> str:
    return headers[0].split(";", 1)[0].split("=", 1)[1]


def test_concurrent_commits_of_one_session_merge(manager: AsyncSessionManager) -> None:
    async def scenario() -> dict[str, object]:
        first = await manager.open(None)
        first["started"] = True
        cookie = cookie_of(await manager.commit(first))
        sessions = [await manager.open(cookie) for _ in range(20)]
        for n, session in enumerate(sessions):
            session[f"k{n}"] = n
            session.flash(f"m{n}")
        await asyncio.gather(*(manager.commit(session) for session in sessions))
        final = await manager.open(cookie)
        assert sorted(final.pop_flash()) == sorted(f"m{n}" for n in range(20))
        return dict(final)

    assert asyncio.run(scenario()) == {"started": True, **{f"k{n}": n for n in range(20)}}


def test_idle_session_expires_by_the_clock(manager: AsyncSessionManager, clock: FakeClock) -> None:
    async def scenario() -> None:
        session = await manager.open(None)
        session["x"] = 1
        cookie = cookie_of(await manager.commit(session))
        assert (await manager.open(cookie)).get("x") == 1
        clock.advance(601)
        assert (await manager.open(cookie)).new

    asyncio.run(scenario())


def test_log_out_everywhere_ends_every_session_of_the_user_but_this_one(manager: AsyncSessionManager) -> None:
    async def scenario() -> None:
        cookies = []
        for _ in range(3):
            session = await manager.open(None)
            session.bind_user("alice")
            session["user"] = "alice"
            cookies.append(cookie_of(await manager.commit(session)))
        assert len(await manager.user_sessions("alice")) == 3
        keep = await manager.open(cookies[0])
        assert await manager.revoke_user_sessions("alice", keep=keep) == 2
        assert (await manager.open(cookies[0])).get("user") == "alice"
        assert (await manager.open(cookies[1])).new and (await manager.open(cookies[2])).new

    asyncio.run(scenario())


def test_cookie_mode_needs_no_store() -> None:
    settings = parse_session_settings(
        {**BASE_SETTINGS, "session.type": "cookie", "session.encrypt_key": "async-cookie-mode-key-0123456789abcdef"}
    )
    manager = AsyncSessionManager(settings)
    assert manager.store is None and not manager.needs_store("sid=anything")

    async def scenario() -> None:
        session = manager.open_without_io(None)
        session["x"] = 1
        headers = await manager.commit(session)
        reopened = await manager.open_request(headers[0].split(";", 1)[0])
        assert reopened["x"] == 1
        assert await manager.commit(reopened) == []
        # No record, so no id: the commits took no lock and drew none.
        assert not session.has_id and not reopened.has_id

    asyncio.run(scenario())
