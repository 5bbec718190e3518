"""Beaker's names for stores, shared by session types and cache region types.

Applications keep the ``type`` values their Beaker settings have; each maps to
the satchel store that serves it.
"""

from __future__ import annotations

#: Beaker's type names (with and without ``ext:``) mapped to satchel's store names.
TYPES = {
    "memory": "memory",
    "file": "file",
    "dbm": "file",
    "cookie": "cookie",
    "ext:memcached": "memcached",
    "memcached": "memcached",
    "ext:database": "sql",
    "ext:sqla": "sql",
    "database": "sql",
    "sqla": "sql",
    "sql": "sql",
    "ext:redis": "redis",
    "redis": "redis",
    "ext:rediscluster": "rediscluster",
    "rediscluster": "rediscluster",
}

#: Beaker types satchel has no store for, with what to use instead.
GONE = {
    "ext:mongodb": "MongoDB is not a satchel store; use redis, memcached or sql",
    "mongodb": "MongoDB is not a satchel store; use redis, memcached or sql",
    "ext:google": "the Google App Engine store is gone; use redis, memcached or sql",
}

#: Settings Beaker documents that only some stores read. Given with a store that
#: does not read them they have no effect: a warning at start-up, not an error.
STORE_SETTINGS = frozenset(
    {
        "url",
        "urls",
        "data_dir",
        "lock_dir",
        "table_name",
        "schema_name",
        "sa",
        "bind",
        "memcache_module",
        "key_prefix",
        "memcached_meta",
    }
)

#: What each of satchel's own stores cannot open without, by setting name: one of
#: each group must be given (the first one is named in the error).
REQUIRED: dict[str, tuple[str, ...]] = {
    "file": ("data_dir",),
    "redis": ("url",),
    "memcached": ("url", "urls"),
    "sql": ("url", "bind", "sa.url"),
    "rediscluster": ("urls", "url"),
}

#: The package extra that installs each store's driver.
EXTRAS = {"redis": "redis", "rediscluster": "redis", "memcached": "memcached", "sql": "sql"}


def store_name(type_name: str) -> str | None:
    """satchel's store name for a Beaker type name (any case), or None."""
    return TYPES.get(type_name.strip().lower())
