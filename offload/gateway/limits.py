"""Per-key limits that keep one client from slowing another (docs/security.md#limits): records in
flight (sent into the engine's ring and not yet processed) and records a second (a token bucket
refilled continuously, one second's worth deep). A message over either limit is refused whole
with an ERR; it never waits in the gateway, so a flood costs the gateway one refusal a message
and the other clients' messages are read in turn (the ROUTER queues fairly between connections)."""

from __future__ import annotations

import collections


class Limits:
    def __init__(self):
        self.in_flight: dict[str, int] = collections.defaultdict(int)
        self.bucket: dict[str, list] = {}  # name -> [tokens, ns of the last refill]
        self.ends: collections.deque = collections.deque()  # (ring position after the message, name, n)

    def refusal(self, who, n: int, now_ns: int) -> tuple[str, str] | None:
        """(code, reason) when key `who` may not send n records now; otherwise the records are
        counted as in flight and against the rate."""
        if n > who.max_in_flight:
            return "too_large", (f"{n} records in one message: key {who.name} may have at most "
                                 f"{who.max_in_flight} in flight")
        have = self.in_flight[who.name]
        if have + n > who.max_in_flight:
            return "in_flight", (f"key {who.name} has {have} records in flight and may have at most "
                                 f"{who.max_in_flight}: message refused, send it again when replies arrive")
        if who.max_rate:
            b = self.bucket.get(who.name)
            if b is None:
                b = self.bucket[who.name] = [float(who.max_rate), now_ns]
            b[0] = min(float(who.max_rate), b[0] + (now_ns - b[1]) * who.max_rate / 1e9)
            b[1] = now_ns
            if n > b[0]:
                if n > who.max_rate:
                    return "too_large", (f"{n} records in one message: key {who.name} may send at most "
                                         f"{who.max_rate} a second")
                return "rate_limit", (f"key {who.name} is over its rate of {who.max_rate} records a second: "
                                      "message refused, send it again later")
            b[0] -= n
        return None

    def sent(self, name: str, end: int, n: int) -> None:
        """n records of `name`, the last at ring position end - 1, are in flight."""
        self.in_flight[name] += n
        self.ends.append((end, name, n))

    def processed(self, t: int) -> None:
        """The engine has processed every record before ring position t."""
        ends = self.ends
        while ends and ends[0][0] <= t:
            _, name, n = ends.popleft()
            self.in_flight[name] -= n

    def taken_back(self, pos: int) -> None:
        """Records from ring position pos on were refused after all (a failed journal write)."""
        ends = self.ends
        while ends and ends[-1][0] > pos:
            end, name, n = ends.pop()
            kept = max(0, n - (end - pos))
            self.in_flight[name] -= n - kept
            if kept:
                ends.append((pos, name, kept))
                break
