"""One exception tree for everything satchel raises.

Every error a caller may want to handle derives from :class:`SatchelError`, so an
application can turn all of them into one error page, or pick out the few it
treats differently (a :class:`StoreUnavailable` is usually a 503).
"""

from __future__ import annotations


class SatchelError(Exception):
    """The root of every error satchel raises."""


class ConfigurationError(SatchelError, ValueError):
    """A setting is missing, unknown, or has a value satchel cannot use.

    Raised at start-up, while the settings are parsed, never at the first request.
    ``key`` names the offending setting when there is one.
    """

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class StoreUnavailable(SatchelError):
    """The store's server cannot be reached, or its driver is not installed.

    ``store`` names the store and ``address`` where it was looked for, so the log
    line says which server to look at. An application usually answers 503.
    """

    def __init__(self, message: str, store: str = "", address: str = "") -> None:
        super().__init__(message)
        self.store = store
        self.address = address


class StoreError(SatchelError):
    """The store answered, but with an error; the driver's exception is chained."""


class BadData(SatchelError):
    """A cookie or a stored record failed verification or could not be decoded.

    Never reaches the application: the session manager logs it on the
    ``satchel.security`` logger and starts a fresh session.
    """


class NotSerializable(SatchelError, TypeError):
    """A session value cannot be stored as JSON. ``key`` names the session key."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class SessionTooLarge(SatchelError):
    """The session no longer fits in what the cookie (or store) can hold.

    Raised while the application can still handle it, with ``size`` and ``limit``
    in bytes.
    """

    def __init__(self, message: str, size: int = 0, limit: int = 0) -> None:
        super().__init__(message)
        self.size = size
        self.limit = limit


class SessionConflict(SatchelError):
    """Concurrent requests kept changing the session until the retries ran out."""
