"""A stored session record: a short text header and a JSON body.

``S1 <created> <accessed>\\n{"d": data, "f": flash, "t": csrf token, "u": user}``

The body is one JSON object. Its data is written one entry per line::

    {"d":{
    "cart":{"apple":2},
    "user":"ada"
    },"f":{"":["Saved"]},"t":"..."}

JSON allows the line breaks, and compact JSON never writes one anywhere else, so a
line that starts a top-level entry can be found by searching for it: a session is
read a value at a time (:class:`Entries`), and a change to one key is written by
replacing that key's line, without decoding or encoding the rest. A body written
without the line breaks (by earlier versions, or with no data) reads whole.

A body whose values hold tagged types (:mod:`.tagged`) starts ``{"x":1,``; any
other body is plain JSON and decodes as such.
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

from ..errors import BadData
from .tagged import PLAIN_TYPES, READ_ERRORS, escaped, is_plain, looks_tagged, untag_object
from .values import MAX_DEPTH, dumps, encode_value, only_plain, to_json, too_deep

#: The body of a session with no data, no flash messages and no CSRF token.
EMPTY_BODY = b'{"d":{}}'
HEADER_MAGIC = b"S1"


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number a session can hold")


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"{text} is too large a number for a session")
    return number


# NaN, Infinity and numbers that overflow to them load as errors: a session
# holding one could never be written again.
_decoder = json.JSONDecoder(parse_constant=_no_constant, parse_float=_finite)
_tagged_decoder = json.JSONDecoder(parse_constant=_no_constant, parse_float=_finite, object_hook=untag_object)
TAGGED_START = b'{"x":1,'


def _loads(raw: bytes, tagged: bool) -> Any:
    """The one JSON document ``raw`` holds (a body, its tail or one value): satchel
    writes them without surrounding whitespace, so nothing but the document is read."""
    text = raw.decode("utf-8")
    value, end = (_tagged_decoder if tagged else _decoder).raw_decode(text)
    if end != len(text):
        raise ValueError(f"extra data after the JSON at character {end}")
    return value


_PLAIN_HEAD = '{"d":{'
_TAGGED_HEAD = '{"x":1,"d":{'
_LINED = (b'{"d":{\n', b'{"x":1,"d":{\n')
#: Where the data of a body written one entry per line ends.
_DATA_END = b"\n}"


def _nests_too_deep(raw: bytes, values: Iterable[Any]) -> bool:
    """Whether one of the values decoded from ``raw`` nests past MAX_DEPTH (its brackets
    are counted first: most bodies hold too few to)."""
    return raw.count(b"[") + raw.count(b"{") > MAX_DEPTH and any(too_deep(value) for value in values)


@dataclass(slots=True)
class Body:
    """What a session holds, decoded; ``entries`` instead of ``data`` when the values
    are left encoded until they are read (:func:`open_body`)."""

    data: dict[str, Any]
    flash: dict[str, list[Any]]
    csrf: str | None
    user: str | None = None
    entries: Entries | None = None


#: What the values of a session's data are, from the most to the least plain.
SCALARS, PLAIN, TAGGED = "scalars", "plain", "tagged"


def _kind(data: dict[str, Any], flash: dict[str, list[Any]]) -> str:
    """SCALARS when every value is a JSON scalar, PLAIN when they are all plain JSON,
    TAGGED when one needs a tag (a flash message too)."""
    kind = SCALARS
    for value in data.values():
        if type(value) not in PLAIN_TYPES:
            if not is_plain(value):
                return TAGGED
            kind = PLAIN
    return TAGGED if flash and not all_plain_flash(flash) else kind


def all_plain_flash(flash: dict[str, list[Any]]) -> bool:
    for messages in flash.values():
        for message in messages:
            if type(message) not in PLAIN_TYPES and not is_plain(message):
                return False
    return True


def _members(
    into: dict[str, Any], flash: dict[str, list[Any]], csrf: str | None, user: str | None, tagged: bool
) -> dict[str, Any]:
    """``into`` with the body's members that follow the data: flash queues, CSRF token, user."""
    if flash:
        into["f"] = (
            escaped({q: [to_json(m, f"flash queue {q!r}") for m in messages] for q, messages in flash.items()})
            if tagged
            else flash
        )
    if csrf is not None:
        into["t"] = csrf
    if user is not None:
        into["u"] = user
    return into


