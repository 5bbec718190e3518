"""Response headers every web adapter adds the same way."""

from __future__ import annotations


def vary_cookie(headers: list[tuple[str, str]]) -> None:
    """Put ``Cookie`` in ``Vary`` in place: a header of its own where there is no
    Vary header (the common case, so no parsing), else joined to the first one,
    unless some Vary header already names it or ``*``."""
    first = None
    for index, (name, _) in enumerate(headers):
        if len(name) == 4 and name.lower() == "vary":  # lower() only for four-letter names
            first = index
            break
    if first is None:
        headers.append(("Vary", "Cookie"))
        return
    tokens = {
        token.strip().lower() for name, value in headers[first:] if name.lower() == "vary" for token in value.split(",")
    }
    if "cookie" not in tokens and "*" not in tokens:
        name, value = headers[first]
        headers[first] = (name, f"{value}, Cookie" if value.strip() else "Cookie")
