"""The pod rehearsal: a rendered pod run on this machine as a kubelet and a container runtime
would run it, without a cluster (docs/deploy.md#rehearsal).

    python -m testkit.pods k8s/overlays/sim            # start, probe until Ready, report, stop
    python -m testkit.pods k8s/base --restart          # ... then restart its containers (warm)

What is real: the package installed non-editable (a wheel, as the Dockerfile builds it) into a
prefix that the pod's user cannot write; each container's own command, args and env (with
`$(VAR)` expansion and the downward API's pod name, namespace and labels); the pod's uid, gid and
fsGroup; one PID namespace (shareProcessNamespace) and one network namespace for the pod; for
each container a root filesystem of its own, read-only where the manifest says
readOnlyRootFilesystem, with the pod's volumes mounted at their paths (emptyDirs, the venue's
ConfigMap, the StatefulSet's volumeClaimTemplates as folders that outlive the pod); and the
kubelet's probes (httpGet, tcpSocket from inside the pod's network, exec inside the container)
with their periods, thresholds and the startup budget.

What stands in: the image is this machine's /usr and /etc with the package's prefix and the
test venv's dependencies (the runtime image hides Icarus and cocotb, which only tickbook-sim
has); no cgroups, so no cpu or memory limits and no cpusets; no image pulls; a container that
exits is not restarted with back-off but reported (ContainerExited, with its last output).
Needs root (namespaces, mounts): tests skip elsewhere.
"""

from __future__ import annotations

import argparse
import ctypes
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from testkit.gatewaykeys import write_keys

REPO = Path(__file__).resolve().parents[1]
POD_INIT = Path(__file__).resolve().parent / "pod_init.py"
CLONE_NEWNET = 0x40000000
# What the Dockerfile's build stage copies, and its runtime stage's USER, WORKDIR and ENV.
IMAGE_SOURCES = ("pyproject.toml", "README.md", "tickbook", "engine", "offload", "hdl")
IMAGE_USER = 10001
IMAGE_WORKDIR = "/var/lib/tickbook"
IMAGE_ENV = {"PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1", "NUMBA_CACHE_DIR": "/var/cache/tickbook/numba",
             "HOME": "/"}
# what only the tickbook-sim image has: programs on the PATH, and packages
SIM_TOOLS, SIM_PACKAGES = ("iverilog", "vvp"), ("cocotb", "cocotb_tools")
MEMORY_ROOT = Path("/dev/shm") / f"tickbook-rehearsal-{os.getpid()}"  # this process's pods' tmpfs emptyDirs


class RehearsalError(RuntimeError):
    """The pod cannot be rehearsed as written (a volume kind or probe we do not model...)."""


class ContainerExited(RuntimeError):
    """A container ended: in a cluster it would crash-loop. Carries its status and last output."""

    def __init__(self, name: str, status: int, tail: str):
        self.container, self.status, self.tail = name, status, tail
        super().__init__(f"container {name} exited with status {status}; its last output:\n{tail}")


class NotReady(RuntimeError):
    """The pod did not become Ready within the time given (or a startup budget ran out)."""


def can_rehearse() -> tuple[bool, str]:
    if os.geteuid() != 0:
        return False, "the pod rehearsal needs root (namespaces and mounts)"
    for tool in ("unshare", "nsenter", "ip", "kubectl"):
        if shutil.which(tool) is None:
            return False, f"{tool} not found"
    r = subprocess.run(["unshare", "--net", "--mount", "true"], capture_output=True)
    if r.returncode != 0:
        return False, f"unshare refused: {r.stderr.decode().strip()}"
    return True, ""


def render(kustomization: str | Path) -> list[dict]:
    out = subprocess.run(["kubectl", "kustomize", str(kustomization)], check=True, capture_output=True, text=True)
    return [d for d in yaml.safe_load_all(out.stdout) if d]


# ---- the image


@dataclass
class Image:
    """A read-only install of the package: what a container of the image can see."""

    prefix: Path  # a venv holding the wheel (its bin/ has the `tickbook` script)
    paths: list[str]  # host folders bound read-only into every container
    hidden: list[str]  # host paths a container of this image must not see
    env: dict

    def path_env(self) -> str:
        return f"{self.prefix}/bin:/usr/local/bin:/usr/bin:/bin"


