"""Moving from Beaker: reading its session records safely, converting them, and the
transition mode that keeps visitors logged in across the switch."""

from __future__ import annotations

from .records import BeakerSession as BeakerSession
from .records import beaker_cookie_id as beaker_cookie_id
from .records import convert as convert
from .records import decode_session_value as decode_session_value
from .unpickle import UnsafeRecord as UnsafeRecord
from .unpickle import plain_loads as plain_loads
