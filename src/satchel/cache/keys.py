"""Cache keys: Beaker's rules for decorated functions, and what each backend receives.

A decorated function's key is its namespace (``module:qualname``), the
decorator's extra arguments, then the call's arguments, each turned into text
with ``str()`` and separated by spaces (a space or backslash inside a value is
escaped, so ``f("a b")`` and ``f("a", "b")`` never share a key). Arguments are
bound to the function's signature first, defaults filled in, so ``f(1, 2)``,
``f(1, b=2)`` and (if ``b`` defaults to 2) ``f(1)`` share one key.

A decorated function's key longer than the region's ``key_length`` is replaced by
``sha256-`` and its SHA-256 hex digest (Beaker hashed with SHA-1 at that point).
A region on a shared backend also hashes any key it cannot hold as it is: longer
than ``key_length``, with spaces on memcached, with anything outside
``A-Za-z0-9_.:-`` in a file name or SQL row. There a key that already starts
with ``sha256-`` is always hashed, so a caller cannot forge a hashed key. Memory
regions take keys as they are, so their hits cost what dogpile's do.
"""

from __future__ import annotations

import hashlib
import inspect
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

HASH_PREFIX = "sha256-"

_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
_REQUIRED = inspect.Parameter.empty


def hashed(key: str) -> str:
    """``sha256-`` and the hex digest of ``key``."""
    return HASH_PREFIX + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def text(value: Any) -> str:
    """One argument as key text: ``str()``, with spaces and backslashes escaped."""
    part = value if type(value) is str else str(value)
    if " " in part or "\\" in part:
        part = part.replace("\\", "\\\\").replace(" ", "\\ ")
    return part


class KeyMaker:
    """Builds a decorated function's cache key from one call's arguments (Beaker's rules).

    ``self``/``cls`` (a first parameter so named) and the parameters named in
    ``ignore`` are left out of the key. Calls with positional arguments only take
    a fast path that skips ``inspect.Signature.bind``.
    """

    def __init__(self, func: Callable[..., Any], extra: Iterable[Any] = (), ignore: Iterable[str] = ()) -> None:
        self.signature = inspect.signature(func)
        params = list(self.signature.parameters.values())
        self.ignore = frozenset(ignore)
        unknown = self.ignore - {p.name for p in params}
        if unknown:
            raise TypeError(
                f"cache_region(ignore=...) names {', '.join(sorted(unknown))}, "
                f"which {func.__qualname__}() does not take"
            )
        self.namespace = f"{func.__module__}:{func.__qualname__}"
        self.extra = tuple(extra)
        self.prefix = " ".join([self.namespace, *(text(a) for a in self.extra)])
        self.skips_self = bool(params) and params[0].name in ("self", "cls") and params[0].kind in _POSITIONAL
        self._first = 1 if self.skips_self else 0
        self._skip = self.ignore | ({params[0].name} if self.skips_self else set())
        self._kinds = {p.name: p.kind for p in params}
        #: The signature without ``self`` and the ignored parameters.
        self._keyed = self.signature.replace(parameters=[p for p in params if p.name not in self._skip])
        # Fast path: a signature of plain positional parameters only.
        self._simple = all(p.kind in _POSITIONAL for p in params)
        self._count = len(params)
        self._required = sum(1 for p in params if p.default is _REQUIRED)
        self._defaults = tuple(p.default for p in params)
        self._names = tuple(p.name for p in params)
        self._by_keyword = tuple(p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD for p in params)
        self._keep = tuple(
            i for i, p in enumerate(params) if not (i == 0 and self.skips_self) and p.name not in self.ignore
        )

    def __call__(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> str:
        """The key for a call ``func(*args, **kwargs)``."""
        values: tuple[Any, ...] | None = None
        if self._simple:
            if not kwargs:
                if self._required <= len(args) <= self._count:
                    values = args + self._defaults[len(args) :] if len(args) < self._count else args
            else:
                values = self._by_name(args, kwargs)
        if values is not None:
            parts = [text(values[i]) for i in self._keep]
        else:
            parts = self._bound_parts(args, kwargs)
        if not parts:
            return self.prefix
        return self.prefix + " " + " ".join(parts)

    def _by_name(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> tuple[Any, ...] | None:
        """Positional and keyword arguments in signature order, or None to let ``bind`` decide."""
        if len(args) > self._count:
            return None
        values = list(args)
        used = 0
        for i in range(len(args), self._count):
            name = self._names[i]
            if name in kwargs and self._by_keyword[i]:
                values.append(kwargs[name])
                used += 1
            elif self._defaults[i] is not _REQUIRED:
                values.append(self._defaults[i])
            else:
                return None  # missing argument: bind() raises the TypeError Python would
        if used != len(kwargs):
            return None  # unknown or repeated keyword: likewise
        return tuple(values)

    def _bound_parts(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> list[str]:
        bound = self.signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return self._parts(bound.arguments)

    def _parts(self, arguments: Mapping[str, Any]) -> list[str]:
        parts: list[str] = []
        for name, value in arguments.items():
            if name in self._skip:
                continue
            kind = self._kinds[name]
            if kind is inspect.Parameter.VAR_POSITIONAL:
                parts.extend(text(v) for v in value)
            elif kind is inspect.Parameter.VAR_KEYWORD:
                parts.extend(text(f"{k}={v}") for k, v in sorted(value.items()))
            else:
                parts.append(text(value))
        return parts

    def for_arguments(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> str:
        """The key for the arguments that make it: without ``self`` and the ignored ones.

        What ``invalidate``, ``key`` and ``region_invalidate`` take, since the
        caller may have no ``request`` (or instance) at hand.
        """
        bound = self._keyed.bind(*args, **kwargs)
        bound.apply_defaults()
        parts = self._parts(bound.arguments)
        return self.prefix + " " + " ".join(parts) if parts else self.prefix


class GenKey(str):
    """A backend key that remembers the region generation it was read at.

    The region passes the same key object to the backend's read and, after the
    creator ran, to its write: the value is stamped with the generation that was
    current *before* it was computed, so a value computed from data that an
    invalidation made stale never looks current.

    ``blind`` is set when that read failed or was skipped (the backend is down,
    or refused): the generation before the creator ran is unknown, so the value
    is served but not stored (stamping it with the generation read afterwards
    could make a value computed from stale data look current).
    """

    gen: bytes | None = None
    blind: bool = False


class ServerMangler:
    """Keys of a region on a shared backend: ``<key_prefix><region>:<key>``.

    ``safe`` is the alphabet the backend accepts unchanged; ``max_length`` the
    longest key it takes (room for its lock key's extra characters included).
    """

    def __init__(self, base: str, key_length: int, max_length: int, safe: re.Pattern[str] | None) -> None:
        self.base = base
        self.key_length = key_length
        self.room = max_length - len(base)
        self.safe = safe

    def __call__(self, key: str) -> GenKey:
        if type(key) is GenKey:  # mangled already (a refresh reads, then sets, one key)
            return key
        if type(key) is not str:
            key = str(key)
        if (
            len(key) > self.key_length
            or len(key) > self.room
            or key.startswith(HASH_PREFIX)
            or (self.safe is not None and not self.safe.fullmatch(key))
        ):
            key = hashed(key)
        return GenKey(self.base + key)


__all__ = ["HASH_PREFIX", "GenKey", "KeyMaker", "ServerMangler", "hashed", "text"]
