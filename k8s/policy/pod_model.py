"""What the policy rules read off a manifest: quantities, the containers of a pod, the
`tickbook` commands they run, where their paths land (volume mounts), whether they get
exclusive CPUs, and label selectors. No rule lives here (check.py, pod_rules.py)."""

from __future__ import annotations

import posixpath
import re
import shlex
from decimal import Decimal, InvalidOperation

# --------------------------------------------------------------------------- quantities

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1),
            "k": Decimal(10**3), "M": Decimal(10**6), "G": Decimal(10**9), "T": Decimal(10**12),
            "P": Decimal(10**15), "E": Decimal(10**18)}
_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?\d+)?$")


def parse_quantity(value) -> Decimal:
    """A Kubernetes resource quantity ("2", 1.5, "500m", "1Gi", "1e3") as a Decimal."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a quantity")
    if isinstance(value, (int, float)):
        return Decimal(str(value))
    m = _QUANTITY.match(str(value).strip())
    if not m:
        raise ValueError(f"{value!r} is not a quantity")
    try:
        number = Decimal(m.group(1))
    except InvalidOperation as exc:  # pragma: no cover - the regex admits only numbers
        raise ValueError(f"{value!r} is not a quantity") from exc
    suffix = m.group(2) or ""
    if suffix in _BINARY:
        return number * _BINARY[suffix]
    if suffix in _DECIMAL:
        return number * _DECIMAL[suffix]
    return number * (Decimal(10) ** int(suffix[1:]))


def equal_quantities(a, b) -> bool:
    try:
        return parse_quantity(a) == parse_quantity(b)
    except ValueError:
        return False


# --------------------------------------------------------------------------- objects


def namespace_of(doc: dict) -> str:
    """The namespace a namespaced object lands in (kubectl's default when none is set)."""
    return (doc.get("metadata") or {}).get("namespace") or "default"


def template_labels(doc: dict) -> dict:
    return (((doc.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels") or {}


def selects(selector, labels: dict) -> bool:
    """Does a LabelSelector (matchLabels and matchExpressions) select these labels? An empty
    selector selects everything, a missing one (None) nothing."""
    if selector is None:
        return False
    for k, want in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != want:
            return False
    for e in selector.get("matchExpressions") or []:
        key, op, values = e.get("key"), e.get("operator"), e.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


# --------------------------------------------------------------------------- containers


def containers(pod: dict, prefix: str):
    """(field path, container) of every init container and container of a pod spec."""
    for group in ("initContainers", "containers"):
        for c in pod.get(group) or []:
            yield f"{prefix}.{group}[{c.get('name', '?')}]", c


def literal_env(c: dict) -> dict[str, str]:
    """The container's env entries with a literal value ($(VAR) of earlier ones expanded, as
    the kubelet does); entries from valueFrom are left out: their value is not in the manifest."""
    env: dict[str, str] = {}
    for e in c.get("env") or []:
        if isinstance(e, dict) and "value" in e:
            env[e["name"]] = expand(str(e["value"]), env)
    return env


def expand(text: str, env: dict) -> str:
    """$(VAR) as the kubelet expands it in command/args, ${VAR} and $VAR as the shell does."""
    text = re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)), text)
    text = re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda m: env.get(m.group(1), m.group(0)), text)
    return re.sub(r"\$([A-Za-z_][A-Za-z0-9_]*)", lambda m: env.get(m.group(1), m.group(0)), text)


def tickbook_commands(c: dict) -> list[list[str]]:
    """The `tickbook ...` invocations of a container (argv lists, variables expanded): its
    command + args, or the script of `sh -c SCRIPT`, split at ; && || |."""
    env = {e["name"]: str(e["value"]) for e in c.get("env") or [] if isinstance(e, dict) and "value" in e}
    argv = [str(x) for x in (c.get("command") or []) + (c.get("args") or [])]
    if len(argv) >= 3 and argv[0].rsplit("/", 1)[-1] in ("sh", "bash", "dash") and argv[1] == "-c":
        try:
            lex = shlex.shlex(argv[2], posix=True, punctuation_chars=";&|")
            lex.whitespace_split = True
            tokens = list(lex)
        except ValueError:
            return []
    else:
        tokens = argv
    out, cur = [], []
    for t in tokens + [";"]:
        if t and set(t) <= set(";&|"):
            if cur:
                out.append(cur)
            cur = []
        elif cur or t != "exec":
            cur.append(expand(t, env))
    return [cmd for cmd in out if cmd[0].rsplit("/", 1)[-1] == "tickbook"]


