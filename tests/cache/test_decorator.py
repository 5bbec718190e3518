"""``@cache_region``, ``region_invalidate`` and the region registry, on memory regions."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from typing import Any

import pytest

from satchel.cache import (
    NO_VALUE,
    cache_region,
    configure_from_settings,
    get_region,
    invalidate_region,
    region_invalidate,
    regions,
)
from satchel.cache.keys import HASH_PREFIX, KeyMaker
from satchel.errors import ConfigurationError, NotSerializable

# Named at import time, configured by the fixture below: the way applications do it.
early = get_region("t_early")
calls: list[tuple[Any, ...]] = []


@early.cache_on_arguments()  # dogpile's own decorator, on a region not configured yet
def squared(x: int) -> int:
    calls.append(("squared", x))
    return x * x


@cache_region("t_deco", "things")
def load(term: str, limit: int = 20, offset: int = 0) -> list[Any]:
    calls.append((term, limit, offset))
    return [term, limit, offset, len(calls)]


@cache_region("t_deco", ignore=("request",))
def for_request(request: object, item: int) -> int:
    calls.append(("request", item))
    return len(calls)


@cache_region("t_deco")
def spread(*args: Any, **kwargs: Any) -> int:
    calls.append(("spread", args, tuple(sorted(kwargs.items()))))
    return len(calls)


class Shop:
    def __init__(self, name: str) -> None:
        self.name = name

    @cache_region("t_deco", "shop")
    def price(self, sku: str) -> int:
        calls.append(("price", self.name, sku))
        return len(calls)


SETTINGS = {
    "cache.regions": "t_deco, t_early, t_second, t_short_keys, t_off, t_pickled",
    "cache.type": "memory",
    "cache.expire": "300",
    "cache.t_second.expire": "1",
    "cache.t_short_keys.key_length": "80",
    "cache.t_off.enabled": "false",
    "cache.t_pickled.serializer": "pickle",
}


@pytest.fixture(autouse=True)
def configured() -> Iterator[None]:
    configure_from_settings(SETTINGS)
    calls.clear()
    yield


def test_a_region_named_at_import_is_configured_later() -> None:
    assert early is get_region("t_early") is regions["t_early"]
    assert early.is_configured and early.expiration_time == 300
    assert early.get_or_create("k", lambda: "v") == "v"
    assert early.get("k") == "v"
    assert squared(3) == squared(3) == 9
    assert calls == [("squared", 3)]
    squared.invalidate(3)
    assert squared(3) == 9 and len(calls) == 2


def test_positional_and_keyword_calls_share_a_key() -> None:
    first = load("rabbits", 20)
    assert load("rabbits", 20) == first
    assert load("rabbits", limit=20) == first
    assert load(term="rabbits", limit=20, offset=0) == first
    assert load("rabbits") == first  # the defaults are part of the key
    assert load(offset=0, term="rabbits") == first
    assert calls == [("rabbits", 20, 0)]
    load("rabbits", 21)
    assert len(calls) == 2


def test_the_key_follows_beakers_rules() -> None:
    assert load.key("rabbits", 20) == f"{__name__}:load things rabbits 20 0"
    assert load.key("rabbits", limit=20) == load.key("rabbits", 20, 0)
    # Spaces are escaped: these two calls must not share a value.
    assert load.key("a b", 1) != load.key("a", "b 1")
    assert load("a b", 1) != load("a", "b 1")  # type: ignore[arg-type]


def test_ignored_arguments_stay_out_of_the_key() -> None:
    assert for_request(object(), 1) == for_request(object(), 1)
    assert for_request(object(), 2) != for_request(object(), 1)
    assert len(calls) == 2


def test_ignore_must_name_a_parameter() -> None:
    with pytest.raises(TypeError, match="does not take"):

        @cache_region("t_deco", ignore=("reqeust",))
        def f(request: object) -> None: ...


def test_var_args_and_kwargs() -> None:
    assert spread(1, 2, a=1, b=2) == spread(1, 2, b=2, a=1)
    assert spread(1, 2) != spread(1, 2, 3)
    assert len(calls) == 3


def test_methods_leave_self_out() -> None:
    # As in Beaker: instances share the cached value of a method.
    assert Shop("a").price("x") == Shop("b").price("x")
    assert len(calls) == 1
    Shop.price.invalidate("x")  # type: ignore[attr-defined]
    Shop("b").price("x")
    assert len(calls) == 2


def test_region_invalidate_the_beaker_way() -> None:
    load("rabbits", 20, 0)
    region_invalidate(load, None, "things", "rabbits", 20, 0)
    load("rabbits", 20, 0)
    assert len(calls) == 2
    region_invalidate(load, "t_deco", "things", "rabbits", limit=20)
    load("rabbits")
    assert len(calls) == 3


def test_region_invalidate_wants_the_decorator_arguments_first() -> None:
    with pytest.raises(TypeError, match="decorator's own"):
        region_invalidate(load, None, "rabbits", 20, 0)
    with pytest.raises(TypeError, match="decorated with @cache_region"):
        region_invalidate(len, None)


def test_invalidate_and_refresh_helpers() -> None:
    first = load("x")
    load.invalidate("x")
    second = load("x")
    assert second != first
    third = load.refresh("x")
    assert third != second and load("x") == third
    assert len(calls) == 3


def test_long_keys_are_hashed() -> None:
    @cache_region("t_short_keys")
    def f(text: str) -> int:
        calls.append(("f", text))
        return len(calls)

    long = "x" * 100
    assert f.key(long).startswith(HASH_PREFIX) and len(f.key(long)) == len(HASH_PREFIX) + 64
    assert not f.key("y").startswith(HASH_PREFIX)
    assert f(long) == f(long)
    f.invalidate(long)
    f(long)
    assert len(calls) == 2
    assert get_region("t_short_keys").get(f.key(long)) is not NO_VALUE


def test_key_maker_fast_path_matches_bind() -> None:
    def g(a: int, b: int = 2, c: int = 3) -> None: ...

    keys = KeyMaker(g)
    assert keys((1,), {}) == keys((1, 2), {}) == keys((), {"a": 1}) == keys((1,), {"c": 3, "b": 2})
    assert keys._bound_parts((1,), {}) == ["1", "2", "3"]
    with pytest.raises(TypeError):
        keys((), {"b": 1})  # a missing argument is Python's TypeError
    with pytest.raises(TypeError):
        keys((1,), {"zz": 1})


def test_expiry_is_exact() -> None:
    region = get_region("t_second")
    made: list[float] = []

    def create() -> float:
        made.append(time.time())
        return made[-1]

    first = region.get_or_create("k", create)
    assert region.get_or_create("k", create) == first
    time.sleep(1.2)
    assert region.get_or_create("k", create) != first
    assert len(made) == 2


def test_a_disabled_region_always_calls_the_creator() -> None:
    region = get_region("t_off")
    def create() -> int:
        calls.append(("off",))
        return len(calls)

    assert [region.get_or_create("k", create) for _ in range(3)] == [1, 2, 3]
    region.set("k", 1)
    assert region.get("k") is NO_VALUE


def test_an_unconfigured_region_says_so() -> None:
    @cache_region("t_nowhere")
    def f() -> int:
        return 1

    with pytest.raises(ConfigurationError, match="'t_nowhere' is not configured"):
        f()
    with pytest.raises(ConfigurationError, match="'t_nowhere' is not configured"):
        get_region("t_nowhere").get_or_create("k", lambda: 1)


def test_region_names_are_checked() -> None:
    with pytest.raises(ConfigurationError):
        get_region("no spaces please")


def test_memory_regions_refuse_what_json_cannot_hold() -> None:
    region = get_region("t_deco")
    with pytest.raises(NotSerializable, match="not JSON"):
        region.get_or_create("when", lambda: dt.datetime.now(dt.timezone.utc))
    assert region.get("when") is NO_VALUE
    # Values are kept as they are (no copy), like dogpile's memory backend.
    value = {"a": [1, 2]}
    assert region.get_or_create("data", lambda: value) is value


def test_pickle_regions_take_any_value() -> None:
    region = get_region("t_pickled")
    now = dt.datetime.now(dt.timezone.utc)
    assert region.get_or_create("when", lambda: now) == now


def test_memory_invalidation() -> None:
    region = get_region("t_deco")
    region.set("a", 1)
    assert invalidate_region("t_deco") is False  # this process only
    assert region.get("a") is NO_VALUE
    region.set("a", 1)
    invalidate_region(region, hard=False)
    assert region.get("a") is NO_VALUE  # soft: expired, the next get_or_create recomputes
    assert region.get_or_create("a", lambda: 2) == 2


def test_invalidation_takes_the_arguments_that_make_the_key() -> None:
    @cache_region("t_deco", ignore=("request",))
    def page(a: int, request: object, b: int = 2) -> int:
        calls.append(("page", a, b))
        return len(calls)

    assert page(1, object()) == page(1, object(), b=2)
    assert page.key(1) == page.key(1, 2) == page.key(a=1, b=2)
    page.invalidate(1)
    page(1, None)
    assert len(calls) == 2
    region_invalidate(page, None, 1, b=2)
    page(1, None)
    assert len(calls) == 3


def test_every_use_of_an_unconfigured_region_says_so() -> None:
    from dogpile.cache.exception import RegionNotConfigured

    region = get_region("t_never")
    assert not region.is_configured
    for use in (lambda: region.get("k"), lambda: region.set("k", 1), lambda: region.get_or_create("k", int)):
        with pytest.raises(ConfigurationError, match="'t_never' is not configured") as info:
            use()
        assert isinstance(info.value, RegionNotConfigured)  # what dogpile users catch
