"""Profile satchel's request path (and a peer's, for comparison) in-process.

    .venv/bin/python bench/profile_satchel.py                  # satchel memory and redis, both views
    .venv/bin/python bench/profile_satchel.py --keys satchel-sql,beaker-redis --requests 5000

Writes cProfile summaries (sorted by own time and by cumulative time) and, when
pyinstrument is installed, a pyinstrument call tree for every contender and view
to bench/results/profile-<contender>-<view>.txt, and prints where satchel's own
code spends time.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import servers  # noqa: E402
from contenders import make_caller, make_contenders  # noqa: E402
from run import prepare  # noqa: E402

RESULTS = HERE / "results"


def profile(call, requests: int) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    for _ in range(200):
        call()
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(requests):
        call()
    prof.disable()
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out)
    stats.strip_dirs()
    out.write(f"== {requests} requests, sorted by own time (tottime)\n")
    stats.sort_stats("tottime").print_stats(35)
    out.write("== sorted by cumulative time\n")
    stats.sort_stats("cumulative").print_stats(45)
    tree = ""
    try:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0001)
        profiler.start()
        for _ in range(requests):
            call()
        profiler.stop()
        tree = profiler.output_text(unicode=True, color=False, show_all=False)
    except ImportError:
        tree = "(pyinstrument not installed)\n"
    return out.getvalue(), tree


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keys", default="satchel-memory,satchel-redis")
    parser.add_argument("--requests", type=int, default=3000)
    args = parser.parse_args()
    srv = servers.start(None, None)
    tmp = tempfile.mkdtemp(prefix="satchel-prof-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    RESULTS.mkdir(exist_ok=True)
    try:
        wanted = args.keys.split(",")
        for contender in make_contenders(srv.redis_url, srv.memcached, tmp):
            if contender.key not in wanted or contender.library == "rawloop":
                continue
            prepare(contender)
            if contender.unavailable:
                print(f"{contender.key}: {contender.unavailable}")
                continue
            for view in ("incr", "read"):
                call = make_caller(contender.app, f"/{view}", contender.cookie)
                text, tree = profile(call, args.requests)
                path = RESULTS / f"profile-{contender.key}-{view}.txt"
                path.write_text(text + "\n== pyinstrument\n" + tree)
                print(f"wrote {path}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        servers.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
