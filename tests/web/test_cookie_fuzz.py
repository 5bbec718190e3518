"""Random and mutated session cookies thrown at a real WebTest app in cookie mode.

Whatever arrives (random bytes, or a real multi-chunk cookie with bits flipped,
truncated, padded with base64 garbage, chunks swapped or taken from another
session), the app answers 200, the session is either the one a valid cookie set
holds or a fresh one, at most one line goes to ``satchel.security``, every
Set-Cookie line fits 4096 bytes, and after one writing response the browser's
cookies hold a valid session again.

The normal run takes ``SATCHEL_FUZZ_FAST`` examples per mode (default 1500); the
``slow`` variant (``pytest -m slow``) takes ``SATCHEL_FUZZ_EXAMPLES`` (default 100,000).
"""

from __future__ import annotations

import base64
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, event, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from pyramid.interfaces import ISessionFactory
from webtest import TestApp

from satchel.manager import SessionManager
from satchel.policy.cookie import COOKIE_LIMIT, CookieSessions
from tests.support.apps import make_app

EXAMPLES = int(os.environ.get("SATCHEL_FUZZ_FAST", "1500"))
SLOW_EXAMPLES = int(os.environ.get("SATCHEL_FUZZ_EXAMPLES", "100000"))
KEY = "fuzz-key-v8Kd2QpX7mLs4ZrT9cWn6YbH3jFg5aEu1"
# No renewal: a long run outlives the renew interval, and a renewal would re-send the
# valid cookie sets the fuzzer starts from (renewal has tests of its own).
MODES = {
    "encrypted": {
        "session.type": "cookie",
        "session.encrypt_key": KEY,
        "session.max_cookies": "3",
        "session.renew_interval": "0",
    },
    "signed": {"session.type": "cookie", "session.max_cookies": "3", "session.renew_interval": "0"},
}
NAMES = ["sid", "sid.1", "sid.2", "sid.3", "sid.9", "sid.01", "other"]
B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

Pairs = list[tuple[str, str]]


@dataclass
class Target:
    app: TestApp
    manager: SessionManager
    #: Valid cookie sets (as name/value pairs) and what /dump shows for each.
    valid: list[tuple[Pairs, str]]


def build_target(settings: dict[str, str]) -> Target:
    app = make_app(settings)
    manager = app.app.registry.getUtility(ISessionFactory).manager
    assert isinstance(manager.policy, CookieSessions)
    # Every refusal written out: one line per bad cookie is what is checked here
    # (the aggregation a flood meets has tests of its own).
    manager.policy.refused.examples = 10**9
    valid: list[tuple[Pairs, str]] = []
    for size in (6800, 3500, 20):  # three chunks, two chunks, one chunk
        app.reset()
        value = base64.urlsafe_b64encode(os.urandom(size)).decode()
        res = app.get("/set", params={"key": "blob", "value": value})
        app.get("/flash", params={"msg": "hi"})
        pairs = sorted(app.cookies.items())
        assert res.status_int == 200
        valid.append((pairs, app.get("/dump").text))
    assert [len(pairs) for pairs, _ in valid] == [3, 2, 1]
    app.reset()
    return Target(app, manager, valid)


@pytest.fixture(scope="module", params=sorted(MODES))
def target(request: pytest.FixtureRequest) -> Target:
    return build_target(MODES[request.param])


# -- strategies ----------------------------------------------------------------------------

cookie_text = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=300)
b64_text = st.text(alphabet=B64, max_size=200)


@st.composite
def random_pairs(draw: st.DrawFn) -> Pairs:
    """Cookie names satchel looks at (and some it must not), with random values."""
    names = draw(st.lists(st.sampled_from(NAMES), max_size=6))
    values = st.one_of(
        cookie_text,
        b64_text,
        st.builds(lambda n, p, rest: f"{n}{p}{rest}", st.integers(0, 12), st.sampled_from("ES"), b64_text),
        st.builds(lambda rest: "1S" + rest + "." + "A" * 43, b64_text),
    )
    return [(name, draw(values)) for name in names]


def flip_char(value: str, data: st.DataObject) -> str:
    if not value:
        return value
    i = data.draw(st.integers(0, len(value) - 1))
    bit = data.draw(st.integers(0, 6))
    return value[:i] + chr(ord(value[i]) ^ (1 << bit)) + value[i + 1 :]


def swap_b64(value: str, data: st.DataObject) -> str:
    if not value:
        return value
    i = data.draw(st.integers(0, len(value) - 1))
    return value[:i] + data.draw(st.sampled_from(B64)) + value[i + 1 :]


def truncate(value: str, data: st.DataObject) -> str:
    return value[: data.draw(st.integers(0, len(value)))]


def insert_garbage(value: str, data: st.DataObject) -> str:
    i = data.draw(st.integers(0, len(value)))
    return value[:i] + data.draw(st.one_of(b64_text, cookie_text)) + value[i:]


def recount(value: str, data: st.DataObject) -> str:
    return str(data.draw(st.integers(0, 120))) + value.lstrip("0123456789")


VALUE_MUTATIONS: list[Callable[[str, st.DataObject], str]] = [
    flip_char,
    swap_b64,
    truncate,
    insert_garbage,
    recount,
]


