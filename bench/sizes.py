"""satchel's benchmark by session size: what a session of K keys adds to a Pyramid request.

    .venv/bin/python bench/sizes.py                     # every size and store (about 4 minutes)
    .venv/bin/python bench/sizes.py --quick             # fewer, shorter rounds (under a minute), a smoke test
    .venv/bin/python bench/sizes.py --sizes 10,1000 --stores memory,redis
    PYTHONPATH=/other/checkout/src .venv/bin/python bench/sizes.py --label "other tree"

A session of size K holds keys ``k0000`` .. ``k{K-1}``, each a 24-character str,
and ``nested``, a dict of K // 10 entries (str keys, 24-character str values);
the "100 KB" case is the K = 10 session plus ``big``, one 100 KB str. Every
contender is a minimal Pyramid app with ``/fill/{size}``, which seeds such a
session, and the two views of ``bench/run.py`` on it: ``/incr`` changes one key
(``k0001`` set to a fresh 24-character str: a changing request) and ``/read``
returns one key (``k0002``: a read-only request), so ``measure.py`` drives them
as it drives ``run.py``'s. Every measured request carries the cookie of the
seeded session, renewed before each batch as ``run.py`` does. Cookie sessions
run only at the sizes that fit in cookies (satchel with its default
``session.max_cookies``).

All contenders and sizes run in one process in interleaved rounds, as in
``run.py``: the figures are µs added over a no-session floor app, by the fastest
batch (min of N; the median batch is in the JSON), and the verdicts, like
``run.py``'s targets, are judged on the median batches. Results go to
bench/results/sizes.json, the chart to docs/benchmarks-sizes.png. satchel is
whatever ``import satchel`` finds (set PYTHONPATH to measure another checkout);
its file and the git commit of its tree are recorded in the JSON.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import functools
import itertools
import json
import os
import random
import shutil
import string
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import servers  # noqa: E402
from contenders import Contender, Reply, build_app, cookie_from, make_contenders, request, settings_app  # noqa: E402
from measure import VIEWS, Series, calibrate, contender_series, count_requests, paired_ratio, run_rounds  # noqa: E402
from pyramid.config import Configurator  # noqa: E402
from pyramid.response import Response  # noqa: E402
from run import log, machine, server_versions, versions  # noqa: E402

SIZES = ("10", "100", "1000", "100kb")
SIZE_TITLES = {"10": "K = 10", "100": "K = 100", "1000": "K = 1000", "100kb": "100 KB"}
STORES = ("memory", "file", "sql", "redis", "memcached", "cookie")
#: How the tables name measure.py's views.
VIEW_NAMES = {"incr": "change", "read": "read"}
VALUE_CHARS = 24
BIG_CHARS = 100 * 1024
ALPHABET = string.ascii_letters + string.digits
TOO_BIG = "does not fit in a cookie"
#: Browsers keep a cookie whose name and value fit in this many bytes.
COOKIE_LIMIT = 4096
#: Added cost at K = 1000 over added cost at K = 10, at most (judged on the median batches).
GROWTH_TARGETS = {"satchel-memory": {"incr": 4.0, "read": 3.0}}
COLORS = {"satchel": "#2b7bb9", "beaker": "#d9822b", "pyramid_session_redis": "#8e5ea2", "pyramid": "#6a9f3c"}


# -- the sessions and the views ---------------------------------------------------------


@functools.cache
def session_data(size: str) -> dict[str, Any]:
    """The session of a size, the same in every run (random letters and digits, which
    compress as little as real values do)."""
    rng = random.Random(f"satchel-bench-{size}")

    def text(length: int = VALUE_CHARS) -> str:
        return "".join(rng.choices(ALPHABET, k=length))

    keys = 10 if size == "100kb" else int(size)
    data: dict[str, Any] = {f"k{i:04d}": text() for i in range(keys)}
    data["nested"] = {f"n{i:04d}": text() for i in range(keys // 10)}
    if size == "100kb":
        data["big"] = text(BIG_CHARS)
    return data


_changes = itertools.count()


def fresh_value() -> str:
    """A 24-character str not stored before."""
    return f"{next(_changes):0{VALUE_CHARS}d}"


def fill(request: Any) -> Response:
    session = request.session
    for key, value in session_data(request.matchdict["size"]).items():
        session[key] = dict(value) if isinstance(value, dict) else value
    return Response("filled", content_type="text/plain")


def change(request: Any) -> Response:
    value = fresh_value()
    request.session["k0001"] = value
    return Response(value, content_type="text/plain")


def read(request: Any) -> Response:
    return Response(str(request.session.get("k0002")), content_type="text/plain")


def floor_change(request: Any) -> Response:
    return Response(fresh_value(), content_type="text/plain")


def floor_read(request: Any) -> Response:
    return Response("-", content_type="text/plain")


def add_fill(config: Configurator) -> None:
    config.add_route("fill", "/fill/{size}")
    config.add_view(fill, route_name="fill")


#: An app with the size views (``contenders.settings_app``'s arguments).
sized_app = functools.partial(settings_app, views=(change, read), more=add_fill)


# -- the contenders ---------------------------------------------------------------------


#: The contenders of ``contenders.make_contenders`` that hold a session, in the tables' order.
SIZED = (
    "satchel-memory", "beaker-memory", "satchel-file", "beaker-file", "satchel-sql", "beaker-sql",
    "satchel-redis", "beaker-redis", "psr-redis", "satchel-memcached", "beaker-memcached",
    "satchel-cookie", "beaker-cookie", "pyramid-signed",
)  # fmt: skip


def make_templates(redis_url: str | None, memcached: str | None, tmp: str) -> list[Contender]:
    """One contender per library and store, configured as ``contenders.make_contenders``
    configures them, on the size views; each is set up once per size."""
    made = {c.key: c for c in make_contenders(redis_url, memcached, tmp, app=sized_app)}
    made["pyramid-signed"].store = "cookie"  # judged beside the other cookie sessions
    return [made[key] for key in SIZED]


class CookieTooLarge(Exception):
    """A Set-Cookie whose name and value are longer than browsers keep."""


def _too_large(exc: Exception) -> bool:
    from satchel import SessionTooLarge

    return isinstance(exc, (SessionTooLarge, CookieTooLarge)) or "too long" in str(exc)


def _checked(reply: Reply, what: str) -> Reply:
    if not reply.status.startswith("200"):
        raise RuntimeError(f"{what}: {reply.status} {reply.body[:200]!r}")
    for header in reply.set_cookies:
        pair = header.split(";", 1)[0].strip()
        if len(pair.encode()) > COOKIE_LIMIT:
            raise CookieTooLarge(f"{what}: a cookie of {len(pair.encode())} bytes, over {COOKIE_LIMIT}")
    return reply


def seed(contender: Contender, size: str) -> None:
    """Fill the contender's session to ``size``, check the cookie carries it through a
    change; mark the contender unavailable on failure."""
    expected = session_data(size)["k0002"].encode()
    try:
        filled = _checked(request(contender.app, f"/fill/{size}", None), "/fill")
        contender.cookie = cookie_from(filled)
        if not contender.cookie:
            raise RuntimeError(f"/fill set no cookie: {filled.set_cookies!r}")
        changed = _checked(request(contender.app, "/incr", contender.cookie), "/incr")
        contender.cookie = cookie_from(changed) or contender.cookie
        got = _checked(request(contender.app, "/read", contender.cookie), "/read").body
        if got != expected:
            raise RuntimeError(f"session not carried by the cookie: read gave {got[:40]!r}, not {expected!r}")
    except Exception as exc:
        why = f"{type(exc).__name__}: {str(exc)[:300]}"
        too_big = contender.store == "cookie" and _too_large(exc)
        contender.unavailable = f"{TOO_BIG} ({why})" if too_big else f"failed to set up: {why}"


def set_up(templates: list[Contender], sizes: list[str]) -> dict[str, dict[str, Contender]]:
    """Each template's app, built once, with one contender per size holding its seeded cookie."""
    out: dict[str, dict[str, Contender]] = {}
    for template in templates:
        if not template.unavailable:
            try:
                assert template.build is not None
                template.app = template.build()
            except Exception as exc:
                template.unavailable = f"failed to set up: {type(exc).__name__}: {exc}"
        out[template.key] = {}
        for size in sizes:
            sized = replace(template, key=f"{template.key}@{size}")
            if not sized.unavailable:
                seed(sized, size)
            if sized.unavailable:
                log(f"  {sized.key}: not available: {sized.unavailable}")
            out[template.key][size] = sized
    return out


