"""satchel's benchmark: what a session costs a Pyramid request, against its peers.

    .venv/bin/python bench/run.py            # in-process part (about 2-3 minutes)
    .venv/bin/python bench/run.py --quick    # fewer rounds (under a minute), for a smoke test
    .venv/bin/python bench/run.py --http     # also the HTTP part (waitress x2 + a load generator)

Each contender is a minimal Pyramid app with a view that increments a counter in
the session (``incr``) and one that only reads it (``read``), called directly as a
WSGI app with a prepared environ. Every session request carries the cookie a
previous request set (steady state). The contenders run in interleaved rounds, in
a new random order every round: each round runs one short batch of every
contender and view. On a shared machine the fastest batch is the best estimate
of what a request costs when nothing else competes for the CPU, so the table's
main figure is the mean of the fastest batch (min of N), with the median batch
beside it. The targets are judged on the median batches, which one lucky batch
cannot move, with the ratio of the fastest batches printed beside. Results go to
bench/results/latest.json, the chart to docs/benchmarks.png. See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import cachebench  # noqa: E402
import servers  # noqa: E402
from contenders import Contender, cookie_from, make_contenders, request  # noqa: E402
from measure import VIEWS, Series, calibrate, contender_series, count_requests, paired_ratio, run_rounds  # noqa: E402

RESULTS = HERE / "results"

# satchel's contender on a store -> its peers on that store
PEERS = {
    "satchel-memory": ["beaker-memory"],
    "satchel-file": ["beaker-file"],
    "satchel-sql": ["beaker-sql"],
    "satchel-redis": ["beaker-redis", "psr-redis"],
    "satchel-memcached": ["beaker-memcached"],
    "satchel-cookie": ["beaker-cookie", "pyramid-signed", "pyramid-signed-aged"],
}
#: Rows compared with a twin that differs in one setting (not a peer to be faster than).
TWINS = {"satchel-memory-metrics": ["satchel-memory-metrics-off"]}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def versions() -> dict[str, str]:
    out = {}
    for dist in ("satchel", "pyramid", "WebOb", "Beaker", "pyramid_beaker", "pyramid_session_redis", "redis",
                 "pymemcache", "python-memcached", "SQLAlchemy", "cryptography", "dogpile.cache", "waitress"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def machine() -> dict[str, Any]:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average": os.getloadavg(),
    }


def git_state() -> dict[str, Any]:
    """The commit measured, and whether src/ had changes not committed yet (read-only git calls)."""
    import subprocess

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.rstrip()
        except (OSError, subprocess.SubprocessError):
            return ""

    changed = [line[3:] for line in git("status", "--porcelain", "--", "src").splitlines()]
    return {"commit": git("rev-parse", "--short", "HEAD"), "src_changes_not_committed": changed}


def server_versions(srv: servers.Servers) -> dict[str, str]:
    out = {}
    if srv.redis_url:
        try:
            import redis

            out["redis"] = redis.Redis.from_url(srv.redis_url).info("server")["redis_version"]
        except Exception as exc:
            out["redis"] = f"? ({exc})"
    if srv.memcached_addr:
        try:
            from pymemcache.client.base import Client

            out["memcached"] = Client(srv.memcached_addr).version().decode()
        except Exception as exc:
            out["memcached"] = f"? ({exc})"
    import sqlite3

    out["sqlite"] = sqlite3.sqlite_version
    return out


# -- setting contenders up ---------------------------------------------------------------


def prepare(contender: Contender) -> None:
    """Build the app and get the cookie of a first request; mark it unavailable on failure."""
    if contender.unavailable:
        return
    try:
        if contender.library == "rawloop":
            assert contender.build is not None
            contender.raw = contender.build()
            for op in contender.raw.values():
                op()
            return
        assert contender.build is not None
        contender.app = contender.build()
        if contender.library in ("none", "raw", "rawwork"):
            return
        first = request(contender.app, "/incr", None)
        contender.cookie = cookie_from(first)
        if not first.status.startswith("200") or not contender.cookie:
            raise RuntimeError(f"first request: {first.status}, cookie {first.set_cookies!r}")
        second = request(contender.app, "/incr", contender.cookie)
        contender.cookie = cookie_from(second) or contender.cookie
        read = request(contender.app, "/read", contender.cookie)
        if second.body != b"2" or read.body != b"2":
            raise RuntimeError(f"session not carried by the cookie: incr gave {second.body!r}, read {read.body!r}")
        if not contender.reprime:
            time.sleep(1.1)  # its cookie is now older than a second for the whole run
    except Exception as exc:
        contender.unavailable = f"failed to set up: {type(exc).__name__}: {exc}"


# -- results -----------------------------------------------------------------------------


def fmt(value: float | None, digits: int = 1, suffix: str = "") -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}{suffix}"


def build_rows(contenders: list[Contender], series: dict[str, Series], counts: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per contender and view. ``us`` is the fastest batch's mean (min of N batches)."""
    rows = []
    floor = {v: series.get(f"floor/{v}") for v in VIEWS}
    for c in contenders:
        for view in VIEWS:
            row: dict[str, Any] = {"key": c.key, "label": c.label, "library": c.library, "store": c.store,
                                   "view": view, "unavailable": c.unavailable}
            s = series.get(f"{c.key}/{view}")
            if c.unavailable or s is None or not s.batches:
                rows.append(row)
                continue
            st = s.stats()
            row.update(st)
            row["us"] = st["min_us"]
            f = floor[view]
            if c.library != "rawloop" and f is not None and f.batches:
                row["x_floor"] = st["min_us"] / f.stats()["min_us"]
                row["added_us"] = st["min_us"] - f.stats()["min_us"]
                row["added_median_us"] = st["median_us"] - f.stats()["median_us"]
            peers = {}
            for peer in [*PEERS.get(c.key, []), *TWINS.get(c.key, [])]:
                p = series.get(f"{peer}/{view}")
                if p is None or not p.batches:
                    continue
                entry: dict[str, Any] = {"total": paired_ratio(s, p)}
                if f is not None and f.batches:
                    theirs = p.stats()["min_us"] - f.stats()["min_us"]
                    entry["added"] = row["added_us"] / theirs if theirs > 0 else None
                peers[peer] = entry
            if peers:
                row["peers"] = peers
            count = counts.get(c.key, {}).get(view)
            if count:
                row["counts"] = count
            rows.append(row)
    return rows


