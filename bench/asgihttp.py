"""The HTTP part of ``bench/asgibench.py``: each ASGI contender under uvicorn with
two workers, driven over loopback by keep-alive clients.

    .venv/bin/python bench/asgihttp.py --seconds 3

Per contender: ``uvicorn --workers 2`` on a free port (the app built by
:func:`make` from the environment), 8 visitors each holding one session, each
sending ``/incr`` or ``/read`` back to back for ``--seconds`` per view; the figure
is requests per second over all visitors, and "vs floor" its ratio to the
framework's app without sessions in the same run. Client and servers share the
machine's cores, so only ratios within one run mean anything.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import servers  # noqa: E402

VISITORS = 8


def make() -> Any:
    """uvicorn's factory: the contender ``SATCHEL_BENCH_CONTENDER`` names (its index)."""
    import asgibench

    index = int(os.environ["SATCHEL_BENCH_CONTENDER"])
    chosen = asgibench.contenders(os.environ["SATCHEL_BENCH_REDIS"], Path(os.environ["SATCHEL_BENCH_TMP"]))[index]
    return chosen.app


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start(index: int, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "asgihttp:make", "--workers", "2", "--port", str(port),
         "--log-level", "warning", "--no-access-log"],
        cwd=HERE, env={**env, "SATCHEL_BENCH_CONTENDER": str(index)},
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if servers.port_open("127.0.0.1", port):
            return process, port
        time.sleep(0.1)
    process.terminate()
    raise RuntimeError(f"contender {index} did not start")


async def drive(port: int, view: str, seconds: float) -> float:
    import httpx

    async def visitor() -> int:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            await client.get("/incr")
            await client.get("/incr")
            done, end = 0, time.monotonic() + seconds
            while time.monotonic() < end:
                await client.get(f"/{view}")
                done += 1
            return done

    counts = await asyncio.gather(*(visitor() for _ in range(VISITORS)))
    return sum(counts) / seconds


def main() -> int:
    import asgibench

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    running = servers.start(None, None)
    assert running.redis_url
    tmp = tempfile.mkdtemp(prefix="satchel-asgihttp-")
    env = {**os.environ, "SATCHEL_BENCH_SECRET": asgibench.SECRET, "SATCHEL_BENCH_REDIS": running.redis_url,
           "SATCHEL_BENCH_TMP": tmp, "PYTHONPATH": os.pathsep.join([str(HERE.parent / "src"), str(HERE)])}
    everyone = [c for c in asgibench.contenders(running.redis_url, Path(tmp)) if c.is_async]
    rates: dict[int, dict[str, float]] = {}
    for index, contender in enumerate(everyone):
        process, port = start(index, env)
        try:
            rates[index] = {view: asyncio.run(drive(port, view, args.seconds)) for view in asgibench.VIEWS}
        finally:
            process.terminate()
            process.wait(timeout=20)
        print(f"  {contender.framework} {contender.name} {contender.store}: {rates[index]}", file=sys.stderr)
    floors = {c.framework: rates[i] for i, c in enumerate(everyone) if c.name == "none (floor)"}
    print(f"\nuvicorn --workers 2, {VISITORS} keep-alive visitors, {args.seconds:g} s per view; requests/s\n")
    print("| framework | sessions | store | incr | read | incr vs floor | read vs floor |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: |")
    for i, c in enumerate(everyone):
        r, floor = rates[i], floors[c.framework]
        print(f"| {c.framework} | {c.name} | {c.store} | {r['incr']:.0f} | {r['read']:.0f} | "
              f"{r['incr'] / floor['incr']:.2f} | {r['read'] / floor['read']:.2f} |")
    servers.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
