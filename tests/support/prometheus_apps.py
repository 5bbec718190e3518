"""Apps that serve Prometheus' ``/metrics``, each run in a process of its own:
OpenTelemetry's global meter provider is set once per process, and in the test
process it would turn telemetry's ``auto`` on for every later test.

Run as ``python -m tests.support.prometheus_apps SCENARIO DIR`` from the checkout;
DIR holds the file store's data. It prints one line of JSON: what the scrape of
``/metrics`` answered (``status``, ``content_type``, ``set_cookie``, ``body``)
and what the scenario adds. Scenarios:

- ``demo``: the demo app as demo.ini builds it, every session store operation
  timed: a visit, a login, a note, the cached view twice, then a scrape by a
  client with no cookie (``cookies``: the visitor's before and after the login);
- ``app_provider``: the application set a meter provider of its own (the SDK's,
  with an in-memory reader) before the demo's ``main()``;
- ``missing``: ``prometheus_client`` cannot be imported (as if not installed);
- ``snippet``: the Pyramid app of docs/operations.md's "A Prometheus endpoint",
  its code block run as written, plus one view that uses the session.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from webtest import TestApp

ROOT = Path(__file__).resolve().parents[2]
SNIPPET_HEADING = "### A Prometheus endpoint"


def demo_settings(here: Path) -> dict[str, str]:
    """demo.ini's ``[app:main]``, its file store under ``here``."""
    from paste.deploy import appconfig

    ini = ROOT / "demo.ini"
    settings = dict(appconfig(f"config:{ini}", relative_to=str(ini.parent)))
    settings["session.data_dir"] = str(here / "data")
    settings["session.lock_dir"] = str(here / "lock")
    settings["demo.docs_dir"] = str(here / "docs")  # not built
    return settings


def scrape(app: Any) -> dict[str, Any]:
    """GET /metrics as a scraper does: no cookie."""
    res = TestApp(app).get("/metrics")
    return {
        "status": res.status_int,
        "content_type": res.headers["Content-Type"],
        "set_cookie": "Set-Cookie" in res.headers,
        "body": res.text,
    }


def submit(res: Any, action: str, **fields: str) -> Any:
    """Fill and submit the page's form that posts to ``action``; follow the redirect."""
    form = next(form for form in res.forms.values() if form.action == action)
    for name, value in fields.items():
        form[name] = value
    return form.submit().follow()


def every_operation_timed(router: Any) -> bool:
    """Time every session store operation, not a sample of them, so that a few requests
    fill the duration histogram. False when the session manager has no telemetry."""
    from pyramid.interfaces import ISessionFactory

    telemetry = router.registry.queryUtility(ISessionFactory).manager.telemetry
    if telemetry is None:
        return False
    telemetry.duration_interval = 0.0  # every duration
    return True


def demo(here: Path) -> dict[str, Any]:
    from satchel.demo import main

    router = main({}, **demo_settings(here))
    timed = every_operation_timed(router)
    browser = TestApp(router)
    home = browser.get("/")
    cookies = [browser.cookies["satchel_demo"]]
    home = submit(home, "/login", user="ada")
    submit(home, "/notes", note="buy milk")
    browser.get("/cached")
    browser.get("/cached")
    cookies.append(browser.cookies["satchel_demo"])
    return {**scrape(router), "session_telemetry": timed, "cookies": cookies}


def app_provider(here: Path) -> dict[str, Any]:
    from opentelemetry import metrics
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    metrics.set_meter_provider(provider)

    from satchel.demo import main

    router = main({}, **demo_settings(here))
    TestApp(router).get("/")
    data = reader.get_metrics_data()
    assert data is not None
    scopes = [scope for resource in data.resource_metrics for scope in resource.scope_metrics]
    names = {metric.name for scope in scopes for metric in scope.metrics}
    return {**scrape(router), "provider_kept": metrics.get_meter_provider() is provider, "app_reader": sorted(names)}


def missing(here: Path) -> dict[str, Any]:
    sys.modules["prometheus_client"] = None  # type: ignore[assignment]  # as if it were not installed
    from opentelemetry import metrics

    from satchel.demo import main
    from satchel.telemetry import api_default

    router = main({}, **demo_settings(here))
    return {**scrape(router), "provider_untouched": api_default(metrics.get_meter_provider())}


def snippet_code() -> str:
    """The code block under docs/operations.md's "A Prometheus endpoint"."""
    text = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    section = text.split(SNIPPET_HEADING, 1)[1]
    found = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert found is not None, f"no python block under {SNIPPET_HEADING!r}"
    return found.group(1)


def includeme(config: Any) -> None:
    """The view the snippet's ``...`` stands for: one that changes the session."""

    def count(request: Any) -> Any:
        request.session["count"] = request.session.get("count", 0) + 1
        return request.response

    config.add_route("count", "/count")
    config.add_view(count, route_name="count")


def snippet(here: Path) -> dict[str, Any]:
    from tests.support.apps import BASE_SETTINGS

    module = sys.modules["snippet"] = ModuleType("snippet")  # Pyramid looks its caller's module up
    exec(compile(snippet_code(), "docs/operations.md", "exec"), module.__dict__)
    settings = {**BASE_SETTINGS, "session.type": "memory", "pyramid.includes": "tests.support.prometheus_apps"}
    app = module.main({}, **settings)
    counted = TestApp(app).get("/count")
    return {**scrape(app), "session_cookie": "Set-Cookie" in counted.headers}


SCENARIOS = {"demo": demo, "app_provider": app_provider, "missing": missing, "snippet": snippet}


if __name__ == "__main__":
    scenario, here = sys.argv[1], Path(sys.argv[2])
    print(json.dumps(SCENARIOS[scenario](here)))
