"""The HTTP part: two waitress processes per contender and a threaded keep-alive load generator.

For the stores several processes share (Redis, memcached, SQL), each contender's
app is served by two waitress processes on two loopback ports, as a deployment
with two workers would be. Client threads each hold a session and one keep-alive
connection to each port, and send their requests to the two ports in turn, for a
bounded time per contender and view. All servers are started first and stay idle
until measured; the contenders are measured in two passes in opposite orders,
so a slow moment of the machine is shared out.

Run by ``bench/run.py --http``; ``httpbench.py serve ...`` is the server process.
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

HTTP_CONTENDERS = ("satchel-redis", "beaker-redis", "psr-redis", "satchel-memcached", "beaker-memcached",
                   "satchel-sql", "beaker-sql")
WAITRESS_THREADS = 4


def serve(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--contender", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis-url")
    parser.add_argument("--memcached")
    parser.add_argument("--sql-url")
    parser.add_argument("--tmp", required=True)
    args = parser.parse_args(argv)
    import waitress
    from contenders import make_contenders

    found = [c for c in make_contenders(args.redis_url, args.memcached, args.tmp, sql_url=args.sql_url)
             if c.key == args.contender]
    if not found or found[0].build is None:
        sys.exit(f"no contender {args.contender}")
    app = found[0].build()
    waitress.serve(app, host="127.0.0.1", port=args.port, threads=WAITRESS_THREADS, _quiet=True)


class Client:
    """One simulated visitor: a session cookie and a keep-alive connection to each port."""

    def __init__(self, ports: list[int]) -> None:
        self.conns = [http.client.HTTPConnection("127.0.0.1", port, timeout=10) for port in ports]
        self.turn = 0
        self.cookie: str | None = None

    def get(self, path: str) -> tuple[int, float]:
        conn = self.conns[self.turn]
        self.turn = (self.turn + 1) % len(self.conns)
        headers = {"Cookie": self.cookie} if self.cookie else {}
        start = time.perf_counter()
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        response.read()
        elapsed = time.perf_counter() - start
        cookies = response.headers.get_all("Set-Cookie") or []
        if cookies:
            pairs = [c.split(";", 1)[0] for c in cookies if c.split(";", 1)[0].split("=", 1)[1:] != [""]]
            if pairs:
                self.cookie = "; ".join(pairs)
        return response.status, elapsed

    def close(self) -> None:
        for conn in self.conns:
            conn.close()


def load(ports: list[int], path: str, seconds: float, threads: int, warmup: float = 0.5) -> dict[str, Any]:
    """Requests per second and latency percentiles for ``path``, over ``seconds`` after a warm-up."""
    clients = [Client(ports) for _ in range(threads)]
    for client in clients:  # each visitor starts its session
        client.get("/incr")
        client.get("/incr")
    latencies: list[list[float]] = [[] for _ in clients]
    errors = [0] * threads
    start_at = time.monotonic() + 0.05
    measure_from = start_at + warmup
    stop_at = measure_from + seconds

    def worker(i: int) -> None:
        client, mine = clients[i], latencies[i]
        while time.monotonic() < start_at:
            time.sleep(0.001)
        while True:
            now = time.monotonic()
            if now >= stop_at:
                break
            try:
                status, elapsed = client.get(path)
            except (OSError, http.client.HTTPException):
                errors[i] += 1
                client.close()
                client.conns = [http.client.HTTPConnection("127.0.0.1", p, timeout=10) for p in ports]
                continue
            if status != 200:
                errors[i] += 1
            if now >= measure_from:
                mine.append(elapsed)

    workers = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=seconds + warmup + 30)
    for client in clients:
        client.close()
    all_latencies = sorted(x for part in latencies for x in part)
    if not all_latencies:
        return {"requests": 0, "errors": sum(errors)}
    q = statistics.quantiles(all_latencies, n=100)
    return {
        "requests": len(all_latencies),
        "seconds": seconds,
        "rps": len(all_latencies) / seconds,
        "p50_ms": q[49] * 1000,
        "p99_ms": q[98] * 1000,
        "errors": sum(errors),
    }


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 20.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server on port {port} did not start")


def run(srv: Any, tmp: str, seconds: float = 5.0, threads: int = 8, sql_url: str | None = None,
        only: str | None = None) -> dict[str, Any]:
    from contenders import make_contenders

    available = {c.key: c for c in make_contenders(srv.redis_url, srv.memcached, tmp, sql_url=sql_url)}
    keys = [k for k in HTTP_CONTENDERS if k in available]
    if only:
        wanted = [w.strip() for w in only.split(",") if w.strip()]
        keys = [k for k in keys if any(w in k for w in wanted)]
    results: dict[str, Any] = {"seconds_per_contender_and_view": seconds, "threads": threads,
                               "processes_per_contender": 2, "waitress_threads": WAITRESS_THREADS,
                               "sql": sql_url or "SQLite file shared by both processes", "contenders": {}}
    procs: dict[str, list[subprocess.Popen[bytes]]] = {}
    ports: dict[str, list[int]] = {}
    try:
        for key in keys:
            contender = available[key]
            if contender.unavailable:
                results["contenders"][key] = {"label": contender.label, "unavailable": contender.unavailable}
                continue
            procs[key], ports[key] = [], []
            try:
                for _ in range(2):  # one after the other: the second finds the tables made
                    port = _free_port()
                    cmd = [sys.executable, str(HERE / "httpbench.py"), "serve", "--contender", key, "--port", str(port),
                           "--tmp", tmp]
                    for flag, value in (("--redis-url", srv.redis_url), ("--memcached", srv.memcached),
                                        ("--sql-url", sql_url)):
                        if value:
                            cmd += [flag, value]
                    log = Path(tmp) / f"http-{key}-{port}.log"
                    with open(log, "wb") as log_file:
                        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log_file)
                    procs[key].append(proc)
                    _wait(port, proc, log)
                    ports[key].append(port)
                results["contenders"][key] = {"label": contender.label, "incr": [], "read": []}
            except Exception as exc:
                results["contenders"][key] = {"label": contender.label, "unavailable": f"server failed: {exc}"}
        runnable = [k for k in keys if "incr" in results["contenders"].get(k, {})]
        half = seconds / 2
        for order in (runnable, list(reversed(runnable))):
            for key in order:
                for view in ("incr", "read"):
                    print(f"  http {key} {view} ...", file=sys.stderr, flush=True)
                    results["contenders"][key][view].append(load(ports[key], f"/{view}", half, threads))
        for key in runnable:
            entry = results["contenders"][key]
            for view in ("incr", "read"):
                parts = entry[view]
                total = sum(p.get("requests", 0) for p in parts)
                entry[view] = {
                    "rps": total / (half * len(parts)),
                    "p50_ms": statistics.median(p["p50_ms"] for p in parts if "p50_ms" in p),
                    "p99_ms": max(p["p99_ms"] for p in parts if "p99_ms" in p),
                    "errors": sum(p.get("errors", 0) for p in parts),
                    "passes": parts,
                }
    finally:
        for plist in procs.values():
            for proc in plist:
                if proc.poll() is None:
                    proc.terminate()
        for plist in procs.values():
            for proc in plist:
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
    return results


def table(results: dict[str, Any]) -> list[str]:
    lines = [f"HTTP: 2 waitress processes x {results['waitress_threads']} threads per contender, "
             f"{results['threads']} keep-alive client threads (one Python process), "
             f"{results['seconds_per_contender_and_view']:g} s per contender and view; SQL: {results['sql']}"]
    header = f"{'contender':38} {'view':4} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6}  satchel/peer req/s"
    lines += [header, "-" * len(header)]
    entries = results["contenders"]
    peers = {"redis": "satchel-redis", "memcached": "satchel-memcached", "sql": "satchel-sql"}
    for key, entry in entries.items():
        if entry.get("unavailable"):
            lines.append(f"{entry['label'][:38]:38} not available: {entry['unavailable']}")
            continue
        store = key.split("-", 1)[1]
        mine = entries.get(peers.get(store, ""), {})
        for view in ("incr", "read"):
            e = entry[view]
            ratio = ""
            if key != peers.get(store) and isinstance(mine.get(view), dict) and e["rps"]:
                ratio = f"{mine[view]['rps'] / e['rps']:.2f}"
            lines.append(f"{entry['label'][:38]:38} {view:4} {e['rps']:8.0f} {e['p50_ms']:7.2f} {e['p99_ms']:7.2f} "
                         f"{e['errors']:6d}  {ratio}")
    return lines


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        serve(sys.argv[2:])
    else:
        sys.exit("run through bench/run.py --http")