def build_images(dest: Path) -> dict[str, Image]:
    """Build the wheel from a copy of the image's sources and install it non-editable into
    dest/prefix, owned by root and read-only to the pod's user. Returns the two images of the
    Dockerfile, by name: `tickbook` (runtime) and `tickbook-sim` (+ Icarus, cocotb)."""
    dest = Path(dest).resolve()
    src, wheels, prefix = dest / "src", dest / "wheels", dest / "prefix"
    for d in (src, wheels, prefix):
        shutil.rmtree(d, ignore_errors=True)
    src.mkdir(parents=True)
    for name in IMAGE_SOURCES:
        p = REPO / name
        if p.is_dir():
            shutil.copytree(p, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(p, src / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    # no PYTHONPATH: a checkout on the path would pass for the installed package
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(src)], check=True,
                   env=env)
    subprocess.run([sys._base_executable, "-m", "venv", "--without-pip", str(prefix)], check=True, env=env)
    wheel = next(wheels.glob("tickbook-*.whl"))
    subprocess.run([*pip, "--python", str(prefix / "bin" / "python"), "install", "--no-deps", "--no-index",
                    str(wheel)], check=True, env=env)
    if not (prefix / "bin" / "tickbook").exists():
        raise RehearsalError(f"installing {wheel.name} into {prefix} made no `tickbook` command")
    deps = Path(sysconfig.get_paths()["purelib"])  # the test venv's third-party packages
    site = next(prefix.glob("lib/python3*/site-packages"))
    (site / "image-dependencies.pth").write_text(f"{deps}\n")  # a path only: its .pth files are not run
    for p in [prefix, *prefix.rglob("*")]:  # root-owned, not writable by the pod's user
        if not p.is_symlink():
            p.chmod(p.stat().st_mode & ~0o022)
    paths = ["/usr", "/etc", sys.base_prefix, str(Path(sys.prefix)), str(prefix)]
    hide = [shutil.which(t) for t in SIM_TOOLS] + [str(deps / p) for p in SIM_PACKAGES]
    runtime = Image(prefix, paths, [h for h in hide if h and os.path.exists(h)], dict(IMAGE_ENV))
    sim = Image(prefix, paths, [], dict(IMAGE_ENV))
    return {"tickbook": runtime, "tickbook-sim": sim}


def image_for(images: dict[str, Image], ref: str) -> Image:
    name = ref.rsplit("/", 1)[-1].split("@")[0].split(":")[0]
    if name not in images:
        raise RehearsalError(f"image {ref}: no rehearsal image of that name ({', '.join(images)})")
    return images[name]


# ---- probes, from inside the pod's network namespace


_libc = ctypes.CDLL(None, use_errno=True)


def in_netns(pid: int, fn):
    """fn() on a thread that has joined the network namespace of `pid` (setns is per thread)."""
    out: dict = {}

    def run():
        fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
        try:
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns")
            out["value"] = fn()
        except BaseException as e:  # handed to the caller's thread
            out["error"] = e
        finally:
            os.close(fd)

    t = threading.Thread(target=run, name="in-pod-netns")
    t.start()
    t.join()
    if "error" in out:
        raise out["error"]
    return out["value"]


@dataclass
class ProbeState:
    spec: dict
    kind: str  # startup | readiness | liveness
    due: float = 0.0
    successes: int = 0
    failures: int = 0
    last: str = ""


@dataclass
class Container:
    spec: dict
    image: Image
    proc: subprocess.Popen | None = None
    init: dict = field(default_factory=dict)  # what pod_init.py gets: root, mounts, user, argv, env
    log: Path | None = None
    started_at: float = 0.0
    started: bool = False  # the startup probe passed (or there is none)
    ready: bool = False
    probes: list[ProbeState] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.spec["name"]

    def main_pid(self) -> int:
        """The container's process (nsenter's child, which became it by exec)."""
        for _ in range(200):
            kids = _children(self.proc.pid)
            if kids:
                return kids[0]
            if self.proc.poll() is not None:
                return 0
            time.sleep(0.01)
        return 0

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


# ---- the pod


