"""A small Pyramid app that shows satchel at work: ``python3 dev.py demo``.

Counter, log in and out (new id at login, invalidate at logout), flash messages
after redirects, a CSRF-protected form, and a page that shows what the session
holds.
"""

from __future__ import annotations

import html
import json
import time
from typing import Any

from pyramid.config import Configurator
from pyramid.csrf import check_csrf_token, get_csrf_token
from pyramid.exceptions import BadCSRFToken
from pyramid.httpexceptions import HTTPSeeOther
from pyramid.response import Response

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} · satchel demo</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 42rem; margin: 2rem auto; padding: 0 1rem; }}
.flash {{ background: #e7f5e7; border: 1px solid #9c9; padding: .5rem 1rem; }}
.error {{ background: #fbe9e9; border: 1px solid #c99; padding: .5rem 1rem; }}
nav a {{ margin-right: 1rem; }}
pre {{ background: #f4f4f4; padding: 1rem; overflow: auto; }}
</style></head>
<body><nav><a href="/">Home</a><a href="/session">Session</a><a href="/cached">Cached</a></nav>
<h1>{title}</h1>{flashes}{body}</body></html>"""


def page(request: Any, title: str, body: str, status: int = 200) -> Response:
    flashes = "".join(
        f'<p class="flash" role="status">{html.escape(str(m))}</p>' for m in request.session.pop_flash()
    )
    return Response(PAGE.format(title=title, flashes=flashes, body=body), status=status, charset="utf-8")


def csrf_field(request: Any) -> str:
    return f'<input type="hidden" name="csrf_token" value="{html.escape(get_csrf_token(request))}">'


def home(request: Any) -> Response:
    session = request.session
    session["visits"] = session.get("visits", 0) + 1
    user = session.get("user")
    if user:
        who = f"""<p>Logged in as <strong id="user">{html.escape(user)}</strong>.</p>
        <form method="post" action="/logout">{csrf_field(request)}<button>Log out</button></form>"""
    else:
        who = f"""<form method="post" action="/login">{csrf_field(request)}
        <label>Name <input name="user" required></label> <button>Log in</button></form>"""
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in session.get("notes", []))
    body = f"""<p>You have seen this page <strong id="visits">{session['visits']}</strong> times.</p>
    {who}
    <h2>Notes</h2><ul id="notes">{notes}</ul>
    <form method="post" action="/notes">{csrf_field(request)}
    <label>Note <input name="note" required></label> <button>Add note</button></form>"""
    return page(request, "satchel demo", body)


def add_note(request: Any) -> HTTPSeeOther:
    check_csrf_token(request)
    note = request.POST.get("note", "").strip()[:200]
    if note:
        request.session.setdefault("notes", []).append(note)
        request.session.flash(f"Saved note: {note}")
    return HTTPSeeOther("/")


def login(request: Any) -> HTTPSeeOther:
    check_csrf_token(request)
    user = request.POST.get("user", "").strip()[:60] or "guest"
    request.session.regenerate_id()
    request.session["user"] = user
    request.session.new_csrf_token()
    request.session.flash(f"Welcome, {user}!")
    return HTTPSeeOther("/")


def logout(request: Any) -> HTTPSeeOther:
    check_csrf_token(request)
    request.session.invalidate()
    request.session.flash("You are logged out.")
    return HTTPSeeOther("/")


def show_session(request: Any) -> Response:
    session = request.session
    state = {
        "new": session.new,
        "created": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(session.created)),
        "data": dict(session),
        "flash": session.peek_flash(),
    }
    body = f"<pre id='state'>{html.escape(json.dumps(state, indent=2))}</pre>"
    return page(request, "What the session holds", body)


def cached(request: Any) -> Response:
    computed_at = _computed_at(request)
    body = f"""<p>This was computed at <strong id="computed">{computed_at}</strong>
    and is cached in the <code>short_term</code> region for 60 seconds.</p>"""
    return page(request, "Cached view", body)


def _computed_at(request: Any) -> str:
    def create() -> str:
        return time.strftime("%H:%M:%S", time.localtime()) + f".{int(time.time() * 1000) % 1000:03d}"

    try:
        region = request.cache_region("short_term")
    except AttributeError:  # the cache is not configured
        return create()
    value: str = region.get_or_create("demo.cached", create)
    return value


def bad_csrf(exc: Exception, request: Any) -> Response:
    body = """<p class="error">This form was stale or forged (its CSRF token did not match).
    Nothing was changed. <a href="/">Go back</a> and try again.</p>"""
    return page(request, "Bad request", body, status=400)


def main(global_config: Any, **settings: Any) -> Any:
    with Configurator(settings=settings) as config:
        config.include("satchel")
        config.add_route("home", "/")
        config.add_route("notes", "/notes")
        config.add_route("login", "/login")
        config.add_route("logout", "/logout")
        config.add_route("session", "/session")
        config.add_route("cached", "/cached")
        config.add_view(home, route_name="home")
        config.add_view(add_note, route_name="notes", request_method="POST")
        config.add_view(login, route_name="login", request_method="POST")
        config.add_view(logout, route_name="logout", request_method="POST")
        config.add_view(show_session, route_name="session")
        config.add_view(cached, route_name="cached")
        config.add_view(bad_csrf, context=BadCSRFToken)
        return config.make_wsgi_app()
