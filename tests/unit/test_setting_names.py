"""Naming the setting a typo most likely meant."""

from __future__ import annotations

import pytest

from satchel.config.names import nearest


def test_a_swap_of_two_neighbouring_letters_beats_an_equally_similar_name() -> None:
    assert nearest("secrte", ["secure", "secret"]) == "secret"
    assert nearest("secrte", ["secret", "secure"]) == "secret"


def test_the_most_similar_name_wins() -> None:
    assert nearest("timout", ["timeout", "absolute_timeout", "type"]) == "timeout"


@pytest.mark.parametrize("typo", ["zzzzqqq", "x", ""])
def test_nothing_close_means_no_suggestion(typo: str) -> None:
    assert nearest(typo, ["timeout", "secret", "secure"]) is None


def test_a_swap_is_suggested_even_where_similarity_alone_is_too_low() -> None:
    assert nearest("ky", ["key", "yk"]) == "yk"
    assert nearest("kye", ["keys", "key"]) == "key"