class Pod:
    """One pod of a rendered workload, run as the kubelet would (see the module's doc)."""

    def __init__(self, docs: list[dict], images: dict[str, Image], root: Path, storage: Path,
                 workload: str = "tickbook", ordinal: int = 0, say=None, secrets: dict | None = None):
        """secrets: Secret name -> a folder holding its keys as files (Secrets are made outside the
        manifests, as `kubectl create secret generic NAME --from-file=FOLDER` would)."""
        self.docs = docs
        self.secrets = secrets or {}
        self.sts = next(d for d in docs if d.get("kind") in ("StatefulSet", "Deployment")
                        and d["metadata"]["name"] == workload)
        self.name = f"{workload}-{ordinal}"
        self.namespace = self.sts["metadata"].get("namespace", "default")
        self.spec = self.sts["spec"]["template"]["spec"]
        self.labels = {**self.sts["spec"]["template"]["metadata"].get("labels", {}),
                       "apps.kubernetes.io/pod-index": str(ordinal), "statefulset.kubernetes.io/pod-name": self.name}
        self.root = Path(root).resolve() / self.name
        shutil.rmtree(self.root, ignore_errors=True)  # a new pod: new emptyDirs and logs
        self.memory = MEMORY_ROOT / self.name  # emptyDirs of medium Memory, on tmpfs
        self.storage = Path(storage).resolve()  # persistent volumes: outlive the pod
        self.say = say or (lambda msg: None)
        self.containers = [Container(c, image_for(images, c["image"])) for c in self.spec["containers"]]
        self.pause = None
        self.ns_pid = 0
        self.volumes = self._volumes()

    # volumes

    def _volumes(self) -> dict[str, tuple[Path, bool]]:
        """name -> (host folder, read-only by nature)."""
        out = {}
        fs_group = self.spec.get("securityContext", {}).get("fsGroup")
        for v in self.spec.get("volumes", []):
            name = v["name"]
            if "emptyDir" in v:
                memory = v["emptyDir"].get("medium", "") == "Memory"
                out[name] = ((self.memory if memory else self.root / "volumes") / name, False)
            elif "configMap" in v:
                path = self.root / "volumes" / name
                cm = next((d for d in self.docs if d.get("kind") == "ConfigMap"
                           and d["metadata"]["name"] == v["configMap"]["name"]), None)
                if cm is None:
                    raise RehearsalError(f"volume {name}: ConfigMap {v['configMap']['name']} is not rendered")
                path.mkdir(parents=True)
                for key, text in cm.get("data", {}).items():
                    (path / key).write_text(text)
                out[name] = (path, True)
            elif "secret" in v:
                src = self.secrets.get(v["secret"]["secretName"])
                if src is None:
                    raise RehearsalError(f"volume {name}: Secret {v['secret']['secretName']} was not given (secrets=)")
                path = self.root / "volumes" / name
                path.mkdir(parents=True)
                mode = v["secret"].get("defaultMode", 0o644)
                for f in Path(src).iterdir():  # the kubelet: files owned by root, group fsGroup, defaultMode
                    if f.is_file():
                        shutil.copyfile(f, path / f.name)
                        os.chown(path / f.name, 0, fs_group if fs_group is not None else 0)
                        (path / f.name).chmod(mode)
                out[name] = (path, True)
            else:
                raise RehearsalError(f"volume {name}: only emptyDir, configMap, secret and volumeClaimTemplates "
                                     "are rehearsed")
        for t in self.sts["spec"].get("volumeClaimTemplates", []):
            out[t["metadata"]["name"]] = (self.storage / f"{t['metadata']['name']}-{self.name}", False)
        for name, (path, read_only) in out.items():
            path.mkdir(parents=True, exist_ok=True)
            if fs_group is not None and not read_only:  # the kubelet: group fsGroup, setgid, group-writable
                os.chown(path, 0, fs_group)
                path.chmod(0o2775)
        return out

    # environment and command line

    def _env(self, c: dict, image: Image) -> dict[str, str]:
        env = {"PATH": image.path_env(), **image.env, "HOSTNAME": self.name}
        for e in c.get("env", []):
            if "value" in e:
                env[e["name"]] = expand(e["value"], env)
            elif "fieldRef" in e.get("valueFrom", {}):
                env[e["name"]] = self._field(e["valueFrom"]["fieldRef"]["fieldPath"])
            else:
                raise RehearsalError(f"env {e['name']}: only value and fieldRef are rehearsed")
        return env

    def _field(self, path: str) -> str:
        m = re.fullmatch(r"metadata\.labels\['(.+)'\]", path)
        if m:
            return self.labels.get(m.group(1), "")
        return {"metadata.name": self.name, "metadata.namespace": self.namespace}[path]

    def _init_spec(self, ct: Container) -> dict:
        c, image = ct.spec, ct.image
        sc = {**self.spec.get("securityContext", {}), **c.get("securityContext", {})}
        env = self._env(c, image)
        argv = [expand(a, env) for a in c.get("command", ["tickbook"]) + c.get("args", [])]
        mounts = []
        for m in c.get("volumeMounts", []):
            path, by_nature = self.volumes[m["name"]]
            mounts.append({"source": str(path), "path": m["mountPath"],
                           "read_only": bool(m.get("readOnly")) or by_nature})
        for h in image.hidden:  # an empty, read-only stand-in over what this image lacks
            stand_in = self.root / "hidden" / ("dir" if os.path.isdir(h) else "file")
            if os.path.isdir(h):
                stand_in.mkdir(parents=True, exist_ok=True)
            else:
                stand_in.parent.mkdir(parents=True, exist_ok=True)
                stand_in.write_bytes(b"")
            mounts.insert(0, {"source": str(stand_in), "path": os.path.realpath(h), "read_only": True})
        uid = sc.get("runAsUser", IMAGE_USER)
        gid = sc.get("runAsGroup", IMAGE_USER)
        groups = sorted({gid, *([sc["fsGroup"]] if "fsGroup" in sc else [])})
        return {"rootfs": str(self.root / "rootfs" / ct.name), "image": image.paths,
                "symlinks": {p: os.readlink(p) for p in ("/bin", "/sbin", "/lib", "/lib64") if os.path.islink(p)},
                "workdir": c.get("workingDir", IMAGE_WORKDIR), "mounts": mounts,
                "read_only_root": bool(sc.get("readOnlyRootFilesystem")), "uid": uid, "gid": gid,
                "groups": groups, "argv": argv, "env": env}

    # lifecycle

    def _start_pause(self) -> None:
        """The pod's sandbox: PID 1 of its PID namespace (reaps orphans) in its network
        namespace, loopback up."""
        script = ("import os, signal, subprocess, sys\n"
                  "subprocess.run(['ip', 'link', 'set', 'lo', 'up'], check=True)\n"
                  "def reap(*_):\n"
                  "    try:\n"
                  "        while os.waitpid(-1, os.WNOHANG)[0] > 0: pass\n"
                  "    except ChildProcessError: pass\n"
                  "signal.signal(signal.SIGCHLD, reap)\n"
                  "signal.signal(signal.SIGTERM, lambda *_: os._exit(0))\n"
                  "print('up', flush=True)\n"
                  "while True: signal.pause()\n")
        self.pause = subprocess.Popen(["unshare", "--pid", "--net", "--fork", "--kill-child",
                                       sys.executable, "-S", "-c", script], stdout=subprocess.PIPE)
        if self.pause.stdout.readline().strip() != b"up":
            raise RehearsalError("the pod sandbox did not start")
        self.ns_pid = _children(self.pause.pid)[0]

    def start(self) -> None:
        """Start (or restart) every container, in order, as the kubelet does (without waiting)."""
        if self.pause is None:
            self._start_pause()
        (self.root / "logs").mkdir(parents=True, exist_ok=True)
        for ct in self.containers:
            ct.init = self._init_spec(ct)
            spec_file = self.root / f"{ct.name}.init.json"
            spec_file.write_text(json.dumps(ct.init))
            ct.log = self.root / "logs" / f"{ct.name}.log"
            with open(ct.log, "ab") as out:
                out.write(f"---- start {time.strftime('%H:%M:%S')}\n".encode())
                out.flush()
                ct.proc = subprocess.Popen(
                    ["nsenter", "--target", str(self.ns_pid), "--pid", "--net", "--",
                     "unshare", "--mount", "--propagation", "private", "--",
                     sys.executable, "-S", str(POD_INIT), str(spec_file)],
                    stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            ct.started_at = time.monotonic()
            ct.probes = [ProbeState(c, kind) for kind, c in
                         (("startup", ct.spec.get("startupProbe")), ("readiness", ct.spec.get("readinessProbe")),
                          ("liveness", ct.spec.get("livenessProbe"))) if c]
            for p in ct.probes:
                p.due = ct.started_at + p.spec.get("initialDelaySeconds", 0)
            ct.started = not any(p.kind == "startup" for p in ct.probes)
            ct.ready = False
            self.say(f"{self.name}/{ct.name}: started: {' '.join(ct.init['argv'])}")

    def wait_ready(self, timeout: float) -> float:
        """Probe as the kubelet does until every container is Ready; returns the seconds since
        the last start. A container that exits raises ContainerExited, a startup or liveness
        probe that fails its threshold, or the timeout, raises NotReady."""
        t0 = min(ct.started_at for ct in self.containers)
        deadline = time.monotonic() + timeout
        while True:
            now = time.monotonic()
            for ct in self.containers:
                status = ct.proc.poll()
                if status is not None:
                    raise ContainerExited(ct.name, status, ct.tail())
                self._probe(ct, now)
            if all(ct.ready for ct in self.containers):
                elapsed = time.monotonic() - t0
                self.say(f"{self.name}: Ready {elapsed:.1f} s after the start")
                return elapsed
            if now > deadline:
                raise NotReady(f"{self.name} not Ready after {timeout:.0f} s: " + self.describe())
            time.sleep(0.05)

    def describe(self) -> str:
        parts = []
        for ct in self.containers:
            state = "running" if ct.proc and ct.proc.poll() is None else f"exited {ct.proc.returncode if ct.proc else '-'}"
            probes = ", ".join(f"{p.kind} {p.last or 'not run'}" for p in ct.probes)
            parts.append(f"{ct.name} {state}, ready={ct.ready}" + (f" ({probes})" if probes else ""))
        return "; ".join(parts)

    def _probe(self, ct: Container, now: float) -> None:
        """Run the probes of `ct` that are due: startup until it passes, then readiness and
        liveness; without a readiness probe a started container is Ready."""
        for p in ct.probes:
            if now < p.due or (p.kind != "startup" and not ct.started) or (p.kind == "startup" and ct.started):
                continue
            period = p.spec.get("periodSeconds", 10)
            p.due = now + period
            ok, p.last = self.run_probe(ct, p.spec)
            p.successes, p.failures = (p.successes + 1, 0) if ok else (0, p.failures + 1)
            threshold = p.spec.get("failureThreshold", 3)
            if p.kind == "startup":
                if ok:
                    ct.started = True
                elif p.failures >= threshold:
                    raise NotReady(f"{self.name}/{ct.name}: startup probe failed {threshold} times "
                                   f"({p.last}); the kubelet would restart it\n{ct.tail()}")
            elif p.kind == "readiness":
                if ok and p.successes >= p.spec.get("successThreshold", 1):
                    ct.ready = True
                elif not ok and p.failures >= threshold:
                    ct.ready = False
            elif not ok and p.failures >= threshold:
                raise NotReady(f"{self.name}/{ct.name}: liveness probe failed {threshold} times ({p.last}); "
                               f"the kubelet would restart it\n{ct.tail()}")
        if not any(p.kind == "readiness" for p in ct.probes):
            ct.ready = ct.started

    def _port(self, ct: Container, port) -> int:
        if isinstance(port, int):
            return port
        for p in ct.spec.get("ports", []):  # a named port of this container
            if p.get("name") == port:
                return p["containerPort"]
        raise RehearsalError(f"{ct.name}: no port named {port}")

    def run_probe(self, ct: Container, spec: dict) -> tuple[bool, str]:
        timeout = spec.get("timeoutSeconds", 1)
        if "httpGet" in spec:
            g = spec["httpGet"]
            port = self._port(ct, g["port"])

            def get():
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
                try:
                    conn.request("GET", g.get("path", "/"))
                    r = conn.getresponse()
                    return r.status, r.read(200).decode(errors="replace").strip()
                finally:
                    conn.close()

            try:
                status, body = in_netns(self.ns_pid, get)
            except OSError as e:
                return False, f"GET :{port}{g.get('path', '/')}: {e}"
            return 200 <= status < 400, f"GET :{port}{g.get('path', '/')}: {status} {body}"
        if "tcpSocket" in spec:
            port = self._port(ct, spec["tcpSocket"]["port"])
            try:
                in_netns(self.ns_pid, lambda: socket.create_connection(("127.0.0.1", port), timeout=timeout).close())
                return True, f"connect :{port}: ok"
            except OSError as e:
                return False, f"connect :{port}: {e}"
        if "exec" in spec:
            init = ct.init
            cmd = ["nsenter", "--target", str(ct.main_pid()), "--mount", "--pid", "--net", "--root", "--wd",
                   "-S", str(init["uid"]), "-G", str(init["gid"]), "--", "env", "-i",
                   *(f"{k}={v}" for k, v in init["env"].items()), *spec["exec"]["command"]]
            try:
                r = subprocess.run(cmd, capture_output=True, timeout=timeout)
            except subprocess.TimeoutExpired:
                return False, f"exec: timed out after {timeout} s"
            return r.returncode == 0, f"exec: exit {r.returncode}"
        raise RehearsalError(f"{ct.name}: a probe of a kind not rehearsed: {sorted(spec)}")

    def in_pod(self, fn):
        """fn() from inside the pod's network (127.0.0.1 is the pod's): a client's view."""
        return in_netns(self.ns_pid, fn)

    def stop(self, grace: float | None = None) -> dict[str, int]:
        """SIGTERM every container, SIGKILL what is left after the grace period (the pod's
        terminationGracePeriodSeconds by default); the sandbox and the volumes stay, as for a
        restart of the containers. Returns each container's exit status."""
        grace = self.spec.get("terminationGracePeriodSeconds", 30) if grace is None else grace
        running = [ct for ct in self.containers if ct.proc is not None and ct.proc.poll() is None]
        for ct in running:
            pid = ct.main_pid()
            if pid:
                _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for ct in running:
            try:
                ct.proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pid = ct.main_pid()
                for p in [pid, *_descendants(pid)] if pid else []:
                    _signal(p, signal.SIGKILL)
                ct.proc.wait()
        return {ct.name: ct.proc.returncode for ct in self.containers if ct.proc is not None}

    def delete(self) -> None:
        """Stop the containers, end the sandbox (every process left in the pod dies with its
        PID 1) and remove the pod's emptyDirs; persistent volumes stay in `storage`."""
        try:
            self.stop()
        finally:
            if self.pause is not None:
                self.pause.kill()
                self.pause.wait()
                self.pause = None
            # the emptyDirs (the root folders are mount points only in their own namespaces)
            shutil.rmtree(self.memory, ignore_errors=True)
            try:
                MEMORY_ROOT.rmdir()  # the last pod of this process
            except OSError:
                pass
            for d in ("volumes", "rootfs", "hidden"):
                shutil.rmtree(self.root / d, ignore_errors=True)


def _signal(pid: int, sig) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _children(pid: int) -> list[int]:
    try:
        return [int(k) for k in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:  # gone
        return []


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        kids = _children(todo.pop())
        out += kids
        todo += kids
    return out


_VAR = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion of command, args and env values: unknown references stay
    as written, $$ is a literal $."""
    return _VAR.sub(lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)), text)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m testkit.pods", description=__doc__.split("\n\n")[0])
    p.add_argument("kustomization", help="a folder with kustomization.yaml (k8s/base, k8s/overlays/sim, ...)")
    p.add_argument("--timeout", type=float, default=300.0, help="s to wait for Ready")
    p.add_argument("--restart", action="store_true", help="then restart the containers and time the warm start")
    p.add_argument("--work", default=str(REPO / "build" / "k8s" / "rehearsal"), help="image, pods and volumes")
    a = p.parse_args(argv)
    ok, why = can_rehearse()
    if not ok:
        print(f"cannot rehearse: {why}", file=sys.stderr)
        return 2
    say = lambda msg: print(f"{time.strftime('%H:%M:%S')} {msg}", flush=True)  # noqa: E731
    work = Path(a.work)
    say("building the image (wheel, read-only prefix)")
    images = build_images(work / "image")
    keys = work / "keys"  # a key set of its own: the Secret the manifests mount
    if not (keys / "gateway.toml").exists():
        write_keys(str(keys), {"rehearsal": {"accounts": [900, 901]}})
    pod = Pod(render(a.kustomization), images, work / "pods", work / "storage", say=say,
              secrets={"tickbook-gateway-keys": keys})
    try:
        pod.start()
        pod.wait_ready(a.timeout)
        if a.restart:
            pod.stop()
            pod.start()
            pod.wait_ready(a.timeout)
        return 0
    except (ContainerExited, NotReady) as e:
        say(str(e))
        return 1
    finally:
        pod.delete()
        say(f"logs in {pod.root / 'logs'}")


if __name__ == "__main__":
    sys.exit(main())
