"""Fixtures of the cache tests; the helpers they share are in tests/support/cache.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cache import SHARED_KINDS, server_settings


@pytest.fixture(params=SHARED_KINDS)
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """Settings for region ``r`` on each shared backend in turn, under a fresh key prefix."""
    return server_settings(request.param, tmp_path)
