"""Reaching the real servers tests need: skip loudly on a laptop, fail in CI.

With ``SATCHEL_REQUIRE_SERVICES=1`` (CI sets it) a missing server fails the test
instead of skipping it, so no server test can silently stop running.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Iterator

import pytest

REQUIRED = os.environ.get("SATCHEL_REQUIRE_SERVICES") == "1"

REDIS_URL = os.environ.get("SATCHEL_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
REDIS_CLUSTER_PORTS = tuple(
    int(p) for p in os.environ.get("SATCHEL_TEST_REDIS_CLUSTER_PORTS", "7000 7001 7002").split()
)
#: A Valkey server (``.ci/services/valkey.sh``): the Redis stores and cache backend run on it too.
VALKEY_URL = os.environ.get("SATCHEL_TEST_VALKEY_URL", "redis://127.0.0.1:6390/15")
MEMCACHED_SERVERS = os.environ.get("SATCHEL_TEST_MEMCACHED", "127.0.0.1:11211;127.0.0.1:11212")
POSTGRES_URL = os.environ.get("SATCHEL_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
MARIADB_URL = os.environ.get("SATCHEL_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test")


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def need(available: bool, what: str) -> None:
    """Skip (or, when services are required, fail) unless ``what`` is reachable."""
    if available:
        return
    message = f"{what} is not reachable"
    if REQUIRED:
        pytest.fail(f"{message}, and SATCHEL_REQUIRE_SERVICES=1 says it must be", pytrace=False)
    pytest.skip(f"{message} (start it to run this test; see README)")


def need_port(host: str, port: int, what: str) -> None:
    need(port_open(host, port), f"{what} at {host}:{port}")


@contextlib.contextmanager
def nonsense_server(answer: bytes, *then: bytes) -> Iterator[int]:
    """A local TCP server that answers every chunk it receives with ``answer``:
    another service on a store's port. With ``then``, the chunks after the first on
    a connection get those answers in turn (the last one from there on). Yields its port."""
    answers = (answer, *then)
    listener = socket.create_server(("127.0.0.1", 0))
    stopping = threading.Event()

    def serve() -> None:
        listener.settimeout(0.1)
        while not stopping.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn, contextlib.suppress(OSError):
                conn.settimeout(2)
                turn = 0
                while conn.recv(65536):
                    conn.sendall(answers[min(turn, len(answers) - 1)])
                    turn += 1

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stopping.set()
        thread.join(5)
        listener.close()
