"""What a pyramid_beaker INI means once satchel reads it: cache defaults, Beaker's
table, and missing drivers that say what to install."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from satchel.config import parse_cache_settings, parse_session_settings
from satchel.errors import ConfigurationError
from satchel.stores import open_store
from tests.beaker.conftest import COMMON
from tests.beaker.shop import beaker_app, shop_visit, unique
from tests.support.services import POSTGRES_URL, need_port

SRC = Path(__file__).resolve().parents[2] / "src"


def test_a_cache_region_without_expire_keeps_values_sixty_seconds_as_pyramid_beaker_did() -> None:
    regions = parse_cache_settings(
        {"cache.regions": "default_term, forever", "cache.type": "memory", "cache.forever.expire": "none"}
    ).regions
    assert regions["default_term"].expire == 60
    assert regions["forever"].expire is None


def test_pointing_satchel_at_beakers_table_says_how_to_keep_it_for_the_transition(tmp_path: Path) -> None:
    need_port("127.0.0.1", 5432, "PostgreSQL")
    import sqlalchemy as sa

    table = unique("beaker_t")
    settings: dict[str, Any] = {
        **COMMON,
        "session.type": "ext:database",
        "session.url": POSTGRES_URL,
        "session.table_name": table,
        "session.lock_dir": str(tmp_path),
    }
    shop_visit(beaker_app(settings), "alice")
    try:
        with pytest.raises(ConfigurationError, match="beaker_table_name") as info:
            store = open_store(parse_session_settings(settings).store)
            store.load("0" * 64)
        assert "has another layout" in str(info.value)
    finally:
        engine = sa.create_engine(POSTGRES_URL)
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP TABLE IF EXISTS "{table}"'))
        engine.dispose()


@pytest.mark.parametrize(
    ("blocked", "code", "extra"),
    [
        ("dogpile", "import satchel.cache", "cache"),
        ("redis", "import satchel.stores.redis", "redis"),
        ("sqlalchemy", "from satchel.stores.sql import SQLStore; SQLStore.from_options({'url': 'sqlite://'})", "sql"),
        (
            "pymemcache",
            "from satchel.stores.memcached import MemcachedStore as M; M.from_options({'url': 'h:1'})",
            "memcached",
        ),
        (
            "cryptography",
            "from satchel.codecs.sealing import EncryptedSealer; EncryptedSealer(['k' * 32], b'')",
            "cookie",
        ),
    ],
)
def test_a_missing_driver_names_the_pip_install_line(blocked: str, code: str, extra: str) -> None:
    script = f"import sys; sys.modules[{blocked!r}] = None\n{code}"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env={"PYTHONPATH": str(SRC)}, check=False
    )
    assert done.returncode != 0
    assert f'pip install "satchel[{extra}]"' in done.stderr, done.stderr
