"""FastAPI's ``request.session`` on satchel's middleware, on every server-side store."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from starlette.testclient import TestClient

from satchel.asgi import SessionMiddleware
from tests.support.apps import BASE_SETTINGS
from tests.web.conftest import store_settings as store_settings


def make_fastapi(settings: dict[str, Any]) -> FastAPI:
    app = FastAPI()
    app.add_middleware(SessionMiddleware, settings={**BASE_SETTINGS, **settings})

    @app.get("/cart/add/{item}")
    async def add(item: str, request: Request) -> list[str]:
        cart = request.session.setdefault("cart", [])
        cart.append(item)
        return list(cart)

    @app.get("/cart")
    def show(request: Request) -> list[str]:
        return list(request.session.get("cart", []))

    return app


def test_cart_persists_across_requests_and_app_restarts_on_each_store(store_settings: dict[str, Any]) -> None:
    with TestClient(make_fastapi(store_settings)) as client:
        assert client.get("/cart").json() == []
        assert client.get("/cart/add/apple").json() == ["apple"]
        assert client.get("/cart/add/pear").json() == ["apple", "pear"]
        assert client.get("/cart").json() == ["apple", "pear"]
    if store_settings["session.type"] == "memory":
        return  # a memory store lives and dies with its app
    with TestClient(make_fastapi(store_settings)) as again:
        again.cookies = client.cookies
        assert again.get("/cart").json() == ["apple", "pear"]