# -- results ----------------------------------------------------------------------------


def _ratio(x: float | None, y: float | None) -> float | None:
    return x / y if x is not None and y is not None and y > 0 else None


def view_result(s: Series, floor: Series) -> dict[str, Any]:
    st = s.stats()
    fl = floor.stats()
    return st | {"added_us": st["min_us"] - fl["min_us"], "added_median_us": st["median_us"] - fl["median_us"]}


def build_results(
    templates: list[Contender],
    sized: dict[str, dict[str, Contender]],
    series: dict[str, Series],
    counts: dict[str, Any],
    sizes: list[str],
) -> dict[str, Any]:
    """Per contender and size: each view's batches and added cost; satchel's against its peers."""
    out: dict[str, Any] = {}
    for t in templates:
        entry: dict[str, Any] = {"label": t.label, "library": t.library, "store": t.store, "sizes": {}}
        for size in sizes:
            c = sized[t.key][size]
            cell: dict[str, Any] = {"unavailable": c.unavailable}
            if not c.unavailable:
                for view in VIEWS:
                    cell[view] = view_result(series[f"{c.key}/{view}"], series[f"floor/{view}"])
                if c.key in counts:
                    cell["counts"] = counts[c.key]
            entry["sizes"][size] = cell
        out[t.key] = entry
    for t in templates:
        if t.library != "satchel":
            continue
        for size in sizes:
            cell = out[t.key]["sizes"][size]
            if cell["unavailable"]:
                continue
            for view in VIEWS:
                peers: dict[str, Any] = {}
                for p in templates:
                    other = out[p.key]["sizes"][size]
                    if p.store != t.store or p is t or other["unavailable"]:
                        continue
                    mine, theirs = cell[view], other[view]
                    peers[p.key] = {
                        "total": paired_ratio(series[f"{t.key}@{size}/{view}"], series[f"{p.key}@{size}/{view}"]),
                        "added_min": _ratio(mine["added_us"], theirs["added_us"]),
                        "added_median": _ratio(mine["added_median_us"], theirs["added_median_us"]),
                        "at_most": mine["added_median_us"] <= theirs["added_median_us"],
                    }
                cell[view]["peers"] = peers
    return out


