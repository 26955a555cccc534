"""What a replay prints for its user: the summary of events and the final books."""

from __future__ import annotations

import resource
import sys

import numpy as np

from engine.records import (
    EV_ACK,
    EV_CANCELED,
    EV_KILLED,
    EV_REJECT,
    EV_REPLACED,
    EVENT_NAMES,
    R_USER,
    REASON_NAMES,
)


class Summary:
    """Counts by event and reason, accumulated chunk by chunk."""

    def __init__(self):
        self.counts = np.zeros((8, 64), np.int64)
        self.events = 0

    def add(self, events: np.ndarray) -> None:
        self.events += len(events)
        # one bincount over kind * 64 + reason: np.add.at took ~15 ms a million events
        cell = events["kind"].astype(np.int64) * 64 + (events["reason"] & 63)
        self.counts += np.bincount(cell, minlength=self.counts.size).reshape(self.counts.shape)

    def kind(self, k: int) -> int:
        return int(self.counts[k].sum())

    def report(self, messages: int, match_s: float, total_s: float | None, out=None, start_s=None) -> None:
        out = out or sys.stderr  # looked up now: a caller may have redirected sys.stderr
        c = self.counts
        print(f"messages   {messages:,}", file=out)
        print(f"events     {self.events:,}", file=out)
        for k, name in EVENT_NAMES.items():
            n = self.kind(k)
            if not n:
                continue
            reasons = [f"{REASON_NAMES[r]} {int(c[k, r]):,}" for r in range(64) if c[k, r] and r]
            print(f"  {name:<9}{n:>12,}" + (f"   ({', '.join(reasons)})" if reasons else ""), file=out)
        # Every message ends in exactly one of these: nothing is dropped silently.
        answered = self.kind(EV_ACK) + self.kind(EV_REJECT) + self.kind(EV_REPLACED) + self.kind(EV_KILLED)
        answered += int(c[EV_CANCELED, R_USER])
        status = "every message answered" if answered == messages else f"MISMATCH: {answered:,} answered"
        print(f"accounting {status} (ACK + REJECT + REPLACED + CANCELED USER + KILLED = {answered:,})", file=out)
        if messages and match_s > 0:
            print(f"matcher    {match_s * 1e9 / messages:,.1f} ns/message, {messages / match_s:,.0f} messages/s", file=out)
        if messages and total_s:
            print(f"end to end {messages / total_s:,.0f} messages/s ({total_s:.3f} s parse + match + write)", file=out)
        if start_s is not None:
            print(f"start      {start_s:.2f} s (compiled code loaded or compiled, before the timings above)", file=out)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak RSS   {peak:,.0f} MiB", file=out)


def print_books(v, levels: int, out) -> None:
    for s in v.config.symbols:
        d = v.depth(s.name, levels)
        print(f"{s.name}  (ref {s.tick * int(v.state.sym_ref[v.config.symbol_index[s.name]])})", file=out)
        print(f"  {'bid orders':>10} {'bid qty':>10} {'bid':>12} | {'ask':<12} {'ask qty':<10} {'ask orders':<10}", file=out)
        fmt = f"{{:.{s.decimals}f}}"
        for i in range(max(len(d["bids"]), len(d["asks"]))):
            b = d["bids"][i] if i < len(d["bids"]) else None
            a = d["asks"][i] if i < len(d["asks"]) else None
            left = f"{b[2]:>10} {b[1]:>10} {fmt.format(b[0]):>12}" if b else " " * 34
            right = f"{fmt.format(a[0]):<12} {a[1]:<10} {a[2]:<10}" if a else ""
            print(f"  {left} | {right}".rstrip(), file=out)
