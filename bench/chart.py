"""docs/benchmarks.png from a result of bench/run.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

COLORS = {"satchel": "#2b7bb9", "beaker": "#d9822b", "pyramid_session_redis": "#8e5ea2", "pyramid": "#6a9f3c",
          "raw": "#888888", "none": "#444444"}
ORDER = ["memory", "file", "sql", "redis", "memcached", "cookie", "cookie-signed"]


def render(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in result["rows"] if "us" in r and r["library"] not in ("none", "rawloop", "rawwork")]
    http = result.get("http") or {}
    panels = 3 if http.get("contenders") else 2
    fig, axes = plt.subplots(1, panels, figsize=(6.2 * panels, 8.5), squeeze=False)
    for ax, view, title in ((axes[0][0], "incr", "changing request (increment a counter)"),
                            (axes[0][1], "read", "read-only request")):
        chosen = [r for r in rows if r["view"] == view]
        chosen.sort(key=lambda r: (ORDER.index(r["store"]) if r["store"] in ORDER else 99,
                                   r["library"] != "satchel", r["library"] == "raw", r["key"]))
        labels = [r["label"] for r in chosen]
        values = [r["added_us"] for r in chosen]
        colors = [COLORS.get(r["library"], "#999999") for r in chosen]
        y = list(range(len(chosen)))[::-1]
        ax.barh(y, values, color=colors, height=0.7)
        ax.set_yticks(y)
        ax.set_yticklabels(labels, fontsize=8)
        for yy, v, r in zip(y, values, chosen, strict=True):
            rt = (r.get("counts") or {}).get("round_trips")
            note = f"{v:.0f}" + (f"  ({rt:g} RT)" if rt is not None else "")
            ax.text(v, yy, " " + note, va="center", fontsize=7)
        ax.set_xlabel("µs per request added over the no-session floor")
        ax.set_title(title, fontsize=10)
        ax.set_xlim(0, max(values) * 1.25 if values else 1)
        ax.grid(axis="x", alpha=0.3)
    if panels == 3:
        ax = axes[0][2]
        labels, values, colors = [], [], []
        for key, entry in http["contenders"].items():
            for view in ("incr", "read"):
                if isinstance(entry.get(view), dict):
                    labels.append(f"{entry['label']} ({view})")
                    values.append(entry[view]["rps"])
                    lib = key.split("-", 1)[0]
                    colors.append(COLORS.get({"psr": "pyramid_session_redis"}.get(lib, lib), "#999999"))
        y = list(range(len(labels)))[::-1]
        ax.barh(y, values, color=colors, height=0.7)
        ax.set_yticks(y)
        ax.set_yticklabels(labels, fontsize=8)
        for yy, v in zip(y, values, strict=True):
            ax.text(v, yy, f" {v:.0f}", va="center", fontsize=7)
        ax.set_xlabel("requests per second over HTTP (2 waitress processes)")
        ax.set_title("HTTP, keep-alive load generator", fontsize=10)
        ax.set_xlim(0, max(values) * 1.2 if values else 1)
        ax.grid(axis="x", alpha=0.3)
    from matplotlib.patches import Patch

    legend = [Patch(color=COLORS[k], label=label) for k, label in (
        ("satchel", "satchel"), ("beaker", "pyramid_beaker (Beaker 1.14)"),
        ("pyramid_session_redis", "pyramid_session_redis"), ("pyramid", "Pyramid SignedCookieSessionFactory"),
        ("raw", "raw server floor (the client's commands in the floor's view)"))]
    fig.legend(handles=legend, loc="lower center", ncol=5, fontsize=8, frameon=False)
    info = result["info"]
    fig.suptitle(f"satchel vs peers: Pyramid {info['versions'].get('pyramid')}, Python {info['machine']['python']}, "
                 f"{info['machine']['cores']} cores, load {info['machine']['load_average'][0]:.1f} "
                 f"({info['started']}); shorter is better except req/s", fontsize=10)
    fig.tight_layout(rect=(0, 0.03, 1, 0.97))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