def _short(key: str) -> str:
    return {"beaker-memory": "beaker", "beaker-file": "beaker", "beaker-sql": "beaker", "beaker-redis": "beaker",
            "beaker-memcached": "beaker", "beaker-cookie": "beaker", "psr-redis": "psr",
            "pyramid-signed": "pyramid", "pyramid-signed-aged": "pyr-aged"}.get(key, key)


def print_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "In-process WSGI, µs per request: min = mean of the fastest batch (the main figure), med = median batch,",
        "cpu = the benchmark thread's CPU time per request in its least-CPU batch (excludes waiting for a server).",
        "x floor and +µs from the min figures; satchel/peer = ratio of the min figures (total request) "
        "and of the added cost over the floor;",
        "RT = store round trips per request (server counters), SetCk = Set-Cookie headers per request, "
        "calls = Python function calls per request (cProfile). The targets below are judged on the med figures.",
    ]
    width = max([37, *(len(row["label"]) for row in rows)])
    header = (f"{'contender':{width}} {'view':4} {'min':>7} {'med':>7} {'cpu':>6} {'xfloor':>6} {'+µs':>6} "
              f"{'satchel/peer total | added':28} {'RT':>4} {'SetCk':>5} {'calls':>5}  store commands per request")
    lines += [header, "-" * len(header)]
    for row in rows:
        name = row["label"]
        if row.get("unavailable"):
            lines.append(f"{name:{width}} {row['view']:4} not available: {row['unavailable']}")
            continue
        if "us" not in row:
            lines.append(f"{name:{width}} {row['view']:4} no data")
            continue
        peers = "; ".join(
            f"{_short(k)} {fmt(v['total']['min'], 2)}|{fmt(v.get('added'), 2)}" for k, v in row.get("peers", {}).items()
        )
        counts = row.get("counts") or {}
        commands = dict(counts.get("commands") or {})
        if counts.get("store_calls"):
            commands.update({f"store.{k}": v for k, v in counts["store_calls"].items() if v})
        cmd_text = " ".join(f"{k}={v:g}" for k, v in sorted(commands.items()))
        if counts.get("server_us") is not None:
            cmd_text += f" [redis server {counts['server_us']:.1f} µs]"
        rt = counts.get("round_trips")
        lines.append(
            f"{name:{width}} {row['view']:4} {fmt(row['us']):>7} {fmt(row['median_us']):>7} "
            f"{fmt(row.get('cpu_min_us')):>6} "
            f"{fmt(row.get('x_floor'), 2):>6} {fmt(row.get('added_us')):>6} {peers:28} "
            f"{fmt(rt, 2) if rt is not None else '-':>4} {fmt(counts.get('set_cookie'), 2):>5} "
            f"{fmt(counts.get('py_calls'), 0):>5}  {cmd_text}"
        )
    return lines


