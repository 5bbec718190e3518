"""Why satchel reads a session a value at a time with the standard library, not msgspec.

    .venv/bin/python bench/codec_split.py [--keys 1000]

A session of K keys of 24-character strings plus a nested dict of K // 10 entries,
as a stored body. Timed, in µs per call (the fastest of 5 repeats):

- decoding the whole body: the json module, msgspec;
- splitting it into per-key raw JSON values without decoding them: msgspec's
  ``dict[str, msgspec.Raw]``;
- joining raw values back into a body: msgspec's encoder over ``Raw`` values;
- encoding the whole body: the json module, msgspec;
- what satchel does instead: find one key's line in a body written one entry per
  line and decode that value, and replace one key's line
  (:class:`satchel.codecs.record.Entries`).

msgspec ships with Litestar, so it is in the development environment; satchel
itself does not depend on it.
"""

from __future__ import annotations

import argparse
import json
import timeit
from collections.abc import Callable

import msgspec

from satchel.codecs import encode_body, open_body


class Split(msgspec.Struct):
    d: dict[str, msgspec.Raw]
    f: msgspec.Raw | None = None
    t: str | None = None
    u: str | None = None
    x: int = 0


def time_us(op: Callable[[], object], number: int) -> float:
    return min(timeit.repeat(op, number=number, repeat=5)) / number * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--number", type=int, default=500)
    args = parser.parse_args()
    data: dict[str, object] = {f"k{i:04d}": f"value-{i:018d}" for i in range(args.keys)}
    data["nested"] = {f"n{i}": f"inner-{i:018d}" for i in range(args.keys // 10)}
    whole = json.dumps({"d": data}, separators=(",", ":"), ensure_ascii=False).encode()
    lined = encode_body(data, {}, None, None)
    split = msgspec.json.Decoder(Split)
    encoder = msgspec.json.Encoder()
    raw = split.decode(whole)
    entries = open_body(lined).entries
    assert entries is not None and encoder.encode({"d": raw.d}) == whole

    def satchel_read() -> object:
        piece = entries.piece("k0002")
        assert piece is not None
        return entries.decode(piece)

    rows = [
        ("json: decode the whole body", lambda: json.loads(whole)),
        ("msgspec: decode the whole body", lambda: msgspec.json.decode(whole)),
        ("msgspec: split into raw values", lambda: split.decode(whole)),
        ("msgspec: join raw values", lambda: encoder.encode({"d": raw.d})),
        ("json: encode the whole body", lambda: json.dumps({"d": data}, separators=(",", ":"))),
        ("msgspec: encode the whole body", lambda: encoder.encode({"d": data})),
        ("satchel: find and decode one value", satchel_read),
        ("satchel: replace one value's line", lambda: entries.spliced({"k0001": b'"changed"'}, (), b"}")),
    ]
    print(f"{args.keys} keys, body of {len(whole)} bytes (µs per call)")
    for name, op in rows:
        print(f"  {name:38s} {time_us(op, args.number):9.1f}")


if __name__ == "__main__":
    main()
