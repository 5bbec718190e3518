"""Helpers the cache tests share (this module holds no tests).

Every server test works under its own random ``key_prefix``, so tests never see
each other's values, generations or locks on the shared servers.
"""

from __future__ import annotations

import secrets
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit

from services import MEMCACHED_SERVERS, POSTGRES_URL, REDIS_URL, need, need_port

FIELD_BLOCK = {
    "cache.regions": "default_term, second, short_term, long_term",
    "cache.type": "memory",
    "cache.second.expire": "1",
    "cache.short_term.expire": "60",
    "cache.default_term.expire": "300",
    "cache.long_term.expire": "3600",
}
SESSION = {
    "session.secret": "0cb243f53ad865a0f70099c0414ffe9cfcfe03ac",
    "session.type": "memory",
}

#: The shared backends, by the names the tests use.
TYPES = {
    "redis": "ext:redis",
    "memcached": "ext:memcached",
    "file": "file",
    "sql": "ext:database",
    "postgres": "ext:database",
}


def need_redis() -> None:
    parts = urlsplit(REDIS_URL)
    need_port(parts.hostname or "127.0.0.1", parts.port or 6379, "Redis")


def need_memcached() -> None:
    for server in MEMCACHED_SERVERS.replace(",", ";").split(";"):
        host, _, port = server.strip().rpartition(":")
        need_port(host, int(port), "memcached")


def need_postgres() -> None:
    parts = urlsplit(POSTGRES_URL.replace("postgresql+psycopg", "postgresql"))
    need_port(parts.hostname or "127.0.0.1", parts.port or 5432, "PostgreSQL")


def server_settings(kind: str, tmp_path: Path, expire: int | None = 60, **extra: str) -> dict[str, str]:
    """Settings for one region ``r`` on backend ``kind``, under a fresh key prefix."""
    settings = {
        "cache.regions": "r",
        "cache.type": TYPES[kind],
        "cache.key_prefix": f"t{secrets.token_hex(5)}:",
        "cache.expire": str(expire) if expire else "none",
    }
    if kind == "redis":
        need_redis()
        settings["cache.url"] = REDIS_URL
    elif kind == "memcached":
        need_memcached()
        settings["cache.url"] = MEMCACHED_SERVERS
    elif kind == "file":
        settings["cache.data_dir"] = str(tmp_path / "cache-data")
        settings["cache.lock_dir"] = str(tmp_path / "cache-lock")
    elif kind == "sql":
        settings["cache.url"] = f"sqlite:///{tmp_path / 'cache.sqlite'}"
    elif kind == "postgres":
        need_postgres()
        settings["cache.url"] = POSTGRES_URL
    settings.update({f"cache.{k}": v for k, v in extra.items()})
    return settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """A throw-away redis-server on a free port, started, killed and restarted by a test."""

    def __init__(self, workdir: Path) -> None:
        need(shutil.which("redis-server") is not None, "the redis-server program")
        self.port = free_port()
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                assert self.process.poll() is None, "redis-server exited at start"
                assert time.monotonic() < deadline, "redis-server did not answer within 10 s"
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
        self.process = None