def growth(results: dict[str, Any]) -> dict[str, Any]:
    """Added cost at K = 1000 over added cost at K = 10, per contender and view."""
    out: dict[str, Any] = {}
    for key, entry in results.items():
        small, large = entry["sizes"].get("10"), entry["sizes"].get("1000")
        if not small or not large or small["unavailable"] or large["unavailable"]:
            continue
        out[key] = {
            view: {
                "min": _ratio(large[view]["added_us"], small[view]["added_us"]),
                "median": _ratio(large[view]["added_median_us"], small[view]["added_median_us"]),
            }
            for view in VIEWS
        }
    return out


def round_trips(count: dict[str, Any]) -> float | None:
    """Round trips per request by the server's counters, else calls of the store (None: no store).

    Redis counts read events, and a command whose bytes reach the server in several
    pieces (a record of some tens of KB) takes several: there the commands the client
    sent (those a script ran left out) are the round trips when fewer."""
    calls = count.get("store_calls")
    if "round_trips" not in count:
        return float(sum(calls.values())) if calls is not None else None
    trips = float(count["round_trips"])
    if "server_us" in count:  # Redis
        commands = count.get("commands") or {}
        scripted = "evalsha" in commands or "eval" in commands
        sent = sum(v for k, v in commands.items() if not (scripted and k in servers.SCRIPT_INNER))
        trips = min(trips, sent)
    return trips


# -- tables -----------------------------------------------------------------------------


def fmt(value: float | None, digits: int = 1, suffix: str = "") -> str:
    return "-" if value is None else f"{value:.{digits}f}{suffix}"


def _header(first: list[str], sizes: list[str]) -> list[str]:
    titles = [*first, *(SIZE_TITLES[s] for s in sizes)]
    return ["| " + " | ".join(titles) + " |", "|" + " --- |" * len(first) + " ---: |" * len(sizes)]


def _missing(cell: dict[str, Any]) -> str:
    return TOO_BIG if cell["unavailable"].startswith(TOO_BIG) else "n/a"