def encode_tail(flash: dict[str, list[Any]], csrf: str | None, user: str | None, tagged: bool) -> bytes:
    """What follows a body's data: ``}``, or ``,"f":...}`` with the flash queues, token and user."""
    if not (flash or csrf is not None or user is not None):
        return b"}"
    try:
        return b"," + dumps(_members({}, flash, csrf, user, tagged))[1:].encode("utf-8")
    except (TypeError, ValueError, RecursionError):
        _name_flash_error(flash)
        raise


def _name_flash_error(flash: dict[str, list[Any]]) -> None:
    for queue, messages in flash.items():
        encode_value(messages, f"flash queue {queue!r}")


#: Bodies with fewer keys, all of immutable values, and no larger than this once
#: encoded, are written whole: one JSON call each way costs less than reading and
#: writing them a value at a time, and a request that reads them encodes nothing.
#: A list or dict among the values would be encoded at every commit to look for a
#: change inside it: such bodies are written one entry per line.
LINED_MIN_KEYS = 16
LINED_MIN_CHARS = 1024


def encode_body(data: dict[str, Any], flash: dict[str, list[Any]], csrf: str | None, user: str | None = None) -> bytes:
    """The body's JSON, one data entry per line unless it is small; NotSerializable
    naming the key when a value cannot be stored (also a value changed in place
    after it was assigned)."""
    kind = _kind(data, flash)
    tagged = kind is TAGGED
    # A lone "~key" in a tagged body would read as a tag: that data is written whole, escaped.
    whole = tagged and looks_tagged(data)
    try:
        if whole or (len(data) < LINED_MIN_KEYS and (kind is SCALARS or only_plain(data))):
            members = {"x": 1, "d": escaped({k: to_json(v, k) for k, v in data.items()})} if tagged else {"d": data}
            text = dumps(_members(members, flash, csrf, user, tagged))
            if whole or len(text) <= LINED_MIN_CHARS:
                return text.encode("utf-8")
        enc = dumps
        if tagged:
            lines = ",".join([f"\n{enc(key)}:{enc(to_json(value, key))}" for key, value in data.items()])
        else:
            lines = ",".join([f"\n{enc(key)}:{enc(value)}" for key, value in data.items()])
        text = (_TAGGED_HEAD if tagged else _PLAIN_HEAD) + lines + "\n}"
        return text.encode("utf-8") + encode_tail(flash, csrf, user, tagged)
    except (TypeError, ValueError, RecursionError):
        # A number or text JSON cannot carry: find the key to name.
        for key, value in data.items():
            encode_value(value, key)
        _name_flash_error(flash)
        raise


def same_layout(body: bytes, other: bytes) -> bool:
    """Whether two bodies were written the same way (whole or one entry per line,
    tagged or not): then different bytes mean different contents."""
    return body.startswith(_LINED) == other.startswith(_LINED) and body.startswith(TAGGED_START) == other.startswith(
        TAGGED_START
    )


def encode_piece(value: Any, key: str, tagged: bool) -> bytes | None:
    """One value's JSON as a body's line holds it; None when a plain body cannot hold
    it (it needs tags). NotSerializable naming ``key`` when it cannot be stored."""
    if not tagged and type(value) not in PLAIN_TYPES and not is_plain(value):
        return None
    try:
        return dumps(to_json(value, key) if tagged else value).encode("utf-8")
    except (TypeError, ValueError, RecursionError):
        encode_value(value, key)
        raise