def option(argv: list[str], name: str) -> str | None:
    for i, t in enumerate(argv):
        if t == name and i + 1 < len(argv):
            return argv[i + 1]
        if t.startswith(name + "="):
            return t.split("=", 1)[1]
    return None


def subcommand(argv: list[str]) -> str:
    return argv[1] if len(argv) > 1 else ""


def commands_of(pod: dict, prefix: str, sub: str):
    """(field path, container, argv) of every `tickbook SUB` the pod's containers run."""
    for where, c in containers(pod, prefix):
        for argv in tickbook_commands(c):
            if subcommand(argv) == sub:
                yield where, c, argv


def runs_any(pod: dict, subs) -> bool:
    return any(subcommand(argv) in subs for _, c in containers(pod, "") for argv in tickbook_commands(c))


# --------------------------------------------------------------------------- volumes and paths

# Volume sources the kubelet always mounts read-only, whatever the volumeMount says.
READ_ONLY_SOURCES = ("configMap", "secret", "downwardAPI", "projected")


def volume_source(vol: dict) -> str:
    """A pod volume's source kind: "emptyDir", "configMap", "hostPath"... ("nothing" if none)."""
    return next((k for k in vol if k != "name"), "nothing")


def volume_sources(doc: dict, pod: dict) -> dict[str, str]:
    """Volume name -> its source ("emptyDir", "configMap", ...; "volumeClaimTemplates" for a
    StatefulSet's claims, which replace a pod volume of the same name)."""
    out = {}
    for vol in pod.get("volumes") or []:
        out[vol.get("name")] = volume_source(vol)
    if doc.get("kind") == "StatefulSet":
        for claim in (doc.get("spec") or {}).get("volumeClaimTemplates") or []:
            out[(claim.get("metadata") or {}).get("name")] = "volumeClaimTemplates"
    return out


def absolute(c: dict, path: str) -> str | None:
    """The normalised absolute path, a relative one taken from the container's workingDir;
    None when relative with no workingDir (it depends on the image's WORKDIR)."""
    if not path.startswith("/"):
        wd = str(c.get("workingDir") or "")
        if not wd.startswith("/"):
            return None
        path = posixpath.join(wd, path)
    return posixpath.normpath(path)


def mount_of(c: dict, path: str) -> dict | None:
    """The volumeMount an absolute path lies under (the deepest one), or None: the root
    filesystem of the image."""
    best = None
    for m in c.get("volumeMounts") or []:
        mp = posixpath.normpath(str(m.get("mountPath", "")))
        if (path == mp or path.startswith(mp.rstrip("/") + "/")) and (
                best is None or len(mp) > len(posixpath.normpath(best["mountPath"]))):
            best = m
    return best


def location(c: dict, path: str) -> tuple | None:
    """Where an absolute path is, independent of the container's mount point: (volume name,
    subPath, path inside the mount), or None on the root filesystem."""
    m = mount_of(c, path)
    if m is None:
        return None
    rest = posixpath.relpath(path, posixpath.normpath(m["mountPath"]))
    return m.get("name"), m.get("subPath") or "", "" if rest == "." else rest


def writable_problem(c: dict, path: str, sources: dict[str, str]) -> str | None:
    """Why a container cannot write `path` (absolute), or None if it can."""
    m = mount_of(c, path)
    if m is None:
        return "on the image's root filesystem (no volume is mounted there), which is read-only"
    name = m.get("name")
    if m.get("readOnly"):
        return f"under volumeMount {name!r} ({m.get('mountPath')}), which is readOnly"
    if sources.get(name) in READ_ONLY_SOURCES:
        return f"under volume {name!r} ({m.get('mountPath')}), a {sources[name]}, which is always read-only"
    return None


# --------------------------------------------------------------------------- CPUs


def guaranteed(pod: dict) -> bool:
    """Guaranteed QoS: every container has cpu and memory limits, requests (if set) equal."""
    for _, c in containers(pod, ""):
        res = c.get("resources") or {}
        limits, requests = res.get("limits") or {}, res.get("requests") or {}
        for r in ("cpu", "memory"):
            if r not in limits or (r in requests and not equal_quantities(requests[r], limits[r])):
                return False
    return True


def exclusive_cpus(pod: dict, c: dict) -> bool:
    """Does the static CPU manager give this container cores of its own? An integer cpu
    request equal to its limit, in a Guaranteed pod."""
    if not guaranteed(pod):
        return False
    res = c.get("resources") or {}
    limit = (res.get("limits") or {}).get("cpu")
    try:
        q = parse_quantity((res.get("requests") or {}).get("cpu", limit))
    except ValueError:
        return False
    return q >= 1 and q == q.to_integral_value() and equal_quantities(q, limit)
