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
beside it; ratios are given from the fastest batches and, in the JSON and the
targets, also as the median of ratios computed round by round. Results go to
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
RAW = {"redis": "raw-redis", "memcached": "raw-memcached", "sql": "raw-sql"}


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
            for peer in PEERS.get(c.key, []):
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
        "calls = Python function calls per request (cProfile).",
    ]
    header = (f"{'contender':37} {'view':4} {'min':>7} {'med':>7} {'cpu':>6} {'xfloor':>6} {'+µs':>6} "
              f"{'satchel/peer total | added':28} {'RT':>4} {'SetCk':>5} {'calls':>5}  store commands per request")
    lines += [header, "-" * len(header)]
    for row in rows:
        name = row["label"][:37]
        if row.get("unavailable"):
            lines.append(f"{name:37} {row['view']:4} not available: {row['unavailable']}")
            continue
        if "us" not in row:
            lines.append(f"{name:37} {row['view']:4} no data")
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
            f"{name:37} {row['view']:4} {fmt(row['us']):>7} {fmt(row['median_us']):>7} {fmt(row.get('cpu_min_us')):>6} "
            f"{fmt(row.get('x_floor'), 2):>6} {fmt(row.get('added_us')):>6} {peers:28} "
            f"{fmt(rt, 2) if rt is not None else '-':>4} {fmt(counts.get('set_cookie'), 2):>5} "
            f"{fmt(counts.get('py_calls'), 0):>5}  {cmd_text}"
        )
    return lines


# -- targets -------------------------------------------------------------------------------

WRITE_COMMANDS = {"evalsha", "eval", "set", "setex", "hset", "pexpire", "expire", "del", "cmd_set", "cmd_touch",
                  "delete_hits", "delete_misses", "UPDATE", "INSERT", "DELETE"}


