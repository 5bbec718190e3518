"""Tools for testing stores and applications: a fake clock and the store contract.

:class:`FakeClock` needs nothing beyond satchel. The contract suite
(:class:`StoreContract`, :class:`AsyncStoreContract`, :func:`new_key`,
:func:`assert_fork_safe`) is a set of pytest tests: importing those names needs
pytest installed, and imports it then (``import satchel`` never does). A third
party's store proves itself with one class::

    import pytest
    from satchel.testing import StoreContract

    class TestMyStore(StoreContract):
        uses_clock = True  # MyStore reads the time from the clock it is given

        @pytest.fixture
        def store(self, clock):
            store = MyStore(clock=clock)
            yield store
            store.close()
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .clock import FakeClock as FakeClock

if TYPE_CHECKING:
    from .contract import AsyncStoreContract as AsyncStoreContract
    from .contract import StoreContract as StoreContract
    from .contract import assert_fork_safe as assert_fork_safe
    from .contract import new_key as new_key
    from .facade import AsyncStore as AsyncStore
    from .facade import BlockingStore as BlockingStore
    from .facade import SyncStore as SyncStore

_CONTRACT = ("AsyncStoreContract", "StoreContract", "assert_fork_safe", "new_key")
_FACADE = ("AsyncStore", "BlockingStore", "SyncStore")


def __getattr__(name: str) -> Any:
    # The contract imports pytest: only a caller that asks for it pays for it.
    if name in _CONTRACT:
        import pytest

        # Plain asserts in an installed package are rewritten only if pytest is
        # told before the module is imported; the messages then show the values.
        pytest.register_assert_rewrite(f"{__name__}.contract")
        from . import contract

        return getattr(contract, name)
    if name in _FACADE:
        from . import facade

        return getattr(facade, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AsyncStore",
    "AsyncStoreContract",
    "BlockingStore",
    "FakeClock",
    "StoreContract",
    "SyncStore",
    "assert_fork_safe",
    "new_key",
]
