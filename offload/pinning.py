"""Pin a process to one core of the cpuset it was given; ask for SCHED_FIFO and mlockall.

Everything here reports what it actually got instead of failing: on a laptop, in CI or in a
container without CAP_SYS_NICE / CAP_IPC_LOCK the engine still runs, unpinned or at normal
priority, and says so. In Kubernetes the static CPU manager gives a Guaranteed pod exclusive
cores; they appear here as the process's affinity mask and the cgroup's cpuset.
"""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass, field

MCL_CURRENT, MCL_FUTURE = 1, 2
PR_SET_PDEATHSIG = 1


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def parse_cpulist(text: str) -> list[int]:
    """'0-3,6,8-9' -> [0, 1, 2, 3, 6, 8, 9]"""
    cpus: set[int] = set()
    for part in text.replace("\n", ",").split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            a, b = part.split("-")
            cpus.update(range(int(a), int(b) + 1))
        else:
            cpus.add(int(part))
    return sorted(cpus)


def cgroup_cpuset() -> list[int] | None:
    """The cgroup (v2, else v1) cpuset of this process, or None when not visible."""
    rel = None
    cg = _read("/proc/self/cgroup")
    if cg:
        for line in cg.splitlines():
            parts = line.split(":", 2)
            if len(parts) == 3 and parts[0] == "0":
                rel = parts[2]
    candidates = []
    if rel is not None:
        candidates.append(f"/sys/fs/cgroup{rel}/cpuset.cpus.effective")
    candidates += ["/sys/fs/cgroup/cpuset.cpus.effective", "/sys/fs/cgroup/cpuset/cpuset.effective_cpus",
                   "/sys/fs/cgroup/cpuset/cpuset.cpus"]
    for p in candidates:
        t = _read(p)
        if t:
            return parse_cpulist(t)
    return None


def allowed_cpus() -> list[int]:
    """The cores this process may ask for: the cgroup's cpuset when visible (a child inherits
    its parent's narrowed affinity mask, which must not stop it from taking another core of
    the same cpuset), else the current affinity mask."""
    cg = cgroup_cpuset()
    if cg:
        online = set(range(os.cpu_count() or 1))
        cpus = [c for c in cg if c in online]
        if cpus:
            return cpus
    return sorted(os.sched_getaffinity(0))


def choose_cpu(requested: int | None = None, avoid: tuple[int, ...] = ()) -> int:
    """`requested` if allowed; else the highest allowed core not in `avoid` (core 0 takes
    most interrupts and housekeeping)."""
    cpus = allowed_cpus()
    if requested is not None:
        if requested not in cpus:
            raise ValueError(f"cpu {requested} is not in this process's cpuset {cpus}")
        return requested
    free = [c for c in cpus if c not in avoid] or cpus
    return free[-1]


@dataclass
class PinReport:
    cpu: int | None = None
    affinity: list[int] = field(default_factory=list)
    cpuset: list[int] = field(default_factory=list)
    fifo: bool = False
    fifo_priority: int = 0
    mlocked: bool = False
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        pin = f"cpu {self.cpu}" if self.cpu is not None else "unpinned"
        sched = f"SCHED_FIFO {self.fifo_priority}" if self.fifo else "SCHED_OTHER"
        mem = "mlockall" if self.mlocked else "not locked"
        s = f"{pin} of cpuset {self.cpuset}, {sched}, {mem}"
        if self.notes:
            s += " (" + "; ".join(self.notes) + ")"
        return s


def pin(cpu: int | None = None, fifo: int = 0, mlock: bool = False, avoid: tuple[int, ...] = ()) -> PinReport:
    """Pin the calling thread (and threads it starts later) to one allowed core; with
    fifo > 0 ask for SCHED_FIFO at that priority; with mlock ask for mlockall.

    SCHED_FIFO is opt-in: a SCHED_FIFO busy-poller owns its core (the kernel's RT
    throttling leaves others 5%), which on a shared 2-core box starves everything else.
    """
    rep = PinReport(cpuset=allowed_cpus())
    try:
        c = choose_cpu(cpu, avoid)
        os.sched_setaffinity(0, {c})
        rep.cpu = c
    except (OSError, ValueError) as e:
        rep.notes.append(f"affinity not set: {e}")
    rep.affinity = sorted(os.sched_getaffinity(0))
    if fifo > 0:
        prio, line = set_fifo(fifo)
        if prio:
            rep.fifo, rep.fifo_priority = True, prio
        else:
            rep.notes.append(line)
    if mlock:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.mlockall(MCL_CURRENT | MCL_FUTURE) == 0:
            rep.mlocked = True
        else:
            err = ctypes.get_errno()
            rep.notes.append(f"mlockall refused: {os.strerror(err)} (needs CAP_IPC_LOCK or ulimit -l)")
    return rep


def set_fifo(priority: int) -> tuple[int, str]:
    """SCHED_FIFO for the calling thread alone (Linux schedules threads, not processes).
    Returns (the priority got, 0 when refused; a line for the log)."""
    try:
        prio = min(priority, os.sched_get_priority_max(os.SCHED_FIFO))
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(prio))
        return prio, f"SCHED_FIFO {prio}"
    except (OSError, AttributeError) as e:
        return 0, f"SCHED_FIFO refused: {e}"


def unpin() -> None:
    """Back to every allowed core at SCHED_OTHER (tests and benchmarks clean up with this)."""
    try:
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    except OSError:
        pass
    try:
        os.sched_setaffinity(0, set(allowed_cpus()) or os.sched_getaffinity(0))
    except OSError:
        pass


def die_with_parent(sig: int = 15) -> bool:
    """Linux: deliver `sig` to this process when its parent exits (PR_SET_PDEATHSIG)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0) == 0
    except OSError:
        return False


def machine_load() -> str:
    """What else runs here: load average and the busiest other processes (benchmark output)."""
    la = _read("/proc/loadavg") or "?"
    me = os.getpid()
    busy = []
    try:
        for p in os.listdir("/proc"):
            if not p.isdigit() or int(p) == me:
                continue
            stat = _read(f"/proc/{p}/stat")
            if not stat:
                continue
            name = stat[stat.index("(") + 1 : stat.rindex(")")]
            state = stat[stat.rindex(")") + 2]
            if state == "R":
                busy.append(name)
    except OSError:
        pass
    return f"loadavg {la}; running now: {', '.join(sorted(set(busy))) or 'nothing else'}"
