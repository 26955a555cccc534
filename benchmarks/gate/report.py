"""`make bench-report`: an HTML page with PNG plots (matplotlib) of the last gate, the history
and the peers.

- latency percentile curves of A and B on a log axis, HdrHistogram style (x: 1 / (1 - p), so
  p50, p99, p99.9 ... are evenly spaced), for the matcher per message and the engine round trip;
- the history of each headline figure (every gate, proof and A/A run in the history file);
- bars of tickbook against the peers' order books (build/bench/peers.json, `make bench-peers`).

A part whose data is missing says so on the page and names the command that makes it.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np

from benchmarks.gate import history, stats

CURVE_KEYS = {"matcher_curve": "matcher, one message inside njit", "rtt_curve": "order -> engine -> events round trip"}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _median_curve(runs: list[dict], key: str):
    curves = [np.array(r[key], float) for r in runs if key in r]
    if not curves:
        return None
    stack = np.stack(curves)  # runs x percentiles x (p, value)
    return stack[0, :, 0], np.median(stack[:, :, 1], axis=0), stack[:, :, 1].min(axis=0), stack[:, :, 1].max(axis=0)


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    _plt().close(fig)
    return path


def percentile_curves(last: dict, out: Path) -> list[Path]:
    plt = _plt()
    files = []
    for key, title in CURVE_KEYS.items():
        fig, ax = plt.subplots(figsize=(7, 4))
        drawn = False
        for arm, runs in last.get("runs", {}).items():
            c = _median_curve(runs, key)
            if c is None:
                continue
            p, med, lo, hi = c
            x = 1 / (1 - p / 100)
            ax.plot(x, med, marker="o", label=f"{arm} (median of {len(runs)} runs)")
            ax.fill_between(x, lo, hi, alpha=0.2)
            drawn = True
        if not drawn:
            plt.close(fig)
            continue
        ax.set_xscale("log")
        ax.set_yscale("log")
        ticks = [50, 90, 99, 99.9, 99.99, 99.999]
        ax.set_xticks([1 / (1 - t / 100) for t in ticks], [f"p{t:g}" for t in ticks])
        ax.set_ylabel("latency (ns)")
        ax.set_title(f"{title}: A and B")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        files.append(_save(fig, out / f"curve_{key.removesuffix('_curve')}.png"))
    return files


def history_plots(records: list[dict], out: Path) -> list[Path]:
    plt = _plt()
    files = []
    for fig_def in stats.HEADLINE:
        pts = [(i, r["kind"], r["figures"][fig_def.key]) for i, r in enumerate(records) if fig_def.key in r.get("figures", {})]
        if not pts:
            continue
        fig, ax = plt.subplots(figsize=(7, 3))
        for kind, marker in (("gate", "o"), ("aa", "."), ("proof", "x")):
            sel = [(i, c) for i, k, c in pts if k == kind]
            if sel:
                ax.plot([i for i, _ in sel], [c["b"] for _, c in sel], marker, label=f"B ({kind})")
                ax.plot([i for i, _ in sel], [c["a"] for _, c in sel], marker, alpha=0.4, label=f"A ({kind})")
        ax.set_xlabel("run (history order)")
        ax.set_ylabel(fig_def.unit)
        ax.set_title(fig_def.label)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
        files.append(_save(fig, out / f"history_{fig_def.key}.png"))
    return files


def peer_bars(peers: dict, out: Path) -> Path | None:
    rows = []
    tb = peers.get("tickbook", {})
    if "ns_per_op" in tb:
        rows.append(("tickbook", float(tb["ns_per_op"])))
    for name, d in sorted(peers.get("peers", {}).items()):
        if isinstance(d, dict) and d.get("status", "ok") == "ok" and d.get("ns_per_op") is not None:
            rows.append((name, float(d["ns_per_op"])))
    if not rows:
        return None
    rows.sort(key=lambda r: -r[1])  # the fastest on top
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 0.6 * len(rows) + 1.2))
    names, vals = zip(*rows)
    ax.barh(names, vals, color=["tab:green" if n == "tickbook" else "tab:gray" for n in names])
    ax.set_xscale("log")
    ax.set_xlabel("ns per operation (log)")
    ax.set_title(f"the same {peers.get('ops', 0):,}-operation stream, traded quantity checked")
    for y, v in enumerate(vals):
        ax.text(v, y, f" {v:,.0f}", va="center")
    return _save(fig, out / "peers.png")


def _table(last: dict) -> str:
    rows = ["<tr><th>figure</th><th>A</th><th>B</th><th>B/A</th><th>B worse by [95% CI]</th><th>p</th>"
            "<th>threshold</th><th>verdict</th></tr>"]
    for key, c in last.get("figures", {}).items():
        f = stats.BY_KEY.get(key)
        label = f"{f.label} ({f.unit})" if f else key
        rows.append(f"<tr><td>{html.escape(label)}</td><td>{c['a']:,.1f}</td><td>{c['b']:,.1f}</td><td>{c['ratio']:.3f}</td>"
                    f"<td>{(c['worse'] - 1) * 100:+.1f}% [{(c['lo'] - 1) * 100:+.1f}%, {(c['hi'] - 1) * 100:+.1f}%]</td>"
                    f"<td>{c['p']:.4f}</td><td>{c['threshold']:.0%}</td><td>{c['verdict']}</td></tr>")
    return "<table>" + "".join(rows) + "</table>"


def build(last_path: Path, history_path: Path, peers_path: Path, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.png"):
        old.unlink()
    parts = ["<!doctype html><meta charset=utf-8><title>tickbook benchmarks</title>",
             "<style>body{font-family:sans-serif;max-width:60em;margin:auto} td,th{padding:2px 8px;text-align:right}"
             " td:first-child{text-align:left}</style>", "<h1>tickbook: latency gate and benchmarks</h1>"]
    last = json.loads(last_path.read_text()) if last_path.exists() else None
    if last:
        parts.append(f"<h2>Last gate</h2><p>{html.escape(last['date'])}: A = baseline <code>{last['base'][:12]}</code>, "
                     f"B = change <code>{last['commit'][:12]}</code>, {last['rounds']} interleaved rounds. "
                     f"Machine {html.escape(last['machine']['cpu'])}, {last['machine']['cpus']} cpus; before: "
                     f"{html.escape(last['load_before'])}; after: {html.escape(last['load_after'])}.</p>")
        parts.append(_table(last))
        for f in percentile_curves(last, out):
            parts.append(f'<p><img src="{f.name}" alt="{f.stem}"></p>')
    else:
        parts.append("<h2>Last gate</h2><p>No gate has run here yet: <code>make bench-gate</code>.</p>")
    records = history.read(history_path)
    parts.append(f"<h2>History</h2><p>{len(records)} runs in <code>{html.escape(str(history_path))}</code> "
                 "(gate: the change against its baseline; aa: calibration, a commit against itself; proof: "
                 "a known slowdown injected).</p>")
    for f in history_plots(records, out):
        parts.append(f'<p><img src="{f.name}" alt="{f.stem}"></p>')
    peers = json.loads(peers_path.read_text()) if peers_path.exists() else None
    bars = peer_bars(peers, out) if peers else None
    parts.append("<h2>Peers</h2>")
    if bars:
        parts.append(f"<p>{html.escape(peers.get('machine', ''))}</p><p><img src=\"{bars.name}\" alt=\"peers\"></p>")
    else:
        parts.append("<p>No peers run here yet: <code>make bench-peers</code>.</p>")
    page = out / "index.html"
    page.write_text("\n".join(parts) + "\n")
    return page