def tables(results: dict[str, Any], sizes: list[str], info: dict[str, Any]) -> list[str]:
    tree = info["satchel"]
    lines = [
        "### Session size: µs added per request over the no-session floor",
        "",
        f"satchel {tree['version']} at {(tree['commit'] or 'no git commit')[:10]}"
        + (f" (+{len(tree['changes_not_committed'])} files changed)" if tree["changes_not_committed"] else "")
        + f", {info['rounds']} interleaved rounds"
        + (f", {info['label']}" if info["label"] else "")
        + ". Cells: change / read, the fastest batch (min of N) less the floor's; medians in the JSON.",
        "",
        *_header(["store", "contender"], sizes),
    ]
    missing = []
    for entry in results.values():
        cells = []
        for size in sizes:
            cell = entry["sizes"][size]
            if cell["unavailable"]:
                cells.append(_missing(cell))
                if not cell["unavailable"].startswith(TOO_BIG):
                    missing.append(f"- {entry['label']}, {SIZE_TITLES[size]}: {cell['unavailable']}")
            else:
                cells.append(f"{cell['incr']['added_us']:.1f} / {cell['read']['added_us']:.1f}")
        lines.append(f"| {entry['store']} | {entry['label']} | " + " | ".join(cells) + " |")
    lines += ["", *missing] if missing else []

    lines += [
        "",
        "### satchel's added cost at most every peer's on its store (change / read)",
        "",
        "Judged on the median batches; in brackets satchel's added cost over its cheapest peer's "
        "(by medians: under 1 is better).",
        "",
        *_header(["store"], sizes),
    ]
    for entry in results.values():
        if entry["library"] != "satchel":
            continue
        cells = []
        for size in sizes:
            cell = entry["sizes"][size]
            if cell["unavailable"]:
                cells.append(_missing(cell))
                continue
            if not any(cell[view]["peers"] for view in VIEWS):
                cells.append("no peer at this size")
                continue
            parts = []
            for view in VIEWS:
                peers = cell[view]["peers"]
                worst = max((p["added_median"] for p in peers.values() if p["added_median"] is not None), default=None)
                verdict = "yes" if all(p["at_most"] for p in peers.values()) else "no"
                parts.append(f"{verdict} ({fmt(worst, 2)})")
            cells.append(" / ".join(parts))
        lines.append(f"| {entry['store']} | " + " | ".join(cells) + " |")
    return lines


def growth_lines(results: dict[str, Any], grown: dict[str, Any]) -> list[str]:
    lines = ["", "### Growth: added cost at K = 1000 over added cost at K = 10", ""]
    if not grown:
        return [*lines, "Needs K = 10 and K = 1000 measured."]
    lines += [
        "By the fastest batches, by the medians in brackets.",
        "",
        "| store | contender | change | read |",
        "| --- | --- | ---: | ---: |",
    ]
    for key, views in grown.items():
        entry = results[key]
        cells = [f"{fmt(views[v]['min'], 1, 'x')} ({fmt(views[v]['median'], 1, 'x')})" for v in VIEWS]
        lines.append(f"| {entry['store']} | {entry['label']} | " + " | ".join(cells) + " |")
    for key, limits in GROWTH_TARGETS.items():
        if key not in grown:
            continue
        lines.append("")
        for view, limit in limits.items():
            g = grown[key][view]
            name = f"{results[key]['label']}, {VIEW_NAMES[view]}: growth at most {limit:g}x"
            verdict = "n/a " if g["median"] is None else ("PASS" if g["median"] <= limit else "FAIL")
            lines.append(
                f"- [{verdict}] {name}: {fmt(g['median'], 2)}x by medians (fastest batches {fmt(g['min'], 2)}x)"
            )
    return lines


def round_trip_lines(results: dict[str, Any], sizes: list[str]) -> list[str]:
    lines = [
        "",
        "### satchel's store round trips per request (change / read)",
        "",
        "Server counters for SQL, Redis and memcached (Redis: its read events, or the commands sent "
        "outside scripts when fewer); calls of the store for memory and file; cookie sessions have "
        "no store. Expected: 2 / 1 at every size.",
        "",
        *_header(["store"], sizes),
    ]
    unexpected = []
    for entry in results.values():
        if entry["library"] != "satchel":
            continue
        cells = []
        for size in sizes:
            cell = entry["sizes"][size]
            if cell["unavailable"]:
                cells.append(_missing(cell))
                continue
            trips = [round_trips(cell["counts"][view]) for view in VIEWS]
            if trips == [None, None]:
                cells.append("no store")
                continue
            cells.append(" / ".join(fmt(t, 2).rstrip("0").rstrip(".") for t in trips))
            if trips != [2, 1]:
                unexpected.append(f"{entry['store']} at {SIZE_TITLES[size]}")
        lines.append(f"| {entry['store']} | " + " | ".join(cells) + " |")
    lines += ["", "All as expected." if not unexpected else "Not as expected: " + ", ".join(unexpected) + "."]
    return lines


