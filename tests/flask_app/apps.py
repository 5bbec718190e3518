"""A Flask app that exercises ``flask.session``, ``flash`` and ``get_flashed_messages``."""

from __future__ import annotations

from typing import Any

from flask import Flask, flash, get_flashed_messages, jsonify, request, session


def make_flask(**config: Any) -> Flask:
    app = Flask(__name__)
    app.config.update(config)

    @app.route("/nothing")
    def nothing() -> str:
        return "no session here"

    @app.route("/incr")
    def incr() -> str:
        session["count"] = session.get("count", 0) + 1
        return str(session["count"])

    @app.route("/read")
    def read() -> str:
        return str(session.get("count"))

    @app.route("/cart/add/<item>")
    def add(item: str) -> Any:
        session.setdefault("cart", []).append(item)
        return jsonify(session["cart"])

    @app.route("/keys")
    def keys() -> Any:
        return jsonify(sorted(session.keys()))

    @app.route("/flash")
    def flash_view() -> str:
        flash(request.args.get("message", "saved!"), request.args.get("category", "message"))
        return "flashed"

    @app.route("/messages")
    def messages() -> Any:
        return jsonify(get_flashed_messages(with_categories=True))

    @app.route("/login")
    def login() -> str:
        session.regenerate_id()
        session.bind_user("alice")
        session["user"] = "alice"
        session.permanent = True
        return "welcome"

    @app.route("/logout")
    def logout() -> str:
        session.invalidate()
        return "bye"

    @app.route("/broken")
    def broken() -> str:
        session["broken"] = True
        raise RuntimeError("the view failed")

    return app
