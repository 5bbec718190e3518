"""Machine instructions per request, counted by valgrind's callgrind: a figure the
machine's load does not move (wall-clock times on a shared VM swing by 10 % and more).

    .venv/bin/python bench/instructions.py                          # floor, Beaker and satchel memory
    .venv/bin/python bench/instructions.py --keys floor,satchel-cookie,beaker-cookie --requests 2000
    .venv/bin/python bench/instructions.py --keys floor,satchel-memory-metrics-off,satchel-memory-metrics --no-durations
    .venv/bin/python bench/instructions.py --keys floor,raw-memcached-work,satchel-memcached --memcached 127.0.0.1:11211

It re-runs itself under ``valgrind --tool=callgrind`` with instrumentation off,
builds the contenders (the same apps as ``bench/run.py``; servers are not
started: contenders on Redis or memcached need ``--redis-url`` or ``--memcached``,
and only the client's instructions are counted), warms each view up,
then switches counting on for exactly ``--requests`` requests per view with
``callgrind_control`` and dumps the count. Prints instructions per request, the
added instructions over the floor, and Beaker/satchel ratios of the added
instructions for stores both have. Needs valgrind (Debian: ``apt install valgrind``);
one run takes about a minute.

Instructions are not time: allocation, cache misses and system calls weigh
differently. Treat this as the noise-free companion of ``bench/run.py``, not a
replacement. Note that Pyramid's signed cookie re-signs cookies older than a
second, and everything here runs some fifty times slower than natively, so its
"same second" case cannot be counted this way.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
VIEWS = ("read", "incr")
MARK = "SATCHEL_BENCH_UNDER_CALLGRIND"


def child(keys: list[str], requests: int, durations: bool = True,
          redis_url: str | None = None, memcached: str | None = None) -> None:
    """Runs under callgrind: build, warm up, count each view, dump."""
    sys.path.insert(0, str(HERE))
    from contenders import make_contenders
    from run import prepare, request

    pid = str(os.getpid())

    def control(*args: str) -> None:
        subprocess.run(["callgrind_control", *args, pid], check=True, stdout=subprocess.DEVNULL)

    tmp = tempfile.mkdtemp(prefix="satchel-instr-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    try:
        chosen = [c for c in make_contenders(redis_url, memcached, tmp) if c.key in keys]
        for contender in chosen:
            prepare(contender)
            if contender.unavailable:
                print(f"{contender.key}: {contender.unavailable}", file=sys.stderr)
            elif not durations:
                _no_durations(contender.app)
        # Everything built so far is left out of later collections, as in bench/run.py: a
        # full collection over every app's objects would otherwise land on one
        # contender's count and not another's.
        gc.collect()
        gc.freeze()
        for contender in chosen:
            if contender.unavailable:
                continue
            for view in VIEWS:
                for _ in range(300):
                    request(contender.app, f"/{view}", contender.cookie)
                control("--zero")
                control("--instr=on")
                for _ in range(requests):
                    request(contender.app, f"/{view}", contender.cookie)
                control("--instr=off")
                control(f"--dump={contender.key}/{view}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _no_durations(app: Any) -> None:
    """Stop a satchel app's telemetry from recording durations: under valgrind a
    request takes milliseconds, so the histogram's recordings, capped per second,
    would land on a large share of the requests instead of a tiny one."""
    from pyramid.interfaces import ISessionFactory

    factory = app.registry.queryUtility(ISessionFactory)
    telemetry = getattr(getattr(factory, "manager", None), "telemetry", None)
    if telemetry is not None:
        telemetry.duration_interval = math.inf


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", default="floor,beaker-memory,satchel-memory,beaker-cookie,satchel-cookie")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--no-durations", action="store_true",
                        help="satchel apps with telemetry record no durations (count their cost apart)")
    parser.add_argument("--redis-url", help="count the Redis contenders against this server (its work is not counted)")
    parser.add_argument("--memcached", help="count the memcached contenders against this host:port")
    args = parser.parse_args()
    keys = args.keys.split(",")
    if os.environ.get(MARK):
        child(keys, args.requests, durations=not args.no_durations,
              redis_url=args.redis_url, memcached=args.memcached)
        return 0
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        print("valgrind is not installed (Debian: apt install valgrind)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="satchel-callgrind-") as out:
        base = os.path.join(out, "cg.out")
        command = [
            "valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={base}",
            sys.executable, __file__, "--keys", args.keys, "--requests", str(args.requests),
            *(["--no-durations"] if args.no_durations else []),
            *(["--redis-url", args.redis_url] if args.redis_url else []),
            *(["--memcached", args.memcached] if args.memcached else []),
        ]
        done = subprocess.run(command, env={**os.environ, MARK: "1"}, capture_output=True, text=True)
        if done.returncode != 0:
            print(done.stderr[-3000:], file=sys.stderr)
            return done.returncode
        counts: dict[tuple[str, str], float] = {}
        for dump in Path(out).glob("cg.out.*"):
            text = dump.read_text(errors="replace")
            trigger = re.search(r"^desc: Trigger: .*dump (\S+)/(\S+)$", text, re.M)
            totals = re.search(r"^totals: (\d+)", text, re.M)
            if trigger and totals:
                counts[(trigger.group(1), trigger.group(2))] = int(totals.group(1)) / args.requests
    print(f"callgrind, {args.requests} requests per view; instructions per request (added over the floor)")
    floor = {view: counts.get(("floor", view)) for view in VIEWS}
    for key in keys:
        for view in VIEWS:
            count = counts.get((key, view))
            if count is None:
                continue
            base_count = floor[view]
            added = f"{count - base_count:>10,.0f}" if base_count is not None else ""
            print(f"  {key:22s} {view:5s} {count:>10,.0f} {added}")
    for key in keys:
        if not key.startswith("satchel-"):
            continue
        peer = "beaker-" + key.removeprefix("satchel-")
        for view in VIEWS:
            mine, theirs, base_count = counts.get((key, view)), counts.get((peer, view)), floor[view]
            if None in (mine, theirs, base_count):
                continue
            assert mine is not None and theirs is not None and base_count is not None
            print(f"  {peer}/{key} {view}: added instructions {(theirs - base_count) / (mine - base_count):.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
