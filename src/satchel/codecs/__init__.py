"""Codecs: session records, value checks, id signing and cookie sealing."""

from __future__ import annotations

from .record import EMPTY_BODY as EMPTY_BODY
from .record import HEADER_MAGIC as HEADER_MAGIC
from .record import Body as Body
from .record import Entries as Entries
from .record import all_plain_flash as all_plain_flash
from .record import decode_body as decode_body
from .record import encode_body as encode_body
from .record import encode_piece as encode_piece
from .record import encode_record as encode_record
from .record import encode_tail as encode_tail
from .record import open_body as open_body
from .record import same_layout as same_layout
from .record import split_record as split_record
from .signing import Signer as Signer
from .signing import new_session_id as new_session_id
from .signing import new_token as new_token
from .signing import store_key as store_key
from .values import PLAIN_TYPES as PLAIN_TYPES
from .values import check_value as check_value
from .values import encode_value as encode_value
from .values import only_plain as only_plain