# -- targets -------------------------------------------------------------------------------

WRITE_COMMANDS = {"evalsha", "eval", "set", "setex", "hset", "pexpire", "expire", "del", "cmd_set", "cmd_touch",
                  "delete_hits", "delete_misses", "UPDATE", "INSERT", "DELETE"}
#: Stores with a server: a read-only request is 1 round trip there, a changing one 2.
SHARED = ("redis", "memcached", "sql")
#: How many times less than Beaker memory's satchel memory's added cost must be.
MEMORY_SPEEDUP = {"incr": 2.0, "read": 4.0}
#: satchel's added cost on a shared store at most this times the raw driver calls' with the same work.
SHARED_STORE_LIMIT = 1.15
#: A request with metrics on (an SDK meter provider) at most this times one with them off.
METRICS_LIMIT = 1.05
VIEW_NAMES = {"incr": "changing", "read": "read-only"}


def _median_ratio(a: dict[str, Any], b: dict[str, Any], added: bool = False) -> tuple[float | None, float | None]:
    """a/b of two rows: of their median batches (the verdict) and of their fastest batches;
    ``added``: of their costs added over the floor instead of whole requests."""
    median, fastest = ("added_median_us", "added_us") if added else ("median_us", "us")

    def ratio(field: str) -> float | None:
        x, y = a.get(field), b.get(field)
        return x / y if x is not None and y else None

    return ratio(median), ratio(fastest)


def _ratio_text(median: float | None, fastest: float | None, what: str) -> str:
    return f"{what} {fmt(median, 2)} by medians (fastest batches {fmt(fastest, 2)})"


