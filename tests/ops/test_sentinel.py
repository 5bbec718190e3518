"""Sessions on Redis behind Sentinel: a primary, a replica and three sentinels on
loopback. The primary is killed while requests keep coming; sessions are served
again once the sentinels promote the replica, with no restart of the application.

The figures (the window without service, acknowledged writes lost to asynchronous
replication) are printed and documented in docs/operations.md."""

from __future__ import annotations

import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from satchel.config import parse_session_settings
from satchel.errors import StoreUnavailable
from satchel.manager import SessionManager
from satchel.stores.redis import RedisStore
from tests.support.apps import BASE_SETTINGS
from tests.support.servers import free_port
from tests.support.services import need

SERVICE = "sessions"
#: How long sentinels wait before they call the primary down: the floor of the window.
DOWN_AFTER_MS = 1000


def wait_for(check: object, limit: float, what: str) -> None:
    deadline = time.monotonic() + limit
    while True:
        try:
            if check():  # type: ignore[operator]
                return
        except redis.exceptions.RedisError:
            pass
        assert time.monotonic() < deadline, f"{what} did not happen within {limit} s"
        time.sleep(0.1)


@dataclass
class Deployment:
    workdir: Path
    primary: int = field(default_factory=free_port)
    replica: int = field(default_factory=free_port)
    sentinels: list[int] = field(default_factory=lambda: [free_port() for _ in range(3)])
    processes: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinels)
        return f"redis+sentinel://{hosts}/{SERVICE}/0"

    def launch(self, port: int, *args: str) -> None:
        self.processes[port] = subprocess.Popen(
            ["redis-server", *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=self.workdir
        )

    def start(self) -> None:
        server = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(self.workdir)]
        self.launch(self.primary, "--port", str(self.primary), *server)
        self.launch(self.replica, "--port", str(self.replica), *server, "--replicaof", "127.0.0.1", str(self.primary))
        for port in self.sentinels:
            conf = self.workdir / f"sentinel-{port}.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {self.workdir}\n"
                f"sentinel monitor {SERVICE} 127.0.0.1 {self.primary} 2\n"
                f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}\n"
                f"sentinel failover-timeout {SERVICE} 10000\n"
            )
            self.launch(port, str(conf), "--sentinel")
        replica = redis.Redis(port=self.replica, socket_timeout=1)
        wait_for(lambda: replica.info("replication").get("master_link_status") == "up", 20, "replication")
        for port in self.sentinels:
            sentinel = redis.Redis(port=port, socket_timeout=1)
            wait_for(lambda s=sentinel: len(s.sentinel_slaves(SERVICE)) == 1, 20, "the sentinels seeing the replica")
            wait_for(lambda s=sentinel: s.sentinel_master(SERVICE)["num-other-sentinels"] == 2, 20, "sentinels meeting")

    def kill_primary(self) -> None:
        self.processes[self.primary].send_signal(signal.SIGKILL)
        self.processes[self.primary].wait(10)

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
                process.wait(10)


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    need(shutil.which("redis-server") is not None, "the redis-server program")
    deployed = Deployment(tmp_path)
    try:
        deployed.start()
        yield deployed
    finally:
        deployed.stop()


@dataclass
class Visitor:
    """One browser: its cookie and the last count the server acknowledged."""

    cookie: str | None = None
    acknowledged: int = 0
    lost: int = 0


def visit(manager: SessionManager, visitor: Visitor) -> None:
    """One changing request: count one more visit."""
    session = manager.open_request(visitor.cookie)
    seen = session.get("visits", 0)
    if session.loaded is not None and seen < visitor.acknowledged:
        visitor.lost += visitor.acknowledged - seen  # acknowledged writes the new primary never got
    elif session.loaded is None and visitor.cookie is not None:
        visitor.lost += visitor.acknowledged
    session["visits"] = seen + 1
    headers = manager.commit(session)
    if headers:
        visitor.cookie = headers[0].split(";", 1)[0]
    visitor.acknowledged = seen + 1


def test_sessions_are_served_again_after_the_primary_fails_over(deployment: Deployment) -> None:
    config = parse_session_settings(
        {**BASE_SETTINGS, "session.type": "redis", "session.url": deployment.url, "session.socket_timeout": "0.5"}
    )
    store = RedisStore.from_options(config.store.options)
    manager = SessionManager(config, store)
    visitors = [Visitor() for _ in range(8)]
    failures: list[float] = []
    served_after_kill: list[float] = []
    killed_at: list[float] = []
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            for visitor in visitors:
                try:
                    visit(manager, visitor)
                except StoreUnavailable:
                    failures.append(time.monotonic())
                    time.sleep(0.02)
                else:
                    if killed_at:
                        served_after_kill.append(time.monotonic())

    worker = threading.Thread(target=load)
    worker.start()
    try:
        wait_for(lambda: all(v.acknowledged >= 20 for v in visitors), 20, "requests before the failover")
        killed_at.append(time.monotonic())
        deployment.kill_primary()
        wait_for(lambda: len(served_after_kill) >= 200, 60, "sessions served after the failover")
    finally:
        stop.set()
        worker.join(30)
    store.close()

    after = [t for t in failures if t >= killed_at[0]]
    window = (max(after) - killed_at[0]) if after else 0.0
    lost = sum(v.lost for v in visitors)
    acknowledged = sum(v.acknowledged for v in visitors)
    print(
        f"\nfailover: {len(after)} failed requests, window {window:.2f} s, "
        f"{lost} of {acknowledged} acknowledged writes lost"
    )
    sentinel = redis.Redis(port=deployment.sentinels[0], socket_timeout=1)
    assert sentinel.sentinel_master(SERVICE)["port"] == deployment.replica
    assert after, "the kill was not felt: the test did not exercise a failover"
    assert window < 15
    # Replication is asynchronous: a write acknowledged in the last moments before the
    # kill can be missing on the promoted replica. Under this load it is a handful at most.
    assert lost <= len(visitors)


def test_sentinel_urls_name_their_sentinels_service_and_db() -> None:
    store = RedisStore.from_options({"url": "redis+sentinel://:s3cret@10.0.0.1:26379,10.0.0.2/sessions/3"})
    assert store.address == "redis+sentinel://***@10.0.0.1:26379,10.0.0.2/sessions/3"
    with pytest.raises(Exception, match="names sentinels and a service"):
        RedisStore.from_options({"url": "redis+sentinel://10.0.0.1:26379"})