def targets(rows: list[dict[str, Any]], cache: dict[str, Any]) -> list[dict[str, Any]]:
    by = {(r["key"], r["view"]): r for r in rows}
    out: list[dict[str, Any]] = []

    def add(name: str, passed: bool | None, detail: str) -> None:
        out.append({"target": name, "result": "n/a" if passed is None else ("PASS" if passed else "FAIL"),
                    "detail": detail})

    def ok(key: str, view: str) -> dict[str, Any] | None:
        row = by.get((key, view))
        return row if row and "us" in row else None

    def ratio_text(r: dict[str, float], what: str) -> str:
        cpu = f"; CPU time {r['cpu_min']:.2f}" if r.get("cpu_min") is not None else ""
        return (f"{what} {r['min']:.2f} (fastest batches); round by round median {r['median']:.2f}, "
                f"quartiles {r['p25']:.2f}-{r['p75']:.2f}{cpu}")

    # 1. read-only: no write, no Set-Cookie; one round trip on Redis and memcached
    for key in ("satchel-memory", "satchel-file", "satchel-sql", "satchel-redis", "satchel-memcached",
                "satchel-cookie"):
        one_rt = key in ("satchel-redis", "satchel-memcached")
        name = f"read-only request, {key}: no write, no Set-Cookie" + (", exactly 1 round trip" if one_rt else "")
        row = ok(key, "read")
        if row is None:
            add(name, None, f"not available: {(by.get((key, 'read')) or {}).get('unavailable') or 'not in this run'}")
            continue
        counts = row.get("counts", {})
        calls = counts.get("store_calls") or {}
        writes = sum(calls.get(k, 0) for k in ("save", "touch", "delete"))
        write_cmds = {k: v for k, v in (counts.get("commands") or {}).items() if k in WRITE_COMMANDS}
        sc = counts.get("set_cookie", 0)
        detail = f"store writes/req {writes:g}, write commands/req {write_cmds or 0}, Set-Cookie/req {sc:g}"
        passed = writes == 0 and not write_cmds and sc == 0
        if one_rt:
            rt = counts.get("round_trips")
            detail += f", round trips/req {rt:g}"
            passed = passed and rt == 1
        add(name, passed, detail)

    # 2. changing request: two round trips on Redis and memcached
    for key in ("satchel-redis", "satchel-memcached"):
        name = f"changing request, {key}: 2 round trips"
        row = ok(key, "incr")
        if row is None:
            add(name, None, "not available")
            continue
        rt = row.get("counts", {}).get("round_trips")
        add(name, rt == 2, f"round trips/req {rt:g}")

    # 3. added cost over the floor <= 1.15x the raw server floor
    for store, raw in RAW.items():
        for view, what in (("incr", "GET+SET"), ("read", "GET")):
            row, raw_row = ok(f"satchel-{store}", view), ok(raw, view)
            name = f"satchel {store}, {view}: added cost <= 1.15x the raw server floor ({what})"
            if row is None or raw_row is None or row.get("added_us") is None or raw_row.get("added_us") is None:
                add(name, None, "not available")
                continue
            raw_us = raw_row["added_us"]
            ratio = row["added_us"] / raw_us
            median_ratio = row["added_median_us"] / raw_row["added_median_us"]
            detail = (f"added {row['added_us']:.1f} µs vs the raw commands' added {raw_us:.1f} µs = {ratio:.2f}x "
                      f"(medians: {median_ratio:.2f}x)")
            layer = ok("satchel-memory", view)
            if layer is not None and layer.get("added_us") is not None:
                store_part = row["added_us"] - layer["added_us"]
                detail += (f"; of which the session layer (satchel memory's added cost) {layer['added_us']:.1f} µs "
                           f"and the store part {store_part:.1f} µs = {store_part / raw_us:.2f}x raw")
            work = ok(f"{raw}-work", view)
            if work is not None and work.get("added_us") is not None:
                cost = work["added_us"] - raw_us
                detail += (f"; the raw commands with satchel memory's manager work between them add "
                           f"{work['added_us']:.1f} µs (that work costing {cost:.1f} µs there; "
                           f"satchel's added cost {row['added_us'] / work['added_us']:.2f}x that)")
            loop = ok(f"{raw}-loop", view)
            if loop is not None:
                detail += (f"; the raw commands alone in a tight loop take {loop['us']:.1f} µs "
                           f"(satchel's added cost {row['added_us'] / loop['us']:.2f}x that)")
            if view == "read":
                detail += "; informational: the target's floor is GET then SET"
            add(name, ratio <= 1.15 if view == "incr" else None, detail)

    # 4/5. faster than Beaker on every store both have; faster than pyramid_session_redis
    for key, peers in PEERS.items():
        for peer in peers:
            if peer.startswith("pyramid-signed"):
                continue
            for view in VIEWS:
                row = ok(key, view)
                name = f"{key} faster than {peer} ({view})"
                if row is None or ok(peer, view) is None:
                    why = (by.get((key, view)) or {}).get("unavailable") or (by.get((peer, view)) or {}).get(
                        "unavailable")
                    add(name, None, f"not available: {why or 'not in this run'}")
                    continue
                ratio = row["peers"][peer]["total"]
                add(name, ratio["min"] < 1.0, ratio_text(ratio, "satchel/peer per request"))

    # 6. encrypted cookie mode at least as fast as Pyramid's signed-only cookie sessions
    for view in VIEWS:
        row = ok("satchel-cookie", view)
        name = f"satchel encrypted cookie at least as fast as Pyramid's signed cookie ({view})"
        if row is None or ok("pyramid-signed", view) is None:
            add(name, None, "not available")
            continue
        ratio = row["peers"]["pyramid-signed"]["total"]
        detail = ratio_text(ratio, "satchel/pyramid per request (Pyramid's cookie set in the same second)")
        aged = row["peers"].get("pyramid-signed-aged")
        if aged:
            detail += (f". Against a Pyramid cookie more than a second old, which Pyramid's default reissue_time=0 "
                       f"re-signs and re-sends on every request: {aged['total']['min']:.2f}")
        add(name, ratio["min"] <= 1.0, detail)

    # 7. memory store at least 3x faster than Beaker's memory (session cost: added over the floor)
    for view in VIEWS:
        row = ok("satchel-memory", view)
        name = f"satchel memory >= 3x faster than Beaker memory, added cost over the floor ({view})"
        if row is None or ok("beaker-memory", view) is None:
            add(name, None, "not available")
            continue
        added = row["peers"]["beaker-memory"].get("added")
        total = row["peers"]["beaker-memory"]["total"]["min"]
        speedup = 1 / added if added else None
        add(name, speedup is not None and speedup >= 3.0,
            f"Beaker/satchel added cost {fmt(speedup, 2)}x (whole request {1 / total:.2f}x)")

    # 8. cache hit within 1.2x a bare dogpile region's hit
    if cache.get("unavailable"):
        add("cache hit in a satchel memory region <= 1.2x a bare dogpile region's hit", None, cache["unavailable"])
    else:
        for op, ratio in cache.get("ratios", {}).items():
            add(f"cache hit in a satchel memory region <= 1.2x a bare dogpile region's hit ({op})",
                ratio["min"] <= 1.2, ratio_text(ratio, "satchel/dogpile"))
    return out


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

    srv = servers.start(args.redis_url, args.memcached)
    for note in srv.notes:
        log(f"note: {note}")
    base = args.tmpdir or ("/dev/shm" if os.path.isdir("/dev/shm") else None)
    tmp = tempfile.mkdtemp(prefix="satchel-bench-", dir=base)
    try:
        return _run(args, srv, tmp, rounds, batch_s, started)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        servers.stop()


def _run(args: argparse.Namespace, srv: servers.Servers, tmp: str, rounds: int, batch_s: float,
         started: float) -> int:
    info = {"machine": machine(), "versions": versions(), "servers": server_versions(srv), "git": git_state(),
            "private_servers": {"redis": srv.redis_private, "memcached": srv.memcached_private},
            "server_notes": srv.notes, "tmpdir": tmp,
            "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "rounds": rounds, "batch_ms": batch_s * 1000, "quick": args.quick}
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
    checks = targets(rows, cache)
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
                 f"{info['finished_load_average'][0]:.2f}; {info['elapsed_s']} s")
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