def targets(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The performance satchel must keep, judged on the median batches of this one run."""
    by = {(r["key"], r["view"]): r for r in rows}
    out: list[dict[str, Any]] = []

    def add(name: str, passed: bool | None, detail: str) -> None:
        out.append({"target": name, "result": "n/a" if passed is None else ("PASS" if passed else "FAIL"),
                    "detail": detail})

    def ok(key: str, view: str) -> dict[str, Any] | None:
        row = by.get((key, view))
        return row if row and "us" in row else None

    def missing(*keys_views: tuple[str, str]) -> str:
        for key, view in keys_views:
            why = (by.get((key, view)) or {}).get("unavailable")
            if why:
                return f"not available: {key}: {why}"
        return "not available: not in this run"

    _round_trip_targets(ok, missing, add)
    _peer_targets(ok, missing, add)
    _memory_targets(ok, missing, add)
    _shared_store_targets(ok, missing, add)
    _metrics_targets(ok, missing, add)
    return out


def _round_trip_targets(ok: Any, missing: Any, add: Any) -> None:
    """Read-only: no write, no Set-Cookie on every store, 1 round trip on a shared store;
    changing: 2 round trips on a shared store."""
    for store in ("memory", "file", "sql", "redis", "memcached", "cookie"):
        key = f"satchel-{store}"
        shared = store in SHARED
        name = f"read-only request, satchel {store}: 0 writes, 0 Set-Cookie" + (", 1 round trip" if shared else "")
        row = ok(key, "read")
        if row is None:
            add(name, None, missing((key, "read")))
            continue
        counts = row.get("counts", {})
        calls = counts.get("store_calls") or {}
        writes = sum(calls.get(k, 0) for k in ("save", "touch", "delete"))
        write_cmds = {k: v for k, v in (counts.get("commands") or {}).items() if k in WRITE_COMMANDS}
        set_cookie = counts.get("set_cookie", 0)
        detail = f"store writes/req {writes:g}, write commands/req {write_cmds or 0}, Set-Cookie/req {set_cookie:g}"
        passed = writes == 0 and not write_cmds and set_cookie == 0
        if shared:
            rt = counts.get("round_trips")
            detail += f", round trips/req {fmt(rt, 2)}"
            passed = passed and rt == 1
        add(name, passed, detail)
    for store in SHARED:
        key = f"satchel-{store}"
        name = f"changing request, satchel {store}: 2 round trips"
        row = ok(key, "incr")
        if row is None:
            add(name, None, missing((key, "incr")))
            continue
        counts = row.get("counts", {})
        rt = counts.get("round_trips")
        commands = " ".join(f"{k}={v:g}" for k, v in sorted((counts.get("commands") or {}).items()))
        add(name, rt == 2, f"round trips/req {fmt(rt, 2)} ({commands})")


def _peer_targets(ok: Any, missing: Any, add: Any) -> None:
    """Faster than Beaker on every store both have and than pyramid_session_redis;
    the encrypted cookie at least as fast as Pyramid's signed cookie."""
    for key, peers in PEERS.items():
        for peer in peers:
            if peer == "pyramid-signed-aged":
                continue
            signed = peer == "pyramid-signed"
            for view in VIEWS:
                if signed:
                    name = f"satchel encrypted cookie at least as fast as Pyramid's signed cookie ({VIEW_NAMES[view]})"
                else:
                    name = f"{key} faster than {peer} ({VIEW_NAMES[view]})"
                row, other = ok(key, view), ok(peer, view)
                if row is None or other is None:
                    add(name, None, missing((key, view), (peer, view)))
                    continue
                median, fastest = _median_ratio(row, other)
                detail = _ratio_text(median, fastest, f"satchel/{_short(peer)} per request")
                aged = ok("pyramid-signed-aged", view) if signed else None
                if aged is not None:
                    detail += (". Against a Pyramid cookie older than a second, which Pyramid re-signs and re-sends "
                               f"on every request: {fmt(_median_ratio(row, aged)[0], 2)} by medians")
                add(name, None if median is None else (median <= 1.0 if signed else median < 1.0), detail)


def _memory_targets(ok: Any, missing: Any, add: Any) -> None:
    """satchel memory's added cost over the floor, Beaker memory's divided by it."""
    for view, speedup in MEMORY_SPEEDUP.items():
        name = f"satchel memory's added cost at least {speedup:g}x less than Beaker memory's ({VIEW_NAMES[view]})"
        row, beaker = ok("satchel-memory", view), ok("beaker-memory", view)
        if row is None or beaker is None:
            add(name, None, missing(("satchel-memory", view), ("beaker-memory", view)))
            continue
        median, fastest = _median_ratio(beaker, row, added=True)
        detail = (f"Beaker/satchel added cost {fmt(median, 2)}x by medians "
                  f"({beaker.get('added_median_us', 0):.1f} / {row.get('added_median_us', 0):.1f} µs), "
                  f"fastest batches {fmt(fastest, 2)}x")
        add(name, None if median is None else median >= speedup, detail)


def _shared_store_targets(ok: Any, missing: Any, add: Any) -> None:
    """satchel on a shared store against the driver's public calls for the same round
    trips with satchel memory's session work between them."""
    for store in SHARED:
        work_key = f"raw-{store}-work"
        for view in VIEWS:
            name = (f"satchel {store}'s added cost at most {SHARED_STORE_LIMIT:g}x the driver's calls "
                    f"+ satchel memory's work ({VIEW_NAMES[view]})")
            row, work = ok(f"satchel-{store}", view), ok(work_key, view)
            if row is None or work is None:
                add(name, None, missing((f"satchel-{store}", view), (work_key, view)))
                continue
            median, fastest = _median_ratio(row, work, added=True)
            detail = (f"satchel {row.get('added_median_us', 0):.1f} µs / {work['label']} "
                      f"{work.get('added_median_us', 0):.1f} µs = {fmt(median, 2)}x by medians "
                      f"(fastest batches {fmt(fastest, 2)}x)")
            raw = ok(f"raw-{store}", view)
            if raw is not None:
                detail += f"; the driver's calls alone add {raw.get('added_median_us', 0):.1f} µs"
            add(name, None if median is None else median <= SHARED_STORE_LIMIT, detail)


def _metrics_targets(ok: Any, missing: Any, add: Any) -> None:
    """Metrics cost a few percent of a request at most (off, the default without a
    provider, takes the runner's plain path: nothing to measure). On and off are one
    wiring, judged paired: the median of their ratios round by round (both ran in
    every round, seconds apart), which the machine's slow minutes move far less than
    a ratio of two medians."""
    for view in VIEWS:
        name = (f"satchel memory with metrics on at most {METRICS_LIMIT:g}x the request with them off "
                f"({VIEW_NAMES[view]})")
        on, off = ok("satchel-memory-metrics", view), ok("satchel-memory-metrics-off", view)
        if on is None or off is None:
            add(name, None, missing(("satchel-memory-metrics", view), ("satchel-memory-metrics-off", view)))
            continue
        paired = on.get("peers", {}).get("satchel-memory-metrics-off", {}).get("total") or {}
        median = paired.get("median")
        detail = (f"whole request {fmt(median, 3)} by the median of round-by-round ratios "
                  f"(quartiles {fmt(paired.get('p25'), 3)}-{fmt(paired.get('p75'), 3)}; "
                  f"fastest batches {fmt(paired.get('min'), 3)}; ratio of medians "
                  f"{fmt(_median_ratio(on, off)[0], 3)})")
        add(name, None if median is None else median <= METRICS_LIMIT, detail)


# -- main ---------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer, shorter rounds (a smoke test)")
    parser.add_argument("--http", action="store_true", help="also run the HTTP part (waitress x2 + load generator)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 200, --quick 20)")
    parser.add_argument("--batch-ms", type=float, help="target length of one batch (default 8, --quick 5)")
    parser.add_argument("--only", help="comma-separated substrings: run only contenders whose key matches")
    parser.add_argument("--redis-url", help="use this Redis instead of starting a private one")
    parser.add_argument("--memcached", help="use this memcached (host:port) instead of starting a private one")
    parser.add_argument("--tmpdir", help="where file and SQLite stores live (default: /dev/shm if present)")
    parser.add_argument("--cpu", default="last",
                        help="run the in-process part and the servers it starts on this CPU: a number, "
                        "'last' (default) or 'all' (not pinned); see servers.pin")
    parser.add_argument("--http-seconds", type=float, default=5.0, help="HTTP part: seconds per contender and view")
    parser.add_argument("--http-threads", type=int, default=8, help="HTTP part: client threads")
    parser.add_argument("--http-sql-url", help="HTTP part: SQL URL shared by both server processes "
                        "(default: a SQLite file; set e.g. postgresql+psycopg://postgres@127.0.0.1/test)")
    parser.add_argument("--output", default=str(RESULTS / "latest.json"))
    parser.add_argument("--chart", default=str(ROOT / "docs" / "benchmarks.png"))
    parser.add_argument("--no-chart", action="store_true")
    args = parser.parse_args(argv)
    rounds = args.rounds or (20 if args.quick else 200)
    batch_s = (args.batch_ms or (5 if args.quick else 8)) / 1000
    started = time.monotonic()

    cpu = servers.pin(args.cpu)
    srv = servers.start(args.redis_url, args.memcached)
    for note in srv.notes:
        log(f"note: {note}")
    base = args.tmpdir or ("/dev/shm" if os.path.isdir("/dev/shm") else None)
    tmp = tempfile.mkdtemp(prefix="satchel-bench-", dir=base)
    try:
        return _run(args, srv, tmp, rounds, batch_s, started, cpu)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        servers.stop()


def _run(args: argparse.Namespace, srv: servers.Servers, tmp: str, rounds: int, batch_s: float,
         started: float, cpu: int | None) -> int:
    info = {"machine": machine(), "versions": versions(), "servers": server_versions(srv), "git": git_state(),
            "private_servers": {"redis": srv.redis_private, "memcached": srv.memcached_private},
            "server_notes": srv.notes, "tmpdir": tmp,
            "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "rounds": rounds, "batch_ms": batch_s * 1000, "quick": args.quick, "cpu": cpu}
    log(f"satchel at {info['git']['commit']} (+{len(info['git']['src_changes_not_committed'])} files changed in src)")
    log(f"machine: {info['machine']['cpu']}, {info['machine']['cores']} cores, "
        f"load {info['machine']['load_average'][0]:.2f}; servers {info['servers']}")

    contenders = make_contenders(srv.redis_url, srv.memcached, tmp)
    if args.only:
        wanted = [w.strip() for w in args.only.split(",") if w.strip()]
        contenders = [c for c in contenders if c.key == "floor" or any(w in c.key for w in wanted)]
    log("setting up contenders ...")
    for c in contenders:
        prepare(c)
        if c.unavailable:
            log(f"  {c.key}: not available: {c.unavailable}")

    counters: dict[str, Any] = {}
    if srv.redis_url:
        counters["redis"] = servers.RedisCounter(srv.redis_url)
    if srv.memcached_addr:
        counters["memcached"] = servers.MemcachedCounter(srv.memcached_addr)
    counters["sql"] = servers.SQLCounter()

    log("counting round trips and Set-Cookie headers ...")
    counts = {c.key: count_requests(c, counters) for c in contenders if not c.unavailable}
    counters["sql"].close()  # counted: the timed requests run without its listeners

    series: dict[str, Series] = {}
    for c in contenders:
        if not c.unavailable:
            for s in contender_series(c):
                series[s.name] = s

    cache: dict[str, Any] = {}
    try:
        dogpile = cachebench.dogpile_ops()
        satchel_cache, how = cachebench.satchel_ops()
        cache["how"] = how
        for op in satchel_cache:
            if op in dogpile:
                series[f"cache-dogpile/{op}"] = Series("cache-dogpile", op, lambda f=dogpile[op]: f)
                series[f"cache-satchel/{op}"] = Series("cache-satchel", op, lambda f=satchel_cache[op]: f)
    except Exception as exc:
        cache["unavailable"] = f"satchel.cache not available: {type(exc).__name__}: {exc}"
        log(f"  cache: {cache['unavailable']}")

    log(f"calibrating {len(series)} series ...")
    for s in series.values():
        calibrate(s, batch_s)
    log(f"timing: {rounds} rounds of {len(series)} interleaved batches of ~{batch_s * 1000:.0f} ms ...")
    run_rounds(list(series.values()), rounds)

    if not cache.get("unavailable"):
        cache["ops"] = {}
        cache["ratios"] = {}
        for name, s in series.items():
            if name.startswith("cache-satchel/"):
                op = s.view
                d = series[f"cache-dogpile/{op}"]
                cache["ops"][op] = {"satchel": s.stats(), "dogpile": d.stats()}
                cache["ratios"][op] = paired_ratio(s, d)

    rows = build_rows(contenders, series, counts)
    checks = targets(rows)
    info["finished_load_average"] = os.getloadavg()
    info["in_process_elapsed_s"] = round(time.monotonic() - started, 1)

    lines = print_table(rows)
    lines.append("")
    lines.append("Cache hit, µs per call (min of batches; median in brackets):")
    if cache.get("unavailable"):
        lines.append(f"  not available: {cache['unavailable']}")
    else:
        lines.append(f"  satchel region via {cache['how']}")
        for op, both in cache["ops"].items():
            r = cache["ratios"][op]
            lines.append(f"  {op:14} satchel {both['satchel']['min_us']:.2f} ({both['satchel']['median_us']:.2f})  "
                         f"dogpile {both['dogpile']['min_us']:.2f} ({both['dogpile']['median_us']:.2f})  "
                         f"satchel/dogpile {r['min']:.2f}")

    http: dict[str, Any] | None = None
    if args.http:
        import httpbench

        log("HTTP part ...")
        servers.unpin()  # several server processes and a load generator: every CPU
        http = httpbench.run(srv, tmp, seconds=args.http_seconds, threads=args.http_threads,
                             sql_url=args.http_sql_url, only=args.only)
        lines.append("")
        lines += httpbench.table(http)
    info["elapsed_s"] = round(time.monotonic() - started, 1)
    lines.append("")
    lines.append("Targets:")
    for t in checks:
        lines.append(f"  [{t['result']:4}] {t['target']}: {t['detail']}")
    lines.append("")
    lines.append(f"load average at start {info['machine']['load_average'][0]:.2f}, at end "
                 f"{info['finished_load_average'][0]:.2f}; {info['elapsed_s']} s; "
                 + ("not pinned" if cpu is None else f"benchmark and its servers on CPU {cpu}"))
    print("\n".join(lines))

    result = {"info": info, "rows": rows, "series": {k: s.stats() | {"all_us": s.batches} for k, s in series.items()},
              "counts": counts, "cache": cache, "targets": checks, "http": http, "table": lines}
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, default=str))
    log(f"wrote {out}")
    if not args.no_chart:
        try:
            import chart

            chart.render(result, Path(args.chart))
            log(f"wrote {args.chart}")
        except ImportError as exc:
            log(f"no chart: {exc} (pip install -r bench/requirements.txt)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