def _check_shape(data: Any, flash: Any, csrf: Any, user: Any) -> None:
    if (
        type(data) is not dict
        or type(flash) is not dict
        or (flash and not all(type(v) is list for v in flash.values()))
        or not (csrf is None or type(csrf) is str)
        or not (user is None or type(user) is str)
    ):
        raise BadData("session body has the wrong shape")


def decode_body(raw: bytes) -> Body:
    """The body of a record, decoded whole, or BadData for anything that is not one."""
    try:
        body = _loads(raw, raw.startswith(TAGGED_START))
        data, flash, csrf, user = body["d"], body.get("f", {}), body.get("t"), body.get("u")
    except (*READ_ERRORS, UnicodeDecodeError, AttributeError) as exc:
        raise BadData(f"session body is not valid: {exc}") from None
    _check_shape(data, flash, csrf, user)
    if _nests_too_deep(raw, data.values()):
        raise BadData(f"session body nests more than {MAX_DEPTH} levels deep")
    return Body(data, flash, csrf, user)


def open_body(raw: bytes) -> Body:
    """The body of a record with its data left encoded where it was written one entry
    per line (:class:`Entries`); decoded whole otherwise. BadData for what is not a body
    (a value that does not decode is found when it is read)."""
    if not raw.startswith(_LINED):
        return decode_body(raw)
    tagged = raw.startswith(TAGGED_START)
    start = len(_LINED[tagged]) - 1
    end = raw.rfind(_DATA_END, start)  # the members after the data are short and hold no line break
    tail = raw[end + len(_DATA_END) :]
    if end < 0 or not (tail == b"}" or (tail.startswith(b",") and tail.endswith(b"}"))):
        raise BadData("session body is not valid: its data does not end")
    entries = Entries(raw, start, end, tagged)
    if tail == b"}":
        return Body({}, {}, None, None, entries)
    try:
        meta = _loads(b"{" + tail[1:], tagged)
        flash, csrf, user = meta.get("f", {}), meta.get("t"), meta.get("u")
    except (*READ_ERRORS, UnicodeDecodeError, AttributeError) as exc:
        raise BadData(f"session body is not valid: {exc}") from None
    _check_shape({}, flash, csrf, user)
    return Body({}, flash, csrf, user, entries)


