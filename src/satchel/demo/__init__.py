"""A small Pyramid app that shows satchel at work: ``python3 dev.py demo`` in a checkout.

Its home page is a guided tour: a counter, logging in (a new session id at login,
invalidation at logout), flash messages after redirects, a CSRF-protected form, a
cached view and an inspector that shows what the session holds. It needs the
``demo`` extra (Pyramid and waitress) and is never imported by satchel itself.
``/metrics`` shows satchel's session and cache metrics in Prometheus' text format
when ``opentelemetry-exporter-prometheus`` is installed too.
"""

from __future__ import annotations

import html
import importlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from pyramid.config import Configurator
from pyramid.csrf import check_csrf_token, get_csrf_token
from pyramid.exceptions import BadCSRFToken
from pyramid.httpexceptions import HTTPSeeOther
from pyramid.response import Response

from ..telemetry import api_default

SITE = "satchel demo"

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 44rem; margin: 2rem auto; padding: 0 1rem;
       line-height: 1.5; color: #222; }
header { display: flex; gap: 1rem; align-items: baseline; border-bottom: 1px solid #ddd; margin-bottom: 1rem; }
header strong { margin-right: auto; }
.flash { background: #e7f5e7; border: 1px solid #9c9; padding: .5rem 1rem; }
.error { background: #fbe9e9; border: 1px solid #c99; padding: .5rem 1rem; }
.tour li { margin-bottom: .5rem; }
form { margin: .5rem 0; }
pre { background: #f4f4f4; padding: 1rem; overflow: auto; }
"""

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{head_title}</title><style>{style}</style></head>
<body><header><strong>{site}</strong><nav><a href="/">Tour</a> <a href="/session">Session inspector</a>
<a href="/cached">Cached view</a> <a href="/docs/">Documentation</a></nav></header>
<h1>{title}</h1>{flashes}{body}</body></html>"""


def page(request: Any, title: str, body: str, status: int = 200) -> Response:
    flashes = "".join(
        f'<p class="flash" role="status">{html.escape(str(m))}</p>' for m in request.session.pop_flash()
    )
    head_title = SITE if title == SITE else f"{title} · {SITE}"
    text = PAGE.format(head_title=head_title, style=STYLE, site=SITE, title=title, flashes=flashes, body=body)
    return Response(text, status=status, charset="utf-8")


def csrf_field(request: Any) -> str:
    return f'<input type="hidden" name="csrf_token" value="{html.escape(get_csrf_token(request))}">'


def login_form(request: Any) -> str:
    return f"""<form method="post" action="/login">{csrf_field(request)}
    <label>Name <input name="user" required></label> <button>Log in</button></form>"""


TOUR = """<ol class="tour">
<li><strong>Counter.</strong> Reload this page: the number above goes up. The session saves itself
at the end of each request; nothing calls <code>save()</code>.</li>
<li><strong>Login.</strong> Type a name below. The session gets a new id when you do
(<code>regenerate_id()</code>), so an id seen before the login is worth nothing after it; the
<a href="/session">inspector</a> shows the data carried over.</li>
<li><strong>Flash messages.</strong> The green note after each form is a flash message: shown once,
after the redirect, then gone.</li>
<li><strong>CSRF.</strong> Every form carries the session's CSRF token. Change the hidden field in your
browser's developer tools and submit: the request is refused with a clear message.</li>
<li><strong>Cache.</strong> The <a href="/cached">cached view</a> is computed once and served from a
cache region for a minute.</li>
<li><strong>Session inspector.</strong> <a href="/session">What the session holds</a>, as JSON.</li>
</ol>"""


def home(request: Any) -> Response:
    session = request.session
    session["visits"] = session.get("visits", 0) + 1
    user = session.get("user")
    if user:
        who = f"""<p>Logged in as <strong id="user">{html.escape(user)}</strong>.</p>
        <form method="post" action="/logout">{csrf_field(request)}<button>Log out</button></form>"""
    else:
        who = login_form(request)
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in session.get("notes", []))
    body = f"""<p>You have seen this page <strong id="visits">{session['visits']}</strong> times.</p>
    {TOUR}
    <h2>Who you are</h2>{who}
    <h2>Notes</h2><ul id="notes">{notes}</ul>
    <form method="post" action="/notes">{csrf_field(request)}
    <label>Note <input name="note" required></label> <button>Add note</button></form>
    <p>Read how it works in the <a href="/docs/">documentation</a>.</p>
    <p>What satchel measured so far, as Prometheus reads it: <a href="/metrics">metrics</a>.</p>"""
    return page(request, SITE, body)


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


def login_page(request: Any) -> Response:
    user = request.session.get("user")
    if user:
        body = f'<p>You are logged in as <strong id="user">{html.escape(user)}</strong>. <a href="/">Back</a></p>'
    else:
        body = f"<p>Any name will do: this demo has no passwords.</p>{login_form(request)}"
    return page(request, "Login", body)


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
    return page(request, "Session inspector", body)


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


#: What /metrics needs beside the demo extra; the exporter brings the OpenTelemetry SDK and prometheus_client.
METRICS_INSTALL = "pip install opentelemetry-exporter-prometheus"

NO_METRICS = f"""<p>This page shows satchel's session and cache metrics, read through OpenTelemetry,
in Prometheus' text format. It needs the OpenTelemetry SDK, its Prometheus exporter and
<code>prometheus_client</code>, which are not installed here:</p>
<pre>{METRICS_INSTALL}</pre>
<p>Install them into the demo's environment and restart the demo.</p>"""

#: The OpenTelemetry SDK's metrics, its Prometheus exporter and prometheus_client.
PROMETHEUS_MODULES = ("opentelemetry.sdk.metrics", "opentelemetry.exporter.prometheus", "prometheus_client")

#: Prometheus' text exposition of what OpenTelemetry measured: its body and content type.
Exposition = Callable[[], tuple[bytes, str]]


def optional_module(name: str) -> ModuleType | None:
    """The module ``name``, or None when it (or what it needs) is not installed."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def prometheus_exposition() -> Exposition | None:
    """What /metrics serves, or None unless the OpenTelemetry SDK, its Prometheus exporter and
    prometheus_client are installed.

    Unless the application set a meter provider already, this sets the SDK's, read by a
    ``PrometheusMetricReader``. Call it before satchel builds its session manager and cache
    regions: their telemetry (``auto``) is on only when a provider is set by then.
    """
    sdk, exporter, client = (optional_module(name) for name in PROMETHEUS_MODULES)
    if sdk is None or exporter is None or client is None:
        return None
    from opentelemetry import metrics

    if api_default(metrics.get_meter_provider()):
        metrics.set_meter_provider(sdk.MeterProvider(metric_readers=[exporter.PrometheusMetricReader()]))

    def exposition() -> tuple[bytes, str]:
        return client.generate_latest(), client.CONTENT_TYPE_LATEST

    return exposition


def metrics_view(exposition: Exposition | None) -> Callable[[Any], Response]:
    """The /metrics view: the exposition (a scrape opens no session), or a page that says what to install."""

    def show_metrics(request: Any) -> Response:
        if exposition is None:
            return page(request, "Metrics", NO_METRICS)
        body, content_type = exposition()
        return Response(body, content_type=content_type, charset=None)

    return show_metrics


def bad_csrf(exc: Exception, request: Any) -> Response:
    body = """<p class="error">This form was stale or forged (its CSRF token did not match).
    Nothing was changed. <a href="/">Go back</a> and try again.</p>"""
    return page(request, "Bad request", body, status=400)


def not_found(exc: Exception, request: Any) -> Response:
    if request.path.startswith("/docs"):
        body = """<p>The documentation has not been built yet: run <code>python3 dev.py docs</code>
        in the checkout, then reload.</p>"""
    else:
        body = '<p class="error">There is no such page here. <a href="/">Back to the tour</a>.</p>'
    return page(request, "Not found", body, status=404)


def main(global_config: Any, **settings: Any) -> Any:
    """The WSGI app; ``demo.docs_dir`` (optional) is the built documentation site to serve under /docs/."""
    exposition = prometheus_exposition()  # before satchel's telemetry looks for a meter provider
    with Configurator(settings=settings) as config:
        config.include("satchel")
        routes = {
            "home": ("/", home, None),
            "notes": ("/notes", add_note, "POST"),
            "login": ("/login", login, "POST"),
            "logout": ("/logout", logout, "POST"),
            "session": ("/session", show_session, None),
            "cached": ("/cached", cached, None),
            "metrics": ("/metrics", metrics_view(exposition), None),
        }
        for name, (pattern, view, method) in routes.items():
            config.add_route(name, pattern)
            config.add_view(view, route_name=name, request_method=method)
        config.add_view(login_page, route_name="login", request_method="GET")
        docs_dir = settings.get("demo.docs_dir")
        if docs_dir:
            config.add_static_view("docs", str(Path(docs_dir).resolve()))
        config.add_view(bad_csrf, context=BadCSRFToken)
        config.add_notfound_view(not_found)
        return config.make_wsgi_app()
