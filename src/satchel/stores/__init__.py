"""Stores hold opaque bytes under a key and know nothing of sessions.

A store is named by satchel's name for it (or Beaker's), by
``"package.module:Class"``, or by an entry point in the ``satchel.stores``
group; its module is imported only when it is chosen, so a missing driver costs
nothing until then.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any

from ..clock import Clock, system_clock
from ..config.beaker import EXTRAS, GONE, TYPES, store_name
from ..config.names import nearest
from ..config.store import StoreConfig
from ..errors import ConfigurationError, StoreUnavailable
from .base import Record, Store, Version

ENTRY_POINT_GROUP = "satchel.stores"

#: satchel's own stores, as ``"module:Class"``.
BUILT_IN: dict[str, str] = {
    "memory": "satchel.stores.memory:MemoryStore",
    "file": "satchel.stores.file:FileStore",
    "redis": "satchel.stores.redis:RedisStore",
    "rediscluster": "satchel.stores.redis:RedisClusterStore",
    "memcached": "satchel.stores.memcached:MemcachedStore",
    "sql": "satchel.stores.sql:SQLStore",
}


def store_class(name: str, *, setting: str = "session.type") -> type[Store]:
    """The store class ``name`` stands for; ConfigurationError naming ``setting`` if none."""
    text = name.strip()
    builtin = store_name(text)
    if builtin in BUILT_IN:
        return _built_in(builtin, setting)
    if text.lower() in GONE:
        raise ConfigurationError(f"{setting} = {text}: {GONE[text.lower()]}", setting)
    if ":" in text:
        return _checked(_import(text, setting), text, setting)
    entry_point = next(iter(entry_points(group=ENTRY_POINT_GROUP).select(name=text)), None)
    if entry_point is None:
        raise _not_a_store(text, setting)
    return _checked(_load(entry_point.load, text, setting), text, setting)


def _built_in(name: str, setting: str) -> type[Store]:
    try:
        return _checked(_target(BUILT_IN[name]), name, setting)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("satchel"):
            raise
        raise StoreUnavailable(
            f'{setting} = {name} needs {exc.name}: pip install "satchel[{EXTRAS.get(name, name)}]"', name
        ) from None


def _target(target: str) -> Any:
    module_name, _, attribute = target.partition(":")
    value: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        value = getattr(value, part)
    return value


def _import(target: str, setting: str) -> Any:
    return _load(lambda: _target(target), target, setting)


def _load(load: Any, name: str, setting: str) -> Any:
    """What ``load()`` gives; its import problems become a ConfigurationError."""
    try:
        return load()
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigurationError(f"{setting} = {name}: cannot import it ({exc})", setting) from exc


def _checked(value: Any, name: str, setting: str) -> type[Store]:
    if not (isinstance(value, type) and issubclass(value, Store)):
        raise ConfigurationError(
            f"{setting} = {name} is not a store class (a subclass of satchel.stores.Store)", setting
        )
    return value


def _not_a_store(name: str, setting: str) -> ConfigurationError:
    known = [*BUILT_IN, *TYPES, *(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))]
    near = nearest(name.lower(), known)
    hint = f"; did you mean {near}?" if near else ""
    return ConfigurationError(
        f"{setting} = {name} is not a store: give one of {', '.join(BUILT_IN)}, a cookie session (cookie), "
        f'"package.module:Class", or an entry point of the {ENTRY_POINT_GROUP} group{hint}',
        setting,
    )


def open_store(config: StoreConfig, *, clock: Clock = system_clock) -> Store:
    """Open the store the config names (its driver is imported by now)."""
    if config.cls is None:
        raise ConfigurationError(
            f"session.type = {config.type} keeps sessions in the cookie: there is no store to open"
        )
    return config.cls.from_options(config.options, clock=clock)


__all__ = [
    "BUILT_IN",
    "ENTRY_POINT_GROUP",
    "Record",
    "Store",
    "StoreConfig",
    "Version",
    "open_store",
    "store_class",
]
