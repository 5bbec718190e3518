"""A clock that stands still until a test moves it."""

from __future__ import annotations

#: 2023-11-14 22:13:20 UTC: a realistic Unix time, fixed so that runs repeat.
DEFAULT_START = 1_700_000_000.0


class FakeClock:
    """A :data:`satchel.clock.Clock` for tests: returns the same Unix time until
    :meth:`advance` moves it.

    Pass it wherever satchel takes a ``clock`` (``SessionManager(..., clock=)``,
    ``session_factory_from_settings(..., clock=)``, ``MemoryStore(clock=)``,
    ``FileStore(..., clock=)``, a store's ``from_options(..., clock=)``): a test of
    an expiry then moves the clock past it instead of sleeping through it.
    """

    def __init__(self, start: float = DEFAULT_START) -> None:
        #: The time the clock shows (Unix time, seconds).
        self.now = float(start)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        """Move the clock by ``seconds`` and return the new time. A negative step
        models a server whose clock runs behind the one that wrote a record."""
        self.now += seconds
        return self.now

    def __repr__(self) -> str:
        return f"FakeClock({self.now!r})"
