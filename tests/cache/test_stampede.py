"""Stampede protection across processes: two processes, 20 threads each, one key, one creator run.

The creator counts its runs where every process sees the count (Redis INCR,
memcached incr, a file appended under flock), and sleeps, so that without a
lock shared by the processes it would run in both. Run directly, this file is
the worker process.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

SRC = str(Path(__file__).resolve().parents[2] / "src")
THREADS = 20
CREATOR_SECONDS = 0.4


def counter(spec: dict[str, Any]) -> Callable[[], int]:
    """Count one creator run in the shared place ``spec`` names; returns the new count."""
    if spec["kind"] == "redis":
        import redis

        client = redis.Redis.from_url(spec["url"])
        return lambda: int(client.incr(spec["key"]))
    if spec["kind"] == "memcached":
        from pymemcache.client.base import Client

        host, _, port = spec["server"].rpartition(":")
        lock = threading.Lock()
        mc = Client((host, int(port)), default_noreply=False)

        def incr() -> int:
            with lock:  # one pymemcache client is not thread-safe
                return int(mc.incr(spec["key"], 1))

        return incr

    def append() -> int:
        with open(spec["path"], "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            handle.write("run\n")
            handle.flush()
            handle.seek(0)
            return len(handle.read().splitlines())

    return append


def count(spec: dict[str, Any]) -> int:
    if spec["kind"] == "redis":
        import redis

        return int(redis.Redis.from_url(spec["url"]).get(spec["key"]) or 0)
    if spec["kind"] == "memcached":
        from pymemcache.client.base import Client

        host, _, port = spec["server"].rpartition(":")
        return int(Client((host, int(port))).get(spec["key"]) or 0)
    path = Path(spec["path"])
    return len(path.read_text().splitlines()) if path.exists() else 0


def reset(spec: dict[str, Any]) -> None:
    if spec["kind"] == "redis":
        import redis

        redis.Redis.from_url(spec["url"]).set(spec["key"], 0)
    elif spec["kind"] == "memcached":
        from pymemcache.client.base import Client

        host, _, port = spec["server"].rpartition(":")
        Client((host, int(port))).set(spec["key"], b"0")


def worker(job: dict[str, Any]) -> None:
    """One process: THREADS threads that ask for one key at the same moment."""
    from satchel.cache import regions_from_settings

    region = regions_from_settings(job["settings"])["r"]
    runs = counter(job["counter"])

    def create() -> dict[str, Any]:
        run = runs()
        time.sleep(CREATOR_SECONDS)
        return {"run": run, "pid": os.getpid()}

    go = threading.Event()
    results: list[Any] = []
    errors: list[str] = []

    def ask() -> None:
        go.wait()
        try:
            results.append(region.get_or_create("the-key", create))
        except Exception as exc:
            errors.append(repr(exc))

    threads = [threading.Thread(target=ask) for _ in range(THREADS)]
    for t in threads:
        t.start()
    print("ready", flush=True)
    sys.stdin.readline()  # the test says go to both processes at once
    go.set()
    for t in threads:
        t.join()
    print(json.dumps({"results": results, "errors": errors}), flush=True)


def run_two_processes(job: dict[str, Any]) -> list[dict[str, Any]]:
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, json.dumps(job)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(2)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert line.strip() == "ready", (line, proc.stderr.read() if proc.stderr else "")
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        outputs = []
        for proc in procs:
            out, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err
            outputs.append(json.loads(out.strip().splitlines()[-1]))
        return outputs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()


@pytest.mark.parametrize("kind", ["redis", "memcached", "file"])
@pytest.mark.parametrize("state", ["expired", "missing"])
def test_one_creator_across_two_processes(kind: str, state: str, tmp_path: Path) -> None:
    from satchel.cache import invalidate_region, regions_from_settings
    from tests.support.cache import server_settings
    from tests.support.services import MEMCACHED_SERVERS, REDIS_URL

    settings = server_settings(kind, tmp_path, expire=1)
    spec: dict[str, Any] = {"kind": kind, "key": f"stampede-{secrets.token_hex(6)}"}
    if kind == "redis":
        spec["url"] = REDIS_URL
    elif kind == "memcached":
        spec["server"] = MEMCACHED_SERVERS.split(";")[0]
    else:
        spec["path"] = str(tmp_path / "runs.log")
    reset(spec)

    region = regions_from_settings(settings)["r"]
    old = region.get_or_create("the-key", lambda: {"run": 0, "pid": os.getpid()})
    if state == "expired":
        time.sleep(1.2)  # still stored (kept past expire), but expired: one caller recomputes
    else:
        invalidate_region(region)  # gone for everybody: every caller must wait for the one creator

    outputs = run_two_processes({"settings": settings, "counter": spec})

    assert [o["errors"] for o in outputs] == [[], []]
    results = [r for o in outputs for r in o["results"]]
    assert len(results) == 2 * THREADS
    assert count(spec) == 1, f"the creator ran {count(spec)} times"
    new = [r for r in results if r != old]
    assert new and all(r == {"run": 1, "pid": new[0]["pid"]} for r in new)
    if state == "missing":
        assert len(new) == 2 * THREADS  # nobody got the invalidated value
    assert region.get("the-key", ignore_expiration=True) == new[0]


if __name__ == "__main__":
    worker(json.loads(sys.argv[1]))
