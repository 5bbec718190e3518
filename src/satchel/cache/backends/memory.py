"""Process memory: dogpile's memory backend, refusing what JSON cannot hold.

Values are kept as they are (no serializer, no key mangler), so a hit costs
what a bare dogpile memory region's does. The dictionary is the region's own
(``cache_dict``), so a hard invalidation can empty it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dogpile.cache.backends.memory import MemoryBackend

from ..serializers import check_json


class CheckedMemoryBackend(MemoryBackend):
    """Refuses a value JSON cannot hold: a region that is ``memory`` in development
    and ``ext:redis`` in production then fails on the same values in both."""

    def set(self, key: str, value: Any) -> None:
        check_json(value.payload)
        super().set(key, value)  # type: ignore[no-untyped-call]

    def set_multi(self, mapping: Mapping[str, Any]) -> None:
        for value in mapping.values():
            check_json(value.payload)
        super().set_multi(mapping)  # type: ignore[no-untyped-call]


__all__ = ["CheckedMemoryBackend"]
