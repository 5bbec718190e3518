"""The HTTP part of ``bench/asgibench.py``: each ASGI contender under uvicorn with
two workers, driven over loopback by keep-alive clients.

    .venv/bin/python bench/asgihttp.py --seconds 3

Per contender: ``uvicorn --workers 2`` on a free port (the app built by
:func:`make` from the environment), 8 visitors each holding one session, each
sending ``/incr`` or ``/read`` back to back for ``--seconds`` per view; the figure
is requests per second over all visitors, and "vs floor" its ratio to the
framework's app without sessions in the same run.

On a machine of two or more CPUs the servers (Redis and both uvicorn workers) run
on the last CPU and the client on the first (``--cpus all`` lets the kernel place
them): the client then cannot take the servers' CPU, and a contender's rate is
what one CPU of server serves. Only ratios within one run mean anything.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
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


#: wrk's script: each of its threads (one connection each) is one visitor. Its first
#: request, /incr, makes the session; after that it sends the view with the
#: cookie the last response set.
WRK_SCRIPT = """
local cookie = nil
local view = "/VIEW"
request = function()
  if cookie == nil then return wrk.format("GET", "/incr") end
  return wrk.format("GET", view, {["Cookie"] = cookie})
end
response = function(status, headers, body)
  if status ~= 200 then error("status " .. status) end
  local set = headers["Set-Cookie"] or headers["set-cookie"]
  if set ~= nil then cookie = string.match(set, "^([^;]+)") end
end
"""


def drive_wrk(port: int, view: str, seconds: float, tmp: str) -> float:
    """Requests per second from wrk (a C load generator: the client costs far less
    CPU than the servers it drives, unlike a Python client)."""
    script = Path(tmp) / f"visit-{view}.lua"
    script.write_text(WRK_SCRIPT.replace("VIEW", view))
    done = subprocess.run(
        ["wrk", "-t", str(VISITORS), "-c", str(VISITORS), "-d", f"{seconds:g}s", "-s", str(script),
         f"http://127.0.0.1:{port}/"],
        capture_output=True, text=True, check=True,
    )
    if "Non-2xx" in done.stdout or "error" in done.stderr.lower():
        raise RuntimeError(f"wrk saw failed requests:\n{done.stdout}\n{done.stderr}")
    rate = next(line for line in done.stdout.splitlines() if line.startswith("Requests/sec:"))
    return float(rate.split(":", 1)[1])


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
    parser.add_argument("--cpus", choices=("split", "all"), default="split",
                        help="split: servers on the last CPU, the client on the first (default); all: not pinned")
    parser.add_argument("--client", choices=("wrk", "httpx"), default="wrk" if shutil.which("wrk") else "httpx",
                        help="the load generator: wrk (Debian: apt install wrk; the default when installed) "
                        "or httpx in this process")
    args = parser.parse_args()
    allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    split = args.cpus == "split" and len(allowed) >= 2
    server_cpu, client_cpu = (allowed[-1], allowed[0]) if split else (None, None)

    def place(cpu: int | None) -> None:
        """Run on ``cpu`` from now on, with the processes started from now on (None: as placed)."""
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})

    place(server_cpu)
    running = servers.start(None, None)
    assert running.redis_url
    tmp = tempfile.mkdtemp(prefix="satchel-asgihttp-")
    env = {**os.environ, "SATCHEL_BENCH_SECRET": asgibench.SECRET, "SATCHEL_BENCH_REDIS": running.redis_url,
           "SATCHEL_BENCH_TMP": tmp, "PYTHONPATH": os.pathsep.join([str(HERE.parent / "src"), str(HERE)])}
    # ``make`` in the server process finds its contender by its index in the whole list.
    everyone = {i: c for i, c in enumerate(asgibench.contenders(running.redis_url, Path(tmp))) if c.is_async}
    rates: dict[int, dict[str, float]] = {}
    for index, contender in everyone.items():
        place(server_cpu)
        process, port = start(index, env)
        place(client_cpu)
        try:
            if args.client == "wrk":
                rates[index] = {view: drive_wrk(port, view, args.seconds, tmp) for view in asgibench.VIEWS}
            else:
                rates[index] = {view: asyncio.run(drive(port, view, args.seconds)) for view in asgibench.VIEWS}
        finally:
            process.terminate()
            process.wait(timeout=20)
        print(f"  {contender.framework} {contender.name} {contender.store}: {rates[index]}", file=sys.stderr)
    floors = {c.framework: rates[i] for i, c in everyone.items() if c.name == "none (floor)"}
    placement = f"servers on CPU {server_cpu}, client on CPU {client_cpu}" if split else "not pinned"
    print(f"\nuvicorn --workers 2, {VISITORS} keep-alive visitors ({args.client}), {args.seconds:g} s per view, "
          f"{placement}; requests/s\n")
    print("| framework | sessions | store | incr | read | incr vs floor | read vs floor |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: |")
    for i, c in everyone.items():
        r, floor = rates[i], floors[c.framework]
        print(f"| {c.framework} | {c.name} | {c.store} | {r['incr']:.0f} | {r['read']:.0f} | "
              f"{r['incr'] / floor['incr']:.2f} | {r['read'] / floor['read']:.2f} |")
    servers.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
