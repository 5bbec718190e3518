"""How guessable a configured secret is.

A secret must be long and random: one an attacker can guess signs cookies as
well as the application does. Length and distinct characters alone let
placeholders through (``changeme-changeme-changeme-changeme``, ``password1``
four times), so the estimate counts what is left of a secret once the patterns a
guesser tries first are taken out: common words, repetition of a shorter unit,
and runs of consecutive or equal characters.
"""

from __future__ import annotations

import math
import string

#: Estimated bits of randomness a secret must have.
MIN_BITS = 100

#: Words guessers try first, and that placeholders are made of.
COMMON_WORDS = (
    "password",
    "passwd",
    "changeme",
    "change",
    "secret",
    "admin",
    "letmein",
    "qwerty",
    "azerty",
    "welcome",
    "default",
    "example",
    "sample",
    "placeholder",
    "replace",
    "insert",
    "your",
    "mykey",
    "key",
    "test",
    "dummy",
    "session",
    "cookie",
    "pyramid",
    "beaker",
    "satchel",
    "django",
    "flask",
    "token",
    "abc",
    "xyz",
    "qwe",
)

_CLASSES = (string.digits, string.ascii_lowercase, string.ascii_uppercase)


def _smallest_period(text: str) -> int:
    """The length of the shortest unit ``text`` is a repetition of (len(text) if none)."""
    for period in range(1, len(text) // 2 + 1):
        if all(text[i] == text[i % period] for i in range(len(text))):
            return period
    return len(text)


def _unpredictable_symbols(text: str) -> int:
    """How many characters do not continue a run of equal or consecutive ones."""
    count, step = 0, None
    for index, char in enumerate(text):
        if index == 0:
            count += 1
            continue
        delta = ord(char) - ord(text[index - 1])
        if delta in (-1, 0, 1) and delta == step:
            continue  # predictable: the run goes on
        step = delta if delta in (-1, 0, 1) else None
        count += 1
    return count


def _alphabet(text: str) -> int:
    size = sum(len(chars) for chars in _CLASSES if any(c in chars for c in text))
    if any(not any(c in chars for chars in _CLASSES) for c in text):
        size += 33  # punctuation and the rest
    return max(size, 2)


def estimated_bits(secret: str) -> float:
    """A conservative estimate of the secret's randomness in bits."""
    reduced = secret.lower()
    for word in sorted(COMMON_WORDS, key=len, reverse=True):
        reduced = reduced.replace(word, "\x00")
    unit = reduced[: _smallest_period(reduced)]
    symbols = _unpredictable_symbols(unit)
    return symbols * math.log2(_alphabet(secret))


def is_guessable(secret: str) -> bool:
    return estimated_bits(secret) < MIN_BITS
