"""Where satchel reads the time: a clock is any callable returning Unix time.

Stores and the session policy take one, so tests of expiry move a fake clock
(``satchel.testing.FakeClock``) instead of sleeping.
"""

from __future__ import annotations

import time
from collections.abc import Callable

#: A clock: returns the current time as a Unix timestamp (seconds, float).
Clock = Callable[[], float]


#: The real clock.
system_clock: Clock = time.time
