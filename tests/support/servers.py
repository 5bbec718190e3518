"""Processes for the tests: the app of ``serve_app.py`` under waitress, private
redis-server and memcached instances, and one configuration per shared store.

Everything started here is stopped by its owner's ``stop()`` (fixtures call it
in their teardown); app processes also exit by themselves when the test process
goes away, because they watch the stdin pipe it holds.
"""

from __future__ import annotations

import contextlib
import glob
import http.client
import json
import os
import secrets
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlencode, urlsplit

from satchel.codecs import Signer, store_key
from satchel.config import parse_session_settings
from satchel.stores import Store, open_store
from tests.support.apps import SECRET
from tests.support.services import (
    MARIADB_URL,
    MEMCACHED_SERVERS,
    POSTGRES_URL,
    REDIS_CLUSTER_PORTS,
    REDIS_URL,
    need,
    need_port,
)

SERVE_APP = Path(__file__).with_name("serve_app.py")
COOKIE_NAME = "sid"
BASE_SETTINGS: dict[str, Any] = {"session.secret": SECRET, "session.key": COOKIE_NAME}
#: Seconds an app process may take to start listening.
START_LIMIT = 30.0
#: Seconds one HTTP request may take (bounds a hung server, never asserted on).
REQUEST_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(ready: Callable[[], bool], limit: float, what: str) -> None:
    deadline = time.monotonic() + limit
    while not ready():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {limit:.0f} s")
        time.sleep(0.05)


# -- HTTP ---------------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    body: bytes
    set_cookies: list[str]

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.body)

    def cookie(self, name: str = COOKIE_NAME) -> str | None:
        """The value a Set-Cookie header gives ``name`` ("" when it deletes it)."""
        for header in self.set_cookies:
            pair = header.split(";", 1)[0]
            key, _, value = pair.partition("=")
            if key.strip() == name:
                return value.strip()
        return None


def get(
    port: int,
    path: str,
    params: Mapping[str, Any] | None = None,
    cookie: str | None = None,
    timeout: float = REQUEST_TIMEOUT,
) -> Reply:
    """One GET on a new connection, with the session cookie when given."""
    if params:
        path = f"{path}?{urlencode(params)}"
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {"Cookie": f"{COOKIE_NAME}={cookie}"} if cookie else {}
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        body = response.read()
        return Reply(response.status, body, response.headers.get_all("Set-Cookie") or [])
    finally:
        connection.close()


# -- the app in a process --------------------------------------------------------------