class Entries:
    """A body's data still encoded, one entry per line: a value is found by searching
    for its key's line and decoded when it is read; changes are written by replacing
    lines. Every search and splice is a bytes operation, whatever the number of keys."""

    __slots__ = ("body", "end", "start", "tagged")

    def __init__(self, body: bytes, start: int, end: int, tagged: bool) -> None:
        #: The whole body; the data's lines lie between ``start`` and ``end``.
        self.body = body
        self.start = start
        self.end = end
        #: Whether the body's values are read and written with tags.
        self.tagged = tagged

    @property
    def tail(self) -> bytes:
        """What follows the data: ``}`` or the flash queues, token and user."""
        return self.body[self.end + len(_DATA_END) :]

    def piece(self, key: str) -> bytes | None:
        """The JSON of ``key``'s value as stored, or None when the body has no such key."""
        needle = _needle(key)
        at = self.body.find(needle, self.start, self.end)
        if at < 0:
            return None
        return self.body[at + len(needle) : _line_end(self.body, at, self.end)].removesuffix(b",")

    def first(self) -> tuple[str, bytes] | None:
        """The first entry's key and value JSON; None when its line is not one."""
        line = self.body[self.start + 1 : _line_end(self.body, self.start, self.end)].removesuffix(b",")
        try:
            return _entry(line)
        except (*READ_ERRORS, UnicodeDecodeError):
            return None

    def decode(self, piece: bytes) -> Any:
        """One value from its JSON; BadData when it is not one a session can hold."""
        try:
            value = _loads(piece, self.tagged)
        except (*READ_ERRORS, UnicodeDecodeError) as exc:
            raise BadData(f"a session value is not valid: {exc}") from None
        if _nests_too_deep(piece, (value,)):
            raise BadData(f"a session value nests more than {MAX_DEPTH} levels deep")
        return value

    def decode_all(self) -> tuple[dict[str, Any], list[str]]:
        """Every value, decoded in one go, and the keys of the lines that did not
        decode (left out)."""
        data = self.body[self.start - 1 : self.end + len(_DATA_END)]  # "{" + lines + "\n}"
        try:
            whole = _loads(data, self.tagged)
            if type(whole) is dict and not _nests_too_deep(data, whole.values()):
                return whole, []
        except (*READ_ERRORS, UnicodeDecodeError):
            pass
        out: dict[str, Any] = {}
        bad: list[str] = []
        for line in data[2:-2].split(b",\n"):  # one "key":value each
            try:
                key, piece = _entry(line)
                out[key] = self.decode(piece)
            except (*READ_ERRORS, UnicodeDecodeError, BadData):
                bad.append(repr(line[:40]))
        return out, bad

    def spliced(self, changed: dict[str, bytes], removed: Collection[str], tail: bytes) -> bytes:
        """The body with ``changed`` keys' lines replaced (or added at the end), the
        ``removed`` keys' lines taken out, and ``tail`` after the data."""
        lines = self.body[self.start : self.end]  # "\n" + entry, entries joined by ","
        for key in removed:
            lines = _without(lines, _needle(key))
        for key, piece in changed.items():
            needle = _needle(key)
            at = -1 if key in removed else lines.find(needle)
            if at < 0:
                lines = b"%s,%s%s" % (lines, needle, piece) if lines else needle + piece
                continue
            stop = _line_end(lines, at, len(lines))
            comma = b"," if lines[stop - 1] == 0x2C else b""  # 0x2C: another entry follows
            lines = b"%s%s%s%s%s" % (lines[:at], needle, piece, comma, lines[stop:])
        head = self.body[: self.start]
        return head + lines + _DATA_END + tail if lines else head + b"}" + tail


def _needle(key: str) -> bytes:
    """What starts ``key``'s line: a line break, the key's JSON and the colon."""
    return b"\n%s:" % dumps(key).encode("utf-8")


def _line_end(text: bytes, at: int, end: int) -> int:
    """Where the line starting at ``at`` (its line break) ends: the next line break, or ``end``."""
    stop = text.find(b"\n", at + 1, end)
    return end if stop < 0 else stop


def _entry(line: bytes) -> tuple[str, bytes]:
    """The key and the value's JSON of one ``"key":value`` line (ValueError when it is not one)."""
    text = line.decode("utf-8")
    key, end = _decoder.raw_decode(text)
    if type(key) is not str or text[end : end + 1] != ":":
        raise ValueError("not a session entry")
    return key, line[len(text[: end + 1].encode("utf-8")) :]


def _without(lines: bytes, needle: bytes) -> bytes:
    """``lines`` without the entry that starts with ``needle``, and its separating comma."""
    at = lines.find(needle)
    if at < 0:
        return lines
    stop = _line_end(lines, at, len(lines))
    if lines[stop - 1] == 0x2C:  # followed by another entry: drop "entry,"
        return lines[:at] + lines[stop:]
    return lines[: max(at - 1, 0)] + lines[stop:]  # the last entry: drop ",entry"


def encode_record(created: float, accessed: float, body: bytes) -> bytes:
    return b"%s %.3f %.3f\n%s" % (HEADER_MAGIC, created, accessed, body)


def split_record(raw: bytes) -> tuple[float, float, bytes]:
    """(created, accessed, body) of a stored record; BadData when it is not one."""
    header, newline, body = raw.partition(b"\n")
    parts = header.split(b" ")
    if not newline or len(parts) != 3 or parts[0] != HEADER_MAGIC:
        raise BadData("stored record has no valid header")
    try:
        return float(parts[1]), float(parts[2]), body
    except ValueError:
        raise BadData("stored record has a bad timestamp") from None
