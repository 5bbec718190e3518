"""Private Redis and memcached servers for the benchmark, and their counters.

The benchmark starts its own ``redis-server`` and ``memcached`` on free loopback
ports when the binaries are installed, so that other people's traffic on the
shared servers (tests running meanwhile) neither pollutes the round-trip
counters nor competes for the server's single thread. ``--redis-url`` and
``--memcached`` point the benchmark at existing servers instead.

Every process started here is stopped by its own pid when the benchmark ends.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

_STARTED: list[subprocess.Popen[bytes]] = []
_WORKDIRS: list[str] = []
_ALLOWED: list[int] = []  # the CPUs this process could use before pin()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_port(port: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _stop_all() -> None:
    _stop_processes()
    while _WORKDIRS:
        shutil.rmtree(_WORKDIRS.pop(), ignore_errors=True)


def _stop_processes() -> None:
    while _STARTED:
        proc = _STARTED.pop()
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


atexit.register(_stop_all)


def pin(choice: str) -> int | None:
    """Run this process, and the servers it starts from now on, on one CPU:
    ``choice`` is its number, ``last`` (the default of the benchmarks) or ``all``
    (let the kernel place them; returns None).

    On one CPU a request's wait for a private server is the server's own work and
    one switch there and back. Spread over CPUs it is also a wake-up of the other
    CPU, which on a shared VM varies by tens of µs: there the median batch of a
    shared-store contender took twice its fastest, and verdicts flipped from run
    to run. Pinned on a quiet host, the two agree within a few percent. Every
    contender runs under the same rule, and a server's work (a Lua script, say)
    still counts in the request that waits for it.
    """
    if choice == "all" or not hasattr(os, "sched_setaffinity"):
        return None
    allowed = sorted(os.sched_getaffinity(0))
    _ALLOWED[:] = allowed
    cpu = allowed[-1] if choice == "last" else int(choice)
    if cpu not in allowed:
        raise SystemExit(f"--cpu {choice}: this process may run on CPUs {allowed} only")
    os.sched_setaffinity(0, {cpu})
    return cpu


def unpin() -> None:
    """Give this process and the servers it started every CPU again (before a part
    that runs several processes of its own, such as the HTTP part)."""
    if not _ALLOWED:
        return
    every = set(_ALLOWED)
    for pid in [0, *(proc.pid for proc in _STARTED if proc.poll() is None)]:
        try:
            os.sched_setaffinity(pid, every)
        except OSError:
            pass


def _spawn(args: list[str], port: int) -> bool:
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _STARTED.append(proc)
    if _wait_port(port):
        return True
    _STARTED.remove(proc)
    proc.kill()
    proc.wait()
    return False


@dataclass
class Servers:
    redis_url: str | None = None
    redis_private: bool = False
    memcached: str | None = None  # "host:port"
    memcached_private: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def memcached_addr(self) -> tuple[str, int] | None:
        if not self.memcached:
            return None
        host, _, port = self.memcached.rpartition(":")
        return host, int(port)


def start(redis_url: str | None, memcached: str | None) -> Servers:
    """Private servers unless addresses were given; shared ones as a fallback."""
    servers = Servers()
    if redis_url:
        servers.redis_url = redis_url
    elif shutil.which("redis-server"):
        port = _free_port()
        workdir = tempfile.mkdtemp(prefix="satchel-bench-redis-")
        _WORKDIRS.append(workdir)
        args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", workdir, "--protected-mode", "yes"]
        if _spawn(args, port):
            servers.redis_url, servers.redis_private = f"redis://127.0.0.1:{port}/0", True
    if servers.redis_url is None and port_open("127.0.0.1", 6379):
        servers.redis_url = "redis://127.0.0.1:6379/14"
        servers.notes.append("redis: shared server 127.0.0.1:6379 db 14 (counters may include others' traffic)")
    if memcached:
        servers.memcached = memcached
    elif shutil.which("memcached"):
        port = _free_port()
        args = ["memcached", "-l", "127.0.0.1", "-p", str(port), "-U", "0", "-m", "64", "-t", "1"]
        if os.geteuid() == 0:
            args += ["-u", "root"]  # memcached refuses to run as root without naming a user
        if _spawn(args, port):
            servers.memcached, servers.memcached_private = f"127.0.0.1:{port}", True
    if servers.memcached is None and port_open("127.0.0.1", 11211):
        servers.memcached = "127.0.0.1:11211"
        servers.notes.append("memcached: shared server 127.0.0.1:11211 (counters may include others' traffic)")
    return servers


def stop() -> None:
    _stop_all()


# -- counters -----------------------------------------------------------------


#: Commands satchel's Lua scripts run (they do not run outside scripts in a steady-state request).
SCRIPT_INNER = {"hget", "hset", "pexpire", "persist", "exists"}


class RedisCounter:
    """Round trips and commands the Redis server saw, from INFO.

    ``total_reads_processed`` counts the read events the server handled: a
    client that sends one command, or one pipeline, and waits for the answer
    costs one read event, so its delta is the number of round trips. The
    INFO calls that read the counters cost two and are subtracted. Commands
    run inside a Lua script are counted by commandstats too (``hget`` under
    ``evalsha``); ``server_us`` is the server's own time in the commands
    (commandstats ``usec``; a script's inner commands are inside its time).
    """

    def __init__(self, url: str) -> None:
        import redis

        self.client = redis.Redis.from_url(url)
        self.client.ping()

    def snapshot(self) -> dict[str, Any]:
        stats = self.client.info("stats")
        commands = self.client.info("commandstats")
        return {
            "reads": int(stats["total_reads_processed"]),
            "commands": {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in commands.items()},
            "usec": {k.removeprefix("cmdstat_"): int(v["usec"]) for k, v in commands.items()},
        }

    @staticmethod
    def delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
        # Between two snapshots the second INFO pair itself costs: two reads, and
        # two "info" calls.
        commands = {}
        for name, calls in after["commands"].items():
            diff = calls - before["commands"].get(name, 0)
            if name == "info":
                diff -= 2
            if diff:
                commands[name] = diff
        # A script's time includes its inner commands, which commandstats counts
        # again under their own names: leave those out when scripts ran.
        inner = SCRIPT_INNER if ("evalsha" in commands or "eval" in commands) else set()
        usec = sum(v - before["usec"].get(k, 0) for k, v in after["usec"].items() if k != "info" and k not in inner)
        return {"round_trips": after["reads"] - before["reads"] - 2, "commands": commands, "server_us": usec}


class MemcachedCounter:
    """Commands the memcached server saw, from ``stats``.

    Every storage and retrieval command the clients here send waits for its
    answer, and none of them batches several keys, so commands are round trips.
    """

    FIELDS = ("cmd_get", "cmd_set", "cmd_touch", "delete_hits", "delete_misses", "incr_hits", "incr_misses")

    def __init__(self, address: tuple[str, int]) -> None:
        from pymemcache.client.base import Client

        self.client = Client(address, no_delay=True)

    def snapshot(self) -> dict[str, Any]:
        stats = self.client.stats()
        return {name: int(stats.get(name.encode(), stats.get(name, 0))) for name in self.FIELDS}

    @classmethod
    def delta(cls, before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
        commands = {name: after[name] - before[name] for name in cls.FIELDS if after[name] - before[name]}
        return {"round_trips": sum(commands.values()), "commands": commands}


class SQLCounter:
    """Statements SQLAlchemy sent to any engine (``before_cursor_execute``) and commits,
    through SQLAlchemy's public events listened to on the Engine class: every engine's
    statements, satchel's store's among them, are counted as they are sent."""

    def __init__(self) -> None:
        import sqlalchemy as sa

        self.statements = 0
        self.commits = 0
        self.kinds: dict[str, int] = {}

        def on_execute(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            self.statements += 1
            kind = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else "?"
            self.kinds[kind] = self.kinds.get(kind, 0) + 1

        def on_commit(conn: Any) -> None:
            self.commits += 1

        self._listeners = [("before_cursor_execute", on_execute), ("commit", on_commit)]
        for name, listener in self._listeners:
            sa.event.listen(sa.engine.Engine, name, listener)

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Without the listeners for a while (Python calls are counted so)."""
        import sqlalchemy as sa

        listeners = list(self._listeners)
        self.close()
        try:
            yield
        finally:
            for name, listener in listeners:
                sa.event.listen(sa.engine.Engine, name, listener)
            self._listeners = listeners

    def close(self) -> None:
        """Remove the listeners, so the timed requests run as they would in production
        (a listener costs every library a little, and satchel's SQL store runs every
        statement through Core while one is listening)."""
        import sqlalchemy as sa

        for name, listener in self._listeners:
            sa.event.remove(sa.engine.Engine, name, listener)
        self._listeners = []

    def snapshot(self) -> dict[str, Any]:
        return {"statements": self.statements, "commits": self.commits, "kinds": dict(self.kinds)}

    @staticmethod
    def delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
        kinds = {k: v - before["kinds"].get(k, 0) for k, v in after["kinds"].items() if v - before["kinds"].get(k, 0)}
        if after["commits"] - before["commits"]:
            kinds["COMMIT"] = after["commits"] - before["commits"]
        # In autocommit mode (satchel's default) no COMMIT is sent; a library that
        # commits pays a round trip for it.
        return {
            "round_trips": after["statements"] - before["statements"] + after["commits"] - before["commits"],
            "commands": kinds,
            "commits": after["commits"] - before["commits"],
        }