def mutate(pairs: Pairs, others: list[Pairs], data: st.DataObject) -> Pairs:
    pairs = list(pairs)
    for _ in range(data.draw(st.integers(1, 3))):
        op = data.draw(st.sampled_from(["value", "drop", "swap", "foreign", "duplicate", "quote", "extra"]))
        if not pairs:
            break
        i = data.draw(st.integers(0, len(pairs) - 1))
        name, value = pairs[i]
        if op == "value":
            pairs[i] = (name, data.draw(st.sampled_from(VALUE_MUTATIONS))(value, data))
        elif op == "drop":
            del pairs[i]
        elif op == "swap":
            j = data.draw(st.integers(0, len(pairs) - 1))
            pairs[i], pairs[j] = (name, pairs[j][1]), (pairs[j][0], value)
        elif op == "foreign":  # this chunk from another session
            other = dict(data.draw(st.sampled_from(others)))
            if name in other:
                pairs[i] = (name, other[name])
        elif op == "duplicate":
            pairs.insert(data.draw(st.integers(0, len(pairs))), (name, data.draw(b64_text)))
        elif op == "quote":
            pairs[i] = (name, f'"{value}"')
        else:
            pairs.append((data.draw(st.sampled_from(NAMES)), data.draw(b64_text)))
    return pairs


# -- the invariant ---------------------------------------------------------------------------


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record)


@pytest.fixture(scope="module")
def capture() -> Iterator[Capture]:
    handler = Capture()
    logger = logging.getLogger("satchel.security")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(old_level)


def header_of(pairs: Pairs) -> str:
    return "; ".join(f"{name}={value}" for name, value in pairs)


def apply_set_cookie(pairs: Pairs, headers: list[str]) -> Pairs:
    """What a browser's jar holds after the response (first of a name is replaced)."""
    jar = list(pairs)
    for header in headers:
        name, value = header.split(";", 1)[0].split("=", 1)
        jar = [(n, v) for n, v in jar if n != name]
        if "Max-Age=0" not in header:
            jar.append((name, value))
    return jar


def check(target: Target, capture: Capture, raw_header: str, pairs: Pairs | None) -> None:
    app = target.app
    shown = {text for _, text in target.valid} | {"[]"}
    app.reset()
    capture.lines.clear()
    res = app.get("/dump", extra_environ={"HTTP_COOKIE": raw_header}, expect_errors=True)
    assert res.status_int == 200, res.text
    assert res.text in shown
    assert len(capture.lines) <= 1
    event("kept a valid session" if res.text != "[]" else "fresh session")
    if res.text != "[]":
        assert capture.lines == []  # a valid cookie set is not logged
    elif target.manager.policy.read_chunks(raw_header):
        assert len(capture.lines) == 1  # a refused one is, once
    headers = res.headers.getall("Set-Cookie")
    assert all(len(h) <= COOKIE_LIMIT for h in headers)
    assert all("Max-Age=0" in h for h in headers)  # a read only ever deletes

    app.reset()
    res = app.get("/incr", extra_environ={"HTTP_COOKIE": raw_header}, expect_errors=True)
    assert res.status_int == 200, res.text
    headers = res.headers.getall("Set-Cookie")
    assert all(len(h) <= COOKIE_LIMIT for h in headers)
    if pairs is None or any(";" in v or "," in v for _, v in pairs):
        return
    # The browser applies the response; its next request carries a valid session.
    jar = apply_set_cookie(pairs, headers)
    app.reset()
    capture.lines.clear()
    after = app.get("/read", extra_environ={"HTTP_COOKIE": header_of(jar)})
    assert after.text == res.text
    assert capture.lines == []


def run_fuzz(target: Target, capture: Capture, data: st.DataObject) -> None:
    kind = data.draw(st.sampled_from(["mutated", "mutated", "mutated", "random", "raw"]))
    if kind == "raw":
        raw = data.draw(st.binary(max_size=600)).decode("latin-1")
        check(target, capture, raw, None)
        return
    if kind == "random":
        pairs = data.draw(random_pairs())
    else:
        base = data.draw(st.sampled_from([p for p, _ in target.valid]))
        pairs = mutate(base, [p for p, _ in target.valid], data)
    check(target, capture, header_of(pairs), pairs)


@hsettings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_no_cookie_breaks_the_app(target: Target, capture: Capture, data: st.DataObject) -> None:
    run_fuzz(target, capture, data)


@pytest.mark.slow
@hsettings(
    max_examples=SLOW_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_no_cookie_breaks_the_app_long(target: Target, capture: Capture, data: st.DataObject) -> None:
    run_fuzz(target, capture, data)


def test_the_valid_sets_are_read(target: Target, capture: Capture) -> None:
    """The fuzzer's starting points really are valid sessions."""
    for pairs, text in target.valid:
        target.app.reset()
        res = target.app.get("/dump", extra_environ={"HTTP_COOKIE": header_of(pairs)})
        assert res.text == text != "[]"


def test_every_chunk_matters(target: Target, capture: Capture) -> None:
    """Dropping or flipping any single chunk of a three-chunk session is refused."""
    pairs, _ = target.valid[0]
    for i in range(len(pairs)):
        without = pairs[:i] + pairs[i + 1 :]
        name, value = pairs[i]
        changed = value[:-5] + ("A" if value[-5] != "A" else "B") + value[-4:]
        flipped = [*pairs[:i], (name, changed), *pairs[i + 1 :]]
        for variant in (without, flipped):
            target.app.reset()
            capture.lines.clear()
            res = target.app.get("/dump", extra_environ={"HTTP_COOKIE": header_of(variant)})
            assert res.text == "[]"
            assert len(capture.lines) == 1
