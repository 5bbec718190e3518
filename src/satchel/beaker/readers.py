"""Readers of the records Beaker left in its stores: file, dbm, ext:database,
ext:redis and ext:memcached.

A reader finds a Beaker session by its id, unwraps its store's layer and hands
back the session dict (plain data only, see :mod:`satchel.beaker.unpickle`); it
deletes a record once it has been converted, and lists the ids it holds for
``satchel migrate beaker``. Each uses its driver's public API.
"""

from __future__ import annotations

import contextlib
import dbm
import os
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ..config.store import StoreConfig
from ..errors import ConfigurationError
from .records import BEAKER_ID, decode_session_value
from .unpickle import UnsafeRecord, plain_loads

#: The table ``ext:database`` creates unless ``table_name`` says otherwise.
BEAKER_TABLE = "beaker_cache"


class BeakerReader(ABC):
    """Beaker's session records in one store."""

    #: The Beaker type this reader serves, for messages.
    kind = ""

    @abstractmethod
    def load(self, beaker_id: str) -> dict[str, Any] | None:
        """The session dict stored for ``beaker_id``, or None; UnsafeRecord when refused."""

    @abstractmethod
    def delete(self, beaker_id: str) -> None:
        """Remove the record (a converted session must not be converted twice)."""

    def ids(self) -> Iterator[str]:
        """Every Beaker session id in the store."""
        raise ConfigurationError(f"Beaker's {self.kind} records cannot be listed; use the transition mode instead")

    def close(self) -> None:
        """Release connections."""


def _check(beaker_id: str) -> str:
    if not BEAKER_ID.fullmatch(beaker_id):
        raise ValueError(f"not a Beaker session id: {beaker_id!r}")
    return beaker_id


def _session_of(container: Any) -> dict[str, Any] | None:
    """The session dict in a container's pickled ``{"session": value}``."""
    if not isinstance(container, dict):
        raise UnsafeRecord(f"the record is a {type(container).__name__}, not Beaker's namespace dict")
    return decode_session_value(container.get("session"))


def _encoded_path(root: Path, beaker_id: str, extension: str) -> Path:
    """Where Beaker's file and dbm containers put a session (``util.encoded_path``)."""
    return root / beaker_id[:1] / beaker_id[:2] / (beaker_id + extension)


