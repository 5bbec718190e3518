"""Setting names: gathering them under their prefixes, and naming the nearest one to a typo."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any

from ..errors import ConfigurationError

SESSION_PREFIXES = ("session.", "beaker.session.")
CACHE_PREFIXES = ("cache.", "beaker.cache.")

#: How alike a typo and a name must be (difflib's ratio) for the name to be suggested.
SIMILAR = 0.6
#: How alike a setting's first word must be to "session" or "cache" to look like a slip:
#: close enough for ``sesion`` and ``cahce``, far enough for ``version``.
PREFIX_SIMILAR = 0.8


def collect(settings: Mapping[str, Any], prefixes: Iterable[str]) -> dict[str, Any]:
    """The options under any of ``prefixes``, prefix removed.

    ``beaker.session.x`` and ``session.x`` both name option ``x``; when both are
    given with different values that is an error, not a silent choice.
    """
    found: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for prefix in prefixes:
        for name, value in settings.items():
            if not name.startswith(prefix):
                continue
            option = name[len(prefix) :]
            if option in found and found[option] != value:
                raise ConfigurationError(f"{origin[option]} and {name} disagree; keep one of them", name)
            found.setdefault(option, value)
            origin.setdefault(option, name)
    return found


def _swapped(typo: str, name: str) -> bool:
    """True when ``typo`` is ``name`` with two neighbouring characters swapped."""
    if len(typo) != len(name) or typo == name:
        return False
    differ = [i for i, (a, b) in enumerate(zip(typo, name, strict=True)) if a != b]
    if len(differ) != 2 or differ[1] != differ[0] + 1:
        return False
    first, second = differ
    return typo[first] == name[second] and typo[second] == name[first]


def nearest(typo: str, names: Iterable[str]) -> str | None:
    """The name ``typo`` most likely meant, or None when nothing is close.

    A swap of two neighbouring letters is the commonest slip and ranks first
    (``secrte`` means ``secret``, not the equally similar ``secure``); otherwise
    the most similar name wins, ties going to the alphabetically first.
    """
    best: tuple[tuple[bool, float], str] | None = None
    for name in sorted(set(names)):
        rank = (_swapped(typo, name), difflib.SequenceMatcher(None, typo, name).ratio())
        if (rank[0] or rank[1] >= SIMILAR) and (best is None or rank > best[0]):
            best = (rank, name)
    return None if best is None else best[1]


def unknown_setting(option: str, prefix: str, known: Iterable[str]) -> ConfigurationError:
    near = nearest(option, known)
    hint = f"; did you mean {prefix}{near}?" if near else ""
    return ConfigurationError(f"unknown setting {prefix}{option}{hint}", prefix + option)


def misspelled_prefixes(settings: Iterable[str]) -> list[str]:
    """Warnings for setting names that look like ``session.*`` or ``cache.*`` misspelled.

    Such a setting would be ignored without a word (``sesion.type = file`` leaves the
    memory store in place), so the application is told at start-up.
    """
    warnings = []
    for name in sorted(settings):
        beaker = "beaker." if name.startswith("beaker.") else ""
        word, dot, option = name[len(beaker) :].partition(".")
        meant = _prefix_meant(word) if dot else None
        if meant is not None:
            warnings.append(f"setting {name} is ignored: did you mean {beaker}{meant}.{option}?")
    return warnings


def _prefix_meant(word: str) -> str | None:
    lowered = word.lower()
    for prefix in ("session", "cache"):
        if word == prefix:
            return None
        similar = difflib.SequenceMatcher(None, lowered, prefix).ratio() >= PREFIX_SIMILAR
        if similar or _swapped(lowered, prefix):
            return prefix
    return None