# -- chart ------------------------------------------------------------------------------


def render_chart(result: dict[str, Any], path: Path) -> None:
    """Added µs against K, a panel per store: a line per contender, change solid, read dashed;
    the 100 KB case is a separate point on the right."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator

    results, sizes = result["results"], result["info"]["sizes"]
    stores = [s for s in STORES if any(e["store"] == s for e in results.values())]
    x_of = {"10": 10, "100": 100, "1000": 1000, "100kb": 10000}
    cols = min(3, len(stores))
    rows = (len(stores) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 4.2 * rows), squeeze=False)
    for ax, store in zip(axes.flat, stores, strict=False):
        for entry in results.values():
            if entry["store"] != store:
                continue
            color = COLORS.get(entry["library"], "#999999")
            for view, style in (("incr", "-"), ("read", "--")):
                points = [
                    (x_of[s], entry["sizes"][s][view]["added_us"])
                    for s in sizes
                    if not entry["sizes"][s]["unavailable"] and entry["sizes"][s][view]["added_us"] > 0
                ]
                line = [p for p in points if p[0] <= 1000]
                big = [p for p in points if p[0] > 1000]
                marker = {"marker": "o", "color": color, "fillstyle": "full" if view == "incr" else "none"}
                label = f"{entry['label']}, {VIEW_NAMES[view]}"
                if line:
                    ax.plot(*zip(*line, strict=True), style, label=label, **marker)
                if big:
                    ax.plot(*zip(*big, strict=True), "", label=None if line else label, **marker)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ticks = [x_of[s] for s in sizes]
        ax.set_xticks(ticks)
        ax.set_xticklabels([SIZE_TITLES[s].replace("K = ", "") for s in sizes])
        ax.minorticks_off()
        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        if "100kb" in sizes:
            ax.axvline(3000, color="#cccccc", linestyle=":")
        ax.set_xlabel("keys in the session (K); 100 KB: K = 10 plus one 100 KB value")
        ax.set_ylabel("µs added over the floor (log)")
        ax.set_title(store, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(stores) :]:
        ax.set_visible(False)
    info = result["info"]
    fig.suptitle(
        f"Session size: satchel {info['satchel']['version']} vs peers, change (solid, filled) and read "
        "(dashed, hollow); "
        f"Python {info['machine']['python']}, {info['machine']['cores']} cores, "
        f"load {info['machine']['load_average'][0]:.1f} ({info['started']}); lower is better",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


# -- main -------------------------------------------------------------------------------


def satchel_tree() -> dict[str, Any]:
    """The satchel imported: its file, version and the git state of its tree (read-only git calls)."""
    import satchel

    package = Path(satchel.__file__).resolve().parent

    def git(*args: str) -> str:
        try:
            run = subprocess.run(["git", "-C", str(package), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return ""
        return run.stdout.rstrip() if run.returncode == 0 else ""

    changed = [line[3:] for line in git("status", "--porcelain", "--", ".").splitlines()]
    return {
        "file": satchel.__file__,
        "version": getattr(satchel, "__version__", "?"),
        "tree": git("rev-parse", "--show-toplevel") or None,
        "commit": git("rev-parse", "HEAD") or None,
        "changes_not_committed": changed,
    }


def _choices(text: str | None, allowed: tuple[str, ...], what: str) -> list[str]:
    if text is None:
        return list(allowed)
    chosen = [w.strip().lower() for w in text.split(",") if w.strip()]
    wrong = [w for w in chosen if w not in allowed]
    if wrong:
        raise SystemExit(f"unknown {what}: {', '.join(wrong)} (choose from {', '.join(allowed)})")
    return [a for a in allowed if a in chosen]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", help=f"comma-separated, of {','.join(SIZES)} (default all)")
    parser.add_argument("--stores", help=f"comma-separated, of {','.join(STORES)} (default all available)")
    parser.add_argument("--quick", action="store_true", help="fewer, shorter rounds (a smoke test)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 200, --quick 20)")
    parser.add_argument("--label", default="", help="a note stored in the JSON and printed with the tables")
    parser.add_argument("--redis-url", help="use this Redis instead of starting a private one")
    parser.add_argument("--memcached", help="use this memcached (host:port) instead of starting a private one")
    parser.add_argument("--cpu", default="last",
                        help="run on this CPU with the servers it starts: a number, 'last' (default) "
                        "or 'all' (not pinned); see servers.pin")
    parser.add_argument("--out", default=str(HERE / "results" / "sizes.json"), help="the JSON results")
    parser.add_argument("--chart", default=str(ROOT / "docs" / "benchmarks-sizes.png"))
    parser.add_argument("--no-chart", action="store_true")
    args = parser.parse_args(argv)
    sizes = _choices(args.sizes, SIZES, "sizes")
    stores = _choices(args.stores, STORES, "stores")
    rounds = args.rounds or (20 if args.quick else 200)
    batch_s = (5 if args.quick else 8) / 1000
    started = time.monotonic()

    cpu = servers.pin(args.cpu)
    srv = servers.start(args.redis_url, args.memcached)
    for note in srv.notes:
        log(f"note: {note}")
    tmp = tempfile.mkdtemp(prefix="satchel-sizes-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    try:
        return _run(args, srv, tmp, sizes, stores, rounds, batch_s, started, cpu)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        servers.stop()


def _run(
    args: argparse.Namespace,
    srv: servers.Servers,
    tmp: str,
    sizes: list[str],
    stores: list[str],
    rounds: int,
    batch_s: float,
    started: float,
    cpu: int | None,
) -> int:
    info: dict[str, Any] = {
        "label": args.label,
        "satchel": satchel_tree(),
        "sizes": sizes,
        "stores": stores,
        "machine": machine(),
        "versions": versions(),
        "servers": server_versions(srv),
        "private_servers": {"redis": srv.redis_private, "memcached": srv.memcached_private},
        "server_notes": srv.notes,
        "cpu": cpu,
        "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "rounds": rounds,
        "batch_ms": batch_s * 1000,
        "quick": args.quick,
    }
    tree = info["satchel"]
    log(f"satchel {tree['version']} from {tree['file']} at {tree['commit']} (+{len(tree['changes_not_committed'])})")
    templates = [t for t in make_templates(srv.redis_url, srv.memcached, tmp) if t.store in stores]
    log("setting up contenders ...")
    sized = set_up(templates, sizes)
    floor = Contender("floor", "none", "-", "no session (floor)", app=build_app(None, views=(floor_change, floor_read)))
    every = [c for by_size in sized.values() for c in by_size.values() if not c.unavailable]

    counters: dict[str, Any] = {}
    if srv.redis_url and "redis" in stores:
        counters["redis"] = servers.RedisCounter(srv.redis_url)
    if srv.memcached_addr and "memcached" in stores:
        counters["memcached"] = servers.MemcachedCounter(srv.memcached_addr)
    if "sql" in stores:
        counters["sql"] = servers.SQLCounter()
    log("counting satchel's round trips ...")
    counts = {c.key: count_requests(c, counters) for c in every if c.library == "satchel"}
    if "sql" in counters:
        counters["sql"].close()  # counted: the timed requests run without its listeners

    series = {s.name: s for c in [floor, *every] for s in contender_series(c)}
    log(f"calibrating {len(series)} series ...")
    for s in series.values():
        calibrate(s, batch_s)
    log(f"timing: {rounds} rounds of {len(series)} interleaved batches of ~{batch_s * 1000:.0f} ms ...")
    run_rounds(list(series.values()), rounds)

    results = build_results(templates, sized, series, counts, sizes)
    grown = growth(results)
    info["finished_load_average"] = os.getloadavg()
    info["elapsed_s"] = round(time.monotonic() - started, 1)
    lines = tables(results, sizes, info) + growth_lines(results, grown) + round_trip_lines(results, sizes)
    lines += [
        "",
        f"load average at start {info['machine']['load_average'][0]:.2f}, at end "
        f"{info['finished_load_average'][0]:.2f}; {info['elapsed_s']} s",
    ]
    print("\n".join(lines))

    result = {
        "info": info,
        "results": results,
        "growth": grown,
        "floor": {view: series[f"floor/{view}"].stats() for view in VIEWS},
        "series": {k: s.stats() | {"all_us": s.batches} for k, s in series.items()},
        "table": lines,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, default=str))
    log(f"wrote {out}")
    if not args.no_chart:
        try:
            render_chart(result, Path(args.chart))
            log(f"wrote {args.chart}")
        except ImportError as exc:
            log(f"no chart: {exc} (pip install -r bench/requirements.txt)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
