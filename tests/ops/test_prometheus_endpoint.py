"""/metrics in Prometheus' text format: the demo app's page after a few clicks, what it
answers when the exporter is missing, and the Pyramid wiring docs/operations.md shows.

What sets OpenTelemetry's global meter provider runs in a process of its own
(tests/support/prometheus_apps.py): set once per process, it would turn telemetry's
``auto`` on for every later test in this one. The exposition is read back with
prometheus_client's own parser, under the names the exporter really prints: dots
become underscores, counters end in ``_total``, the duration in ``_seconds``.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from opentelemetry import metrics
from prometheus_client.parser import text_string_to_metric_families
from webtest import TestApp

import satchel.demo
from satchel.demo import METRICS_INSTALL, main
from satchel.telemetry import api_default
from tests.support.prometheus_apps import demo_settings

ROOT = Path(__file__).resolve().parents[2]
EXPORTER = "opentelemetry.exporter.prometheus"
#: Every label of satchel's session metrics: the exporter adds the scope's three.
SESSION_LABELS = {"otel_scope_name", "otel_scope_version", "otel_scope_schema_url", "satchel_store"}


def run_app(scenario: str, here: Path) -> dict[str, Any]:
    """What ``scenario`` of tests/support/prometheus_apps.py answered, in a fresh process."""
    done = subprocess.run(
        [sys.executable, "-m", "tests.support.prometheus_apps", scenario, str(here)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def samples(body: str, name: str, **labels: str) -> list[tuple[dict[str, str], float]]:
    """The samples called ``name`` whose labels include ``labels``."""
    return [
        (sample.labels, sample.value)
        for family in text_string_to_metric_families(body)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    ]


def value(body: str, name: str, **labels: str) -> float:
    """The value of the one sample called ``name`` with ``labels``."""
    found = samples(body, name, **labels)
    assert len(found) == 1, f"{len(found)} samples {name}{labels}"
    return found[0][1]


@pytest.fixture(scope="module")
def demo_scrape(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The demo's /metrics after a visit, a login, a note and the cached view twice."""
    return run_app("demo", tmp_path_factory.mktemp("demo"))


@pytest.fixture
def demo_without_exporter(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> TestApp:
    """The demo app, built where the Prometheus exporter cannot be imported."""

    def without_exporter(name: str) -> ModuleType | None:
        return None if name == EXPORTER else importlib.import_module(name)

    monkeypatch.setattr(satchel.demo, "optional_module", without_exporter)
    return TestApp(main({}, **demo_settings(tmp_path)))


def test_demo_scrape_is_prometheus_text_and_opens_no_session(demo_scrape: dict[str, Any]) -> None:
    assert demo_scrape["status"] == 200
    assert demo_scrape["content_type"].startswith("text/plain; version=")
    assert not demo_scrape["set_cookie"]  # a scraper gets no session
    assert demo_scrape["session_telemetry"]  # auto: on, since the demo set a meter provider first
    for cookie in demo_scrape["cookies"]:
        assert cookie.split(".")[0] not in demo_scrape["body"]  # no session id in any label


def test_demo_counts_session_operations_by_store_operation_and_outcome(demo_scrape: dict[str, Any]) -> None:
    body = demo_scrape["body"]
    assert "# TYPE satchel_session_operations_total counter" in body
    # each request after the first visit loads the session; the visit, the login and the note write it
    loads = value(body, "satchel_session_operations_total", satchel_operation="load", satchel_outcome="hit")
    saves = value(body, "satchel_session_operations_total", satchel_operation="save", satchel_outcome="ok")
    assert loads >= 5 and saves >= 3
    for labels, _ in samples(body, "satchel_session_operations_total"):
        assert labels["satchel_store"] == "file"
        assert set(labels) == SESSION_LABELS | {"satchel_operation", "satchel_outcome"}
    assert value(body, "satchel_session_events_total", satchel_event="created", satchel_store="file") == 1
    assert value(body, "satchel_session_events_total", satchel_event="regenerated", satchel_store="file") == 1


def test_demo_times_session_operations_in_a_histogram(demo_scrape: dict[str, Any]) -> None:
    body = demo_scrape["body"]
    assert "# TYPE satchel_session_operation_duration_seconds histogram" in body
    saves = {"satchel_store": "file", "satchel_operation": "save", "satchel_outcome": "ok"}
    count = value(body, "satchel_session_operation_duration_seconds_count", **saves)
    # every operation is timed in this run: the histogram holds as many saves as the counter
    assert count == value(body, "satchel_session_operations_total", **saves)
    assert value(body, "satchel_session_operation_duration_seconds_bucket", le="+Inf", **saves) == count
    assert 0 < value(body, "satchel_session_operation_duration_seconds_sum", **saves) < count


def test_demo_counts_the_cached_views_region(demo_scrape: dict[str, Any]) -> None:
    body = demo_scrape["body"]
    assert "# TYPE satchel_cache_events_total counter" in body
    short_term = {"satchel_cache_region": "short_term"}
    assert value(body, "satchel_cache_events_total", satchel_event="created", **short_term) == 1
    assert value(body, "satchel_cache_events_total", satchel_event="hit", **short_term) >= 1
    assert value(body, "satchel_cache_events_total", satchel_event="miss", **short_term) >= 1


def test_duration_buckets_tell_store_latencies_apart(demo_scrape: dict[str, Any]) -> None:
    bounds = {
        float(labels["le"])
        for labels, _ in samples(demo_scrape["body"], "satchel_session_operation_duration_seconds_bucket")
    }
    assert {bound for bound in bounds if 0 < bound <= 0.1}, sorted(bounds)


def test_demo_leaves_an_application_meter_provider_alone(tmp_path: Path) -> None:
    result = run_app("app_provider", tmp_path)
    assert result["provider_kept"]
    assert "satchel.session.operations" in result["app_reader"]  # satchel reports to the application's provider
    assert result["status"] == 200
    assert "satchel_" not in result["body"]  # which Prometheus does not read


def test_demo_without_prometheus_client_explains_what_to_install(tmp_path: Path) -> None:
    result = run_app("missing", tmp_path)
    assert (result["status"], result["content_type"]) == (200, "text/html; charset=utf-8")
    assert METRICS_INSTALL in result["body"]
    assert "Traceback" not in result["body"]
    assert result["provider_untouched"]


def test_demo_without_the_exporter_explains_what_to_install(demo_without_exporter: TestApp) -> None:
    res = demo_without_exporter.get("/metrics")
    assert res.status_int == 200
    assert res.content_type == "text/html"
    assert "<title>Metrics · satchel demo</title>" in res.text
    assert f"<pre>{METRICS_INSTALL}</pre>" in res.text
    assert api_default(metrics.get_meter_provider())  # nothing was set in this process


def test_demo_home_page_links_metrics(demo_without_exporter: TestApp) -> None:
    assert '<a href="/metrics">' in demo_without_exporter.get("/").text


def test_operations_doc_snippet_serves_the_session_counter(tmp_path: Path) -> None:
    result = run_app("snippet", tmp_path)
    assert result["session_cookie"]  # the one session request
    assert result["status"] == 200 and result["content_type"].startswith("text/plain")
    body = result["body"]
    saves = value(body, "satchel_session_operations_total", satchel_operation="save", satchel_outcome="ok")
    assert saves == 1
    assert value(body, "satchel_session_events_total", satchel_event="created", satchel_store="memory") == 1