class AppServer:
    """``serve_app.py`` under waitress, on a port the system picks."""

    def __init__(self, settings: Mapping[str, Any], logdir: Path, name: str, threads: int = 16) -> None:
        self.settings = dict(settings)
        self.log_path = logdir / f"{name}.log"
        self.threads = threads
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def launch(self) -> None:
        """Start the process; ``wait_ready`` finishes the start."""
        self._log = open(self.log_path, "ab")  # closed in stop()
        self.process = subprocess.Popen(
            [
                sys.executable,
                str(SERVE_APP),
                "--port",
                "0",
                "--threads",
                str(self.threads),
                "--exit-with-stdin",
                "--settings-json",
                json.dumps(self.settings),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            cwd=SERVE_APP.parent,
        )

    def wait_ready(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        selector = selectors.DefaultSelector()
        selector.register(self.process.stdout, selectors.EVENT_READ)
        try:
            if not selector.select(START_LIMIT):
                raise AssertionError(f"app server did not start within {START_LIMIT:.0f} s:\n{self.log()}")
        finally:
            selector.close()
        line = self.process.stdout.readline().decode()
        if not line.startswith("serving on "):
            raise AssertionError(f"app server failed to start ({line!r}):\n{self.log()}")
        self.port = int(line.rsplit(":", 1)[1])

    def start(self) -> AppServer:
        self.launch()
        self.wait_ready()
        return self

    def get(self, path: str, params: Mapping[str, Any] | None = None, cookie: str | None = None) -> Reply:
        return get(self.port, path, params, cookie)

    def stats(self) -> Counter[str]:
        return Counter(self.get("/stats").json())

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except FileNotFoundError:
            return ""

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            for pipe in (process.stdin, process.stdout):
                if pipe is not None:
                    pipe.close()
        if self._log is not None:
            self._log.close()
            self._log = None


def start_apps(settings: Mapping[str, Any], count: int, logdir: Path, name: str, threads: int = 16) -> list[AppServer]:
    """``count`` app processes on one store, started side by side; all stopped on failure."""
    servers = [AppServer(settings, logdir, f"{name}-{n}", threads) for n in range(count)]
    try:
        for server in servers:
            server.launch()
        for server in servers:
            server.wait_ready()
    except BaseException:
        for server in servers:
            server.stop()
        raise
    return servers


# -- shared stores, one private namespace per use ---------------------------------------


@dataclass
class StoreSetup:
    """Settings for one store under a fresh namespace, and how to remove it again."""

    name: str
    settings: dict[str, Any]
    #: App processes to run: memory is per process, so it gets one.
    processes: int = 2
    cleanups: list[Callable[[], None]] = field(default_factory=list)
    store: Store | None = None

    def open(self) -> Store:
        """The store as the apps see it, opened in the test process (this creates SQL tables)."""
        if self.store is None:
            self.store = open_store(parse_session_settings(self.settings).store)
        return self.store

    def forget(self, cookies: list[str]) -> None:
        """Delete the records of the sessions these cookies name."""
        if not cookies or self.name == "memory":
            return
        store = self.open()
        signer = Signer([SECRET])
        for cookie in cookies:
            session_id = signer.unsign(cookie)
            if session_id:
                store.delete(store_key(session_id))

    def close(self) -> None:
        try:
            if self.store is not None:
                self.store.close()
        finally:
            for cleanup in reversed(self.cleanups):
                cleanup()


SHARED_STORES = ("file", "sqlite", "postgresql", "mariadb", "redis", "rediscluster", "memcached")
ALL_STORES = ("memory", *SHARED_STORES)


def _token() -> str:
    return secrets.token_hex(5)


def _tempdir(setup: StoreSetup, label: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix=f"satchel-{label}-"))
    setup.cleanups.append(lambda: shutil.rmtree(path, ignore_errors=True))
    return path


def _drop_table(url: str, table: str) -> Callable[[], None]:
    def drop() -> None:
        import sqlalchemy as sa

        engine = sa.create_engine(url)
        try:
            with engine.begin() as connection:
                sa.Table(table, sa.MetaData()).drop(connection, checkfirst=True)
        finally:
            engine.dispose()

    return drop


def _drop_redis_prefix(prefix: str, cluster: bool) -> Callable[[], None]:
    def drop() -> None:
        import redis
        from redis.cluster import RedisCluster

        client: Any = (
            RedisCluster.from_url(f"redis://127.0.0.1:{REDIS_CLUSTER_PORTS[0]}")
            if cluster
            else redis.Redis.from_url(REDIS_URL)
        )
        try:
            for name in list(client.scan_iter(match=prefix + "*", count=1000)):
                client.delete(name)
        finally:
            client.close()

    return drop


def _need_url(url: str, what: str, default_port: int) -> None:
    target = urlsplit(url.replace("+psycopg", "").replace("+pymysql", ""))
    need_port(target.hostname or "127.0.0.1", target.port or default_port, what)


def store_setup(name: str, label: str) -> StoreSetup:
    """Settings for store ``name`` in a namespace no other run uses; skips (or fails,
    with SATCHEL_REQUIRE_SERVICES=1) when the store's server is not reachable."""
    token = _token()
    settings = dict(BASE_SETTINGS)
    setup = StoreSetup(name, settings)
    if name == "memory":
        settings["session.type"] = "memory"
        setup.processes = 1
    elif name == "file":
        settings.update({"session.type": "file", "session.data_dir": str(_tempdir(setup, label))})
    elif name == "sqlite":
        path = _tempdir(setup, label) / "sessions.db"
        settings.update({"session.type": "ext:database", "session.url": f"sqlite:///{path}"})
    elif name in ("postgresql", "mariadb"):
        url = POSTGRES_URL if name == "postgresql" else MARIADB_URL
        _need_url(url, "PostgreSQL" if name == "postgresql" else "MariaDB", 5432 if name == "postgresql" else 3306)
        table = f"satchel_{label}_{token}"
        settings.update({"session.type": "ext:database", "session.url": url, "session.table_name": table})
        setup.cleanups.append(_drop_table(url, table))
    elif name == "redis":
        _need_url(REDIS_URL, "Redis", 6379)
        prefix = f"satchel-test:{label}:{token}:"
        settings.update({"session.type": "ext:redis", "session.url": REDIS_URL, "session.key_prefix": prefix})
        setup.cleanups.append(_drop_redis_prefix(prefix, cluster=False))
    elif name == "rediscluster":
        for port in REDIS_CLUSTER_PORTS:
            need_port("127.0.0.1", port, "Redis Cluster node")
        prefix = f"satchel-test:{label}:{token}:"
        urls = " ".join(f"redis://127.0.0.1:{port}" for port in REDIS_CLUSTER_PORTS)
        settings.update({"session.type": "ext:rediscluster", "session.urls": urls, "session.key_prefix": prefix})
        setup.cleanups.append(_drop_redis_prefix(prefix, cluster=True))
    elif name == "memcached":
        from satchel.stores.memcached import parse_servers

        for host, port in parse_servers(MEMCACHED_SERVERS):
            need_port(host, port, "memcached")
        settings.update(
            {"session.type": "ext:memcached", "session.url": MEMCACHED_SERVERS, "session.key_prefix": f"t{token}:"}
        )
    else:
        raise ValueError(f"no such store: {name}")
    return setup


@contextlib.contextmanager
def deployed(name: str, label: str, threads: int = 16) -> Iterator[Deployment]:
    """The app in ``processes`` waitress processes (of ``threads`` threads) on one fresh
    namespace of store ``name``."""
    setup = store_setup(name, label)
    deployment = Deployment(setup, [])
    try:
        logdir = _tempdir(setup, f"{label}-logs")
        setup.open()  # creates the SQL table once, before two processes race to
        deployment.servers = start_apps(setup.settings, setup.processes, logdir, f"{label}-{name}", threads)
        yield deployment
        deployment.check_logs()
    finally:
        for server in deployment.servers:
            server.stop()
        try:
            setup.forget(deployment.cookies)
        finally:
            setup.close()


@dataclass
class Deployment:
    setup: StoreSetup
    servers: list[AppServer]
    cookies: list[str] = field(default_factory=list)

    @property
    def ports(self) -> list[int]:
        return [server.port for server in self.servers]

    def new_session(self) -> str:
        reply = self.servers[0].get("/start")
        cookie = reply.cookie()
        assert reply.status == 200 and cookie, (reply.status, reply.text, self.logs())
        self.cookies.append(cookie)
        return cookie

    def stats(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for server in self.servers:
            total.update(server.stats())
        return total

    def logs(self) -> str:
        return "\n".join(f"--- {server.log_path.name}\n{server.log()}" for server in self.servers)

    def check_logs(self) -> None:
        """No process logged a traceback (an error no exception view handled)."""
        for server in self.servers:
            assert "Traceback" not in server.log(), server.log()


# -- private servers ---------------------------------------------------------------------


class PrivateRedis:
    """A redis-server of our own on a free port, which a test may kill and restart.

    With ``persistent`` every write is in the append-only file before Redis
    answers (``appendfsync always``), so a SIGKILL loses nothing.
    """

    def __init__(self, workdir: Path, persistent: bool = False) -> None:
        need(shutil.which("redis-server") is not None, "the redis-server program")
        self.workdir = workdir
        self.persistent = persistent
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> PrivateRedis:
        persistence = ["--appendonly", "yes", "--appendfsync", "always"] if self.persistent else ["--appendonly", "no"]
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        command += [*persistence, "--dir", str(self.workdir)]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        import redis

        def answers() -> bool:
            assert self.process is not None and self.process.poll() is None, "redis-server exited at start"
            try:
                with redis.Redis(port=self.port, socket_timeout=1) as client:
                    return bool(client.ping())
            except redis.exceptions.ConnectionError:  # includes "loading the dataset"
                return False

        wait_until(answers, 10, "redis-server did not answer")
        return self

    def kill(self) -> None:
        """SIGKILL: no chance to save anything on the way out."""
        if self.process is not None:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGCONT)
                self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    stop = kill


class PrivateMemcached:
    """A memcached of our own on a free port (it keeps nothing across a restart)."""

    def __init__(self) -> None:
        binary = shutil.which("memcached") or "/usr/bin/memcached"
        need(os.access(binary, os.X_OK), "the memcached binary")
        self.port = free_port()
        self.command = [binary, "-p", str(self.port), "-U", "0", "-l", "127.0.0.1", "-m", "16"]
        if os.geteuid() == 0:
            self.command += ["-u", "root"]
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> PrivateMemcached:
        self.process = subprocess.Popen(self.command)

        def listening() -> bool:
            assert self.process is not None and self.process.poll() is None, "memcached exited at start"
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return True
            return False

        wait_until(listening, 10, f"memcached did not listen on {self.address}")
        return self

    def kill(self) -> None:
        if self.process is not None:
            if self.process.poll() is None:
                self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    stop = kill


class PrivatePostgres:
    """A throwaway PostgreSQL cluster in a temporary directory, on its own port.

    ``kill`` is ``pg_ctl -m immediate stop`` (no shutdown checkpoint; the next
    ``start`` runs crash recovery); ``fsync=off`` loses nothing to that, only to
    a crash of the machine.
    """

    def __init__(self, bindir: str, datadir: str, port: int) -> None:
        self.bindir, self.datadir, self.port = bindir, datadir, port
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
        # root may not run PostgreSQL: run it as the postgres account.
        self.prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def run(self, *args: str) -> None:
        subprocess.run([*self.prefix, *args], check=True, capture_output=True, timeout=60)

    def init(self) -> None:
        self.run(f"{self.bindir}/initdb", "-D", self.datadir, "-U", "postgres", "-A", "trust", "--no-sync")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.datadir} -c listen_addresses=127.0.0.1 -c fsync=off"
        log = f"{self.datadir}/server.log"
        self.run(f"{self.bindir}/pg_ctl", "-D", self.datadir, "-o", options, "-l", log, "-w", "start")

    def kill(self) -> None:
        self.run(f"{self.bindir}/pg_ctl", "-D", self.datadir, "-m", "immediate", "-w", "stop")


