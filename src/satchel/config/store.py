"""The store a session runs on, and the settings that belong to it.

The session parser knows its own settings; every other one under the prefix is
the store's, coerced by the coercer the store class declares in ``options``.
``sa.*`` settings reach a store that declares ``sa`` as one mapping.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import ConfigurationError
from .beaker import REQUIRED, STORE_SETTINGS
from .coerce import Coercer
from .names import unknown_setting
from .urls import mask_urls

if TYPE_CHECKING:
    from ..stores.base import Store



@dataclass(frozen=True)
class StoreConfig:
    """Which store to open and the options to open it with (already coerced).

    ``type`` is satchel's store name (``redis``), or the name the settings gave
    for a store found elsewhere (``package.module:Class``, an entry point);
    ``cls`` is None for cookie sessions, which have no store.
    """

    type: str = "memory"
    cls: builtins.type[Store] | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def address(self) -> str:
        """Where the store lives, for messages (credentials removed)."""
        options = self.options
        if options.get("data_dir"):
            return str(options["data_dir"])
        target = options.get("url") or ";".join(options.get("urls") or ())
        return mask_urls(str(target or ""))


@dataclass(frozen=True)
class SplitOptions:
    """Settings sorted into the owner's (coerced), the store's (coerced) and warnings."""

    own: dict[str, Any]
    store: dict[str, Any]
    warnings: list[str]


def split_options(
    raw: Mapping[str, Any],
    own: Mapping[str, Coercer],
    store_options: Mapping[str, Coercer],
    shown: str,
    store_label: str,
) -> SplitOptions:
    """Coerce each setting for whoever reads it: the owner (session, region), the store, or both.

    A setting Beaker documents for stores that this store does not read has no
    effect and says so; any other unknown setting is an error naming the
    nearest known one.
    """
    result = SplitOptions({}, {}, [])
    sa_options: dict[str, Any] = {}
    for option, value in raw.items():
        name = "sa" if option.startswith("sa.") else option
        if name in own:
            result.own[name] = own[name](value, shown + option)
        if name in store_options:
            if name == "sa":
                sa_options[option[3:]] = value
            else:
                result.store[name] = store_options[name](value, shown + option)
        elif name in STORE_SETTINGS:
            result.warnings.append(f"{shown}{option} has no effect with {shown}type = {store_label}")
        elif name not in own:
            raise unknown_setting(option, shown, [*own, *store_options, *STORE_SETTINGS])
    if sa_options:
        result.store["sa"] = store_options["sa"](sa_options, shown + "sa")
    return result


def check_required(store: str, options: Mapping[str, Any], shown: str, type_name: str) -> None:
    """Refuse at start-up a built-in store that lacks what it cannot open without."""
    names = REQUIRED.get(store, ())
    given = any(
        (options.get("sa") or {}).get(name[3:]) if name.startswith("sa.") else options.get(name) for name in names
    )
    if names and not given:
        raise ConfigurationError(f"{shown}type = {type_name} needs {shown}{names[0]}", shown + names[0])