class FileReader(BeakerReader):
    """``type = file``: one pickle per session under ``data_dir/container_file``."""

    kind = "file"

    def __init__(self, data_dir: str | os.PathLike[str]) -> None:
        self.root = Path(data_dir) / "container_file"

    def _path(self, beaker_id: str) -> Path:
        return _encoded_path(self.root, _check(beaker_id), ".cache")

    def load(self, beaker_id: str) -> dict[str, Any] | None:
        try:
            raw = self._path(beaker_id).read_bytes()
        except FileNotFoundError:
            return None
        return _session_of(plain_loads(raw))

    def delete(self, beaker_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(beaker_id).unlink()

    def ids(self) -> Iterator[str]:
        for path in self.root.glob("?/??/*.cache"):
            if BEAKER_ID.fullmatch(path.stem):
                yield path.stem


class DbmReader(BeakerReader):
    """``type = dbm``: one dbm file per session under ``data_dir/container_dbm``."""

    kind = "dbm"

    def __init__(self, data_dir: str | os.PathLike[str]) -> None:
        self.root = Path(data_dir) / "container_dbm"

    def _path(self, beaker_id: str) -> Path:
        return _encoded_path(self.root, _check(beaker_id), ".dbm")

    def load(self, beaker_id: str) -> dict[str, Any] | None:
        try:
            with dbm.open(str(self._path(beaker_id)), "r") as db:
                raw = db.get(b"session")
        except dbm.error:
            return None  # no such file (dbm says so with its own error)
        return None if raw is None else decode_session_value(plain_loads(raw))

    def delete(self, beaker_id: str) -> None:
        path = self._path(beaker_id)
        for found in path.parent.glob(path.name + "*"):
            with contextlib.suppress(FileNotFoundError):
                found.unlink()

    def ids(self) -> Iterator[str]:
        seen = set()
        for path in self.root.glob("?/??/*.dbm*"):
            beaker_id = path.name.split(".", 1)[0]
            if BEAKER_ID.fullmatch(beaker_id) and beaker_id not in seen:
                seen.add(beaker_id)
                yield beaker_id


class RedisReader(BeakerReader):
    """``type = ext:redis``: a pickled value under ``beaker_cache:<id>:session``."""

    kind = "ext:redis"

    def __init__(self, client: Any) -> None:
        self.client = client

    @staticmethod
    def key(beaker_id: str) -> str:
        return f"beaker_cache:{_check(beaker_id)}:session"

    def load(self, beaker_id: str) -> dict[str, Any] | None:
        raw = self.client.get(self.key(beaker_id))
        return None if raw is None else decode_session_value(plain_loads(raw))

    def delete(self, beaker_id: str) -> None:
        self.client.delete(self.key(beaker_id))

    def ids(self) -> Iterator[str]:
        for key in self.client.scan_iter(match="beaker_cache:*:session", count=1000):
            beaker_id = key.decode("ascii", "replace").split(":")[1]
            if BEAKER_ID.fullmatch(beaker_id):
                yield beaker_id

    def close(self) -> None:
        self.client.close()


class MemcachedReader(BeakerReader):
    """``type = ext:memcached``: the bare value under ``<id>_session``.

    Beaker spread keys over its servers with python-memcached's own hashing;
    rather than depend on it, every server is asked (a session is on one of them).
    """

    kind = "ext:memcached"

    def __init__(self, clients: list[Any]) -> None:
        self.clients = clients

    @staticmethod
    def key(beaker_id: str) -> str:
        return f"{_check(beaker_id)}_session"

    def load(self, beaker_id: str) -> dict[str, Any] | None:
        key = self.key(beaker_id)
        for client in self.clients:
            raw = client.get(key)
            if raw is not None:
                return decode_session_value(raw)
        return None

    def delete(self, beaker_id: str) -> None:
        for client in self.clients:
            client.delete(self.key(beaker_id), noreply=False)

    def close(self) -> None:
        for client in self.clients:
            client.close()


class SqlReader(BeakerReader):
    """``type = ext:database``: a row per session in Beaker's table (``beaker_cache``
    unless ``table_name`` named another), its ``data`` a pickled namespace dict.

    The column is read as bytes: SQLAlchemy's PickleType would unpickle it unchecked.
    """

    kind = "ext:database"

    def __init__(
        self, engine: Any, table_name: str = BEAKER_TABLE, schema: str | None = None, *, owns_engine: bool = False
    ) -> None:
        import sqlalchemy as sa

        self.sa, self.engine, self.owns_engine = sa, engine, owns_engine
        self.table = sa.Table(
            table_name,
            sa.MetaData(),
            sa.Column("namespace", sa.String(255)),
            sa.Column("data", sa.LargeBinary),
            schema=schema,
        )

    def load(self, beaker_id: str) -> dict[str, Any] | None:
        query = self.sa.select(self.table.c.data).where(self.table.c.namespace == _check(beaker_id))
        with self.engine.connect() as conn:
            raw = conn.execute(query).scalar()
        return None if raw is None else _session_of(plain_loads(bytes(raw)))

    def delete(self, beaker_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(self.table.delete().where(self.table.c.namespace == _check(beaker_id)))

    def ids(self) -> Iterator[str]:
        with self.engine.connect() as conn:
            for (namespace,) in conn.execute(self.sa.select(self.table.c.namespace)):
                if BEAKER_ID.fullmatch(namespace):
                    yield namespace

    def close(self) -> None:
        if self.owns_engine:
            self.engine.dispose()


def open_reader(store: StoreConfig, beaker_type: str | None = None, table_name: str | None = None) -> BeakerReader:
    """The reader of Beaker's records in the store the settings configure.

    ``beaker_type`` is the ``type`` Beaker had (``dbm`` reads dbm files, not the
    file container); ``table_name`` the table ``ext:database`` used.
    """
    options: Mapping[str, Any] = store.options
    if store.type == "file":
        if (beaker_type or "").strip().lower() == "dbm":
            return DbmReader(options["data_dir"])
        return FileReader(options["data_dir"])
    if store.type == "redis":
        from ..stores.redis import redis_client

        return RedisReader(redis_client(options["url"], cluster=False))
    if store.type == "memcached":
        return MemcachedReader(_memcached_clients(options))
    if store.type == "sql":
        given = options.get("bind")
        engine = given if given is not None else _engine(options)
        return SqlReader(engine, table_name or BEAKER_TABLE, options.get("schema_name"), owns_engine=given is None)
    raise ConfigurationError(
        f"Beaker's records cannot be read from a {store.type} store: the transition reads file, dbm, "
        "ext:database, ext:redis and ext:memcached",
        "beaker_transition",
    )


def _memcached_clients(options: Mapping[str, Any]) -> list[Any]:
    from pymemcache.client.base import Client

    from ..stores.memcached import parse_servers

    servers = parse_servers(options.get("url") or list(options.get("urls") or ()))
    return [Client(server, connect_timeout=2, timeout=2) for server in servers]


def _engine(options: Mapping[str, Any]) -> Any:
    from ..stores.sql import create_engine

    sa_options = dict(options.get("sa") or {})
    url = options.get("url") or sa_options.pop("url", None)
    sa_options.pop("url", None)
    return create_engine(url, sa_options)
