"""The demo's ASGI twin: a Starlette app on the Pyramid demo's sessions.

Served beside the Pyramid demo with the same ``session.*`` settings (the
``[app:main]`` section of ``demo.ini``), it sees the same visitor: who logged
in there, the notes, the flash messages; a note added here shows there.

    uvicorn --factory satchel.demo.asgi:from_ini --port 6544    # beside `python3 dev.py demo`
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from satchel.asgi import SessionMiddleware
from satchel.config import find_section, section_settings

from ..session import Session
from . import PAGE, SITE, STYLE


def session_of(request: Request) -> Session:
    """The request's satchel session (Starlette types ``request.session`` as a dict)."""
    session: Session = request.session  # type: ignore[assignment]
    return session

DEMO_INI = Path(__file__).resolve().parents[2] / "demo.ini"


def page(request: Request, title: str, body: str, status: int = 200) -> Response:
    flashes = "".join(
        f'<p class="flash" role="status">{html.escape(str(m))}</p>' for m in session_of(request).pop_flash()
    )
    text = PAGE.format(head_title=f"{title} · {SITE}", style=STYLE, site=SITE, title=title, flashes=flashes, body=body)
    return HTMLResponse(text, status_code=status)


def csrf_field(request: Request) -> str:
    return f'<input type="hidden" name="csrf_token" value="{html.escape(session_of(request).get_csrf_token())}">'


async def form(request: Request) -> dict[str, str] | None:
    """The posted form, or None when its CSRF token is not the session's."""
    fields = {name: values[0] for name, values in parse_qs((await request.body()).decode("utf-8")).items()}
    return fields if fields.get("csrf_token") == session_of(request).get_csrf_token() else None


async def home(request: Request) -> Response:
    session = request.session
    user = session.get("user")
    who = f'<p>Logged in as <strong id="user">{html.escape(user)}</strong> (seen from ASGI).</p>' if user else (
        "<p>Not logged in.</p>"
    )
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in session.get("notes", []))
    body = f"""{who}
    <p>Visits counted by the Pyramid app: <strong id="visits">{session.get('visits', 0)}</strong>.</p>
    <h2>Notes</h2><ul id="notes">{notes}</ul>
    <form method="post" action="/notes">{csrf_field(request)}
    <label>Note <input name="note" required></label> <button>Add note</button></form>"""
    return page(request, "satchel demo, ASGI twin", body)


async def add_note(request: Request) -> Response:
    fields = await form(request)
    if fields is None:
        return page(request, "Bad request", '<p class="error">This form was stale or forged.</p>', status=400)
    note = fields.get("note", "").strip()[:200]
    if note:
        request.session.setdefault("notes", []).append(note)
        session_of(request).flash(f"Saved note from ASGI: {note}")
    return RedirectResponse("/", status_code=303)


def create_app(settings: dict[str, Any]) -> SessionMiddleware:
    app = Starlette(routes=[Route("/", home), Route("/notes", add_note, methods=["POST"])])
    return SessionMiddleware(app, settings={k: v for k, v in settings.items() if k.startswith("session.")})


def from_ini(path: str | Path = DEMO_INI) -> SessionMiddleware:
    """The twin on the settings of ``demo.ini``'s ``[app:main]`` (``%(here)s`` resolved)."""
    return create_app(section_settings(find_section(path, "app:main")))