@contextlib.contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """A private PostgreSQL, initialised and started; stopped and removed afterwards.

    Skips (or fails, with SATCHEL_REQUIRE_SERVICES=1) without ``initdb``, or as
    root without ``runuser``.
    """
    initdbs = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    found = initdbs[-1] if initdbs else shutil.which("initdb")
    need(found is not None and (os.geteuid() != 0 or shutil.which("runuser") is not None), "initdb")
    assert found is not None
    datadir = tempfile.mkdtemp(prefix="satchel-pg-")
    if os.geteuid() == 0:
        shutil.chown(datadir, "postgres", "postgres")
    server = PrivatePostgres(str(Path(found).parent), datadir, free_port())
    try:
        server.init()
        server.start()
        yield server
    finally:
        try:
            server.kill()
        except subprocess.CalledProcessError:
            pass  # already stopped
        shutil.rmtree(datadir, ignore_errors=True)


def memcached_stats(port: int) -> Counter[str]:
    """The server's command counters (``stats`` itself counts in none of them)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"stats\r\n")
        data = b""
        while not data.endswith(b"END\r\n"):
            chunk = sock.recv(65536)
            assert chunk, "memcached closed the connection"
            data += chunk
    counts: Counter[str] = Counter()
    for line in data.decode().splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "STAT" and parts[2].isdigit():
            counts[parts[1]] = int(parts[2])
    return counts


__all__ = [
    "ALL_STORES",
    "SHARED_STORES",
    "AppServer",
    "Deployment",
    "PrivateMemcached",
    "PrivatePostgres",
    "PrivateRedis",
    "Reply",
    "deployed",
    "free_port",
    "get",
    "memcached_stats",
    "private_postgres",
    "start_apps",
    "store_setup",
]


class RedisServer:
    """A throw-away redis-server on a free port that a test starts, stops, freezes and restarts."""

    def __init__(self, workdir: Path) -> None:
        need(shutil.which("redis-server") is not None, "the redis-server program")
        self.port = free_port()
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        import redis

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
                with redis.Redis(port=self.port, socket_timeout=1) as client:
                    client.ping()
                return
            except redis.exceptions.ConnectionError:
                assert self.process.poll() is None, "redis-server exited at start"
                assert time.monotonic() < deadline, "redis-server did not answer within 10 s"
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # in case a test froze it
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None

    def signal(self, signum: int) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signum)
