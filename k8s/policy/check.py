#!/usr/bin/env python3
"""tickbook deployment policy: checks on rendered manifests that a schema cannot express.

    python k8s/policy/check.py RENDERED.yaml [MORE.yaml ...]

Input: multi-document YAML files, typically `kubectl kustomize k8s/overlays/<name>` output
plus `k8s/kubelet/kubelet-config.yaml`. PriorityClass and RuntimeClass references, and the
PodDisruptionBudgets, NetworkPolicies and Namespaces around a workload, are resolved across all
files given (an object without metadata.namespace is in `default`). Each violation is printed as

    FILE: KIND/NAME: FIELD: RULE: message

Exit status: 0 no violation, 1 violations, 2 unreadable input.

Rules on workloads (Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob):
  guaranteed-qos       every container has cpu and memory limits, requests equal to them
  matcher-whole-cpu    the matcher containers (`engine`, and `bridge`, the card's or the
                       simulator's busy-polling server) ask for a whole number of CPUs
  priority-class       priorityClassName set, defined here, globalDefault false, explicit
                       preemptionPolicy, value >= MIN_PRIORITY
  shm-memory           /dev/shm is an emptyDir with medium Memory and a sizeLimit, and every
                       container of a matcher pod mounts the same volume there
  no-exec-liveness     no exec liveness probe in the pod (a slow probe restarts a healthy matcher)
  exec-probe-exclusive no exec probe (readiness, liveness, startup) on a container with exclusive
                       CPUs (integer cpu request == limit in a Guaranteed pod) or on a matcher:
                       every period it forks a process onto the cores given to that container
  update-strategy      Deployments use Recreate (StatefulSets never surge)
  runtime-class        runtimeClassName set and defined here
  shard-count          TICKBOOK_SHARD_COUNT equals spec.replicas of a StatefulSet
  image-pinned         images carry a tag or digest other than latest
  device-in-limits     FPGA device-plugin resources are in limits, integer, requests equal
  cli-subcommand       a container running `tickbook X` names a subcommand the CLI has
  ring-single-consumer no two containers serve (consume ring 0 of) the same segment: the rings
                       are single-producer single-consumer (`tickbook engine|bridge --rings S`)
  ring-owner           every segment a server attaches to is created by a gateway of the pod
                       (`--rings S`, plus `S-hw` or `--hw-rings` for --offload hw|shadow; S
                       itself not for hw), and every segment a gateway creates has a server
  read-only-root       every container sets securityContext.readOnlyRootFilesystem: true (a
                       container field: the pod's securityContext cannot set it)
  writable-path        what a container is told to write lies under a volumeMount of it that is
                       not readOnly (nor a configMap/secret/downwardAPI/projected volume): the env
                       NUMBA_CACHE_DIR, TICKBOOK_HDL_BUILD, TMPDIR, XDG_CACHE_HOME, HOME (when
                       set) and a gateway's --journal. Every `tickbook` container needs
                       NUMBA_CACHE_DIR (each command imports code cached there, and the image's
                       default lies on its read-only root), a `tickbook bridge` of target sim
                       (the default; card exempt) TICKBOOK_HDL_BUILD; an engine's --journal
                       (which it only reads) must be on a volume of the container, readOnly allowed
  journal-volume       an --offload sw gateway (the default) passes --journal DIR with DIR on a
                       volume of the StatefulSet's volumeClaimTemplates (elsewhere a
                       persistentVolumeClaim volume), not an emptyDir that a restarted pod gets
                       back empty, and the engine of its segment gets --journal on the same folder
                       of the same volume. --offload hw|shadow gateways are exempt, and must NOT
                       pass --journal (unless --attach): the hardware book cannot load a recovered
                       state, so such a gateway refuses to start on a journal with records; a pod
                       of theirs restarts with empty books by design (docs/deploy.md)
  gateway-keys         a `tickbook gateway` passes --keys FILE with FILE on a secret (or projected)
                       volume: CURVE, each client's authority from its key; never --insecure-local,
                       which binds loopback only and trusts every local process (docs/security.md)
  disruption-budget    a StatefulSet/Deployment running `tickbook engine|gateway` is selected by
                       exactly one PodDisruptionBudget of its namespace (selector against the
                       template's labels) that never lets a Ready shard go: maxUnavailable: 0, or
                       minAvailable >= spec.replicas or "100%"
  network-policy       a StatefulSet/Deployment running `tickbook engine|gateway` is selected by
                       NetworkPolicies of its namespace (podSelector) whose policyTypes, as the
                       API server defaults them, together include Ingress and Egress
  pod-security         a Namespace among the inputs that holds workloads is labelled
                       pod-security.kubernetes.io/enforce: restricted; with any Namespace among
                       the inputs, a workload's namespace is one of them; and the pods of a
                       workload whose Namespace is among the inputs pass the restricted profile:
                       runAsNonRoot true and runAsUser not 0 (pod or every container),
                       seccompProfile RuntimeDefault|Localhost (pod or every container),
                       allowPrivilegeEscalation false, capabilities.drop ALL, add only
                       NET_BIND_SERVICE, not privileged, no hostNetwork/hostPID/hostIPC/hostPort,
                       volumes only configMap, csi, downwardAPI, emptyDir, ephemeral,
                       persistentVolumeClaim, projected, secret (no hostPath)
Rules on KubeletConfiguration (kubelet.config.k8s.io/v1beta1):
  kubelet-unknown-field  field names of v1beta1 (misspellings get a suggestion)
  kubelet-value          allowed values (policies, scopes, options, cpuset syntax, quantities)
  kubelet-conflict       options that the kubelet rejects together or that cancel each other
  kubelet-required       what tickbook nodes need (static CPU manager, full-pcpus-only, ...)
"""

from __future__ import annotations

import difflib
import re
import sys
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import yaml

_HERE = str(Path(__file__).resolve().parent)  # pod_model, pod_rules: beside this file, also when
if _HERE not in sys.path:                     # loaded by path (importlib), not run as a script
    sys.path.insert(0, _HERE)

import pod_rules  # noqa: E402
from pod_model import (  # noqa: E402,F401  (parse_quantity, tickbook_commands: also for the tests)
    containers as _containers,
    equal_quantities as _equal_quantities,
    option as _option,
    parse_quantity,
    tickbook_commands,
    volume_source,
)

MATCHER = "engine"
MATCHERS = (MATCHER, "bridge")  # busy-polling servers of a ring segment
# `tickbook` subcommands (tickbook/cli.py build_parser; tests/test_k8s.py keeps the two equal)
CLI_SUBCOMMANDS = frozenset({"replay", "gen", "book", "demo", "lobster", "engine", "gateway", "bridge", "compile", "journal", "keys"})
RING_SERVERS = ("engine", "bridge")
SHM_PATH = "/dev/shm"
MIN_PRIORITY = 100_000_000
SHARD_COUNT_ENV = "TICKBOOK_SHARD_COUNT"
FPGA_RESOURCE = re.compile(r"^(amd\.com/xilinx_|xilinx\.com/fpga|fpga\.intel\.com/)")

WORKLOAD_KINDS = {"Pod", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob"}


@dataclass(frozen=True)
class Violation:
    file: str
    obj: str
    field: str
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.obj}: {self.field}: {self.rule}: {self.message}"


class InputError(Exception):
    """A file that cannot be read or parsed."""


# --------------------------------------------------------------------------- loading


def load_documents(path: str | Path) -> list[dict]:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: not YAML: {exc}") from exc
    for i, d in enumerate(docs):
        if not isinstance(d, dict):
            raise InputError(f"{path}: document {i + 1} is not a mapping")
    return docs


def object_name(doc: dict) -> str:
    meta = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
    name = meta.get("name")
    return f"{doc.get('kind', '?')}/{name}" if name else str(doc.get("kind", "?"))


# --------------------------------------------------------------------------- workloads


def pod_spec_of(doc: dict) -> tuple[str, dict] | None:
    """(field path prefix, pod spec) of a workload, or None."""
    kind = doc.get("kind")
    spec = doc.get("spec") or {}
    if kind == "Pod":
        return "spec", spec
    if kind == "CronJob":
        return ("spec.jobTemplate.spec.template.spec",
                (((spec.get("jobTemplate") or {}).get("spec") or {}).get("template") or {}).get("spec") or {})
    if kind in WORKLOAD_KINDS:
        return "spec.template.spec", (spec.get("template") or {}).get("spec") or {}
    return None


def check_guaranteed(v, pod, prefix):
    for where, c in _containers(pod, prefix):
        res = c.get("resources") or {}
        limits = res.get("limits") or {}
        requests = res.get("requests") or {}
        for r in ("cpu", "memory"):
            if r not in limits:
                v(f"{where}.resources.limits.{r}", "guaranteed-qos",
                  f"no {r} limit: the pod is not Guaranteed (Burstable at best), so the static "
                  "CPU manager gives it no exclusive cores and it is evicted before Guaranteed pods")
                continue
            if r in requests and not _equal_quantities(requests[r], limits[r]):
                v(f"{where}.resources.requests.{r}", "guaranteed-qos",
                  f"request {requests[r]!r} != limit {limits[r]!r}: the pod is Burstable, not Guaranteed")
        for r, lim in limits.items():
            if str(r).startswith("hugepages-") and r in requests and not _equal_quantities(requests[r], lim):
                v(f"{where}.resources.requests.{r}", "guaranteed-qos",
                  f"hugepages request {requests[r]!r} != limit {lim!r}")


def check_matcher_cpu(v, pod, prefix):
    for where, c in _containers(pod, prefix):
        if c.get("name") not in MATCHERS:
            continue
        res = c.get("resources") or {}
        for kind in ("limits", "requests"):
            cpu = (res.get(kind) or {}).get("cpu")
            if cpu is None:
                continue
            try:
                q = parse_quantity(cpu)
            except ValueError as exc:
                v(f"{where}.resources.{kind}.cpu", "matcher-whole-cpu", str(exc))
                continue
            if q != q.to_integral_value() or q < 1:
                v(f"{where}.resources.{kind}.cpu", "matcher-whole-cpu",
                  f"{cpu!r} is not a whole number of CPUs: the static CPU manager only gives "
                  "exclusive cores to integer requests, a fractional matcher shares the pool")


def check_priority(v, pod, prefix, classes):
    name = pod.get("priorityClassName")
    field = f"{prefix}.priorityClassName"
    if not name:
        v(field, "priority-class", "missing: the pod gets priority 0 and any higher-priority pod can "
          "preempt the matcher")
        return
    pc = classes.get(name)
    if pc is None:
        v(field, "priority-class", f"PriorityClass {name!r} is not defined in the checked manifests")
        return
    pc_file, pc_doc = pc
    obj = object_name(pc_doc)
    value = pc_doc.get("value")
    if not isinstance(value, int) or value < MIN_PRIORITY:
        v(field, "priority-class", f"{obj} in {pc_file} has value {value!r} < {MIN_PRIORITY}")
    if pc_doc.get("globalDefault", False):
        v(field, "priority-class", f"{obj} in {pc_file} has globalDefault: true: every pod "
          "without a class would get the matcher's priority")
    if "preemptionPolicy" not in pc_doc:
        v(field, "priority-class", f"{obj} in {pc_file} leaves preemptionPolicy to the default: "
          "state it (PreemptLowerPriority or Never)")


def check_runtime_class(v, pod, prefix, runtime_classes):
    name = pod.get("runtimeClassName")
    if not name:
        v(f"{prefix}.runtimeClassName", "runtime-class", "missing: the pod may run on an untuned node")
    elif name not in runtime_classes:
        v(f"{prefix}.runtimeClassName", "runtime-class",
          f"RuntimeClass {name!r} is not defined in the checked manifests")


def check_shm(v, pod, prefix):
    volumes = {vol.get("name"): (i, vol) for i, vol in enumerate(pod.get("volumes") or [])}
    containers = list(_containers(pod, prefix))
    has_matcher = any(c.get("name") in MATCHERS for _, c in containers)
    shm_volumes = set()
    for where, c in containers:
        mounts = [m for m in c.get("volumeMounts") or [] if str(m.get("mountPath", "")).rstrip("/") == SHM_PATH]
        if not mounts:
            if has_matcher and where.startswith(f"{prefix}.containers["):
                v(f"{where}.volumeMounts", "shm-memory",
                  f"{SHM_PATH} not mounted: the container sees a private 64Mi /dev/shm, not the rings")
            continue
        for m in mounts:
            vname = m.get("name")
            shm_volumes.add(vname)
            if vname not in volumes:
                v(f"{where}.volumeMounts[{vname}]", "shm-memory", f"volume {vname!r} is not declared")
                continue
            _, vol = volumes[vname]
            vfield = f"{prefix}.volumes[{vname}]"
            ed = vol.get("emptyDir")
            if not isinstance(ed, dict):
                other = volume_source(vol)
                v(vfield, "shm-memory", f"{SHM_PATH} is backed by {other}, not an emptyDir with medium Memory")
                continue
            if ed.get("medium") != "Memory":
                v(f"{vfield}.emptyDir.medium", "shm-memory",
                  f"medium {ed.get('medium', '(node disk)')!r}: the rings must be on tmpfs (medium: Memory)")
            if "sizeLimit" not in ed:
                v(f"{vfield}.emptyDir.sizeLimit", "shm-memory",
                  "missing: a memory-backed emptyDir without sizeLimit can grow to the pod's memory limit")
    if has_matcher and len(shm_volumes) > 1:
        v(f"{prefix}.volumes", "shm-memory",
          f"containers mount different volumes at {SHM_PATH} ({sorted(map(str, shm_volumes))}): "
          "the engine and the gateway must share one")


def check_probes(v, pod, prefix):
    for where, c in _containers(pod, prefix):
        live = c.get("livenessProbe") or {}
        if "exec" in live:
            v(f"{where}.livenessProbe.exec", "no-exec-liveness",
              "exec liveness probe on the hot pod: each probe forks a process in the pod, and a "
              "slow probe restarts a healthy matcher; probe over HTTP (httpGet) or not at all")


def check_images(v, pod, prefix):
    for where, c in _containers(pod, prefix):
        image = str(c.get("image", ""))
        if "@" in image:
            continue
        tag = image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else ""
        if not tag or tag == "latest":
            v(f"{where}.image", "image-pinned",
              f"{image!r} has no tag (or :latest): pods of one StatefulSet could run different builds")


def check_devices(v, pod, prefix):
    for where, c in _containers(pod, prefix):
        res = c.get("resources") or {}
        limits, requests = res.get("limits") or {}, res.get("requests") or {}
        for r, q in requests.items():
            if FPGA_RESOURCE.match(str(r)) and r not in limits:
                v(f"{where}.resources.requests.{r}", "device-in-limits",
                  "device-plugin resources must be set in limits (requests may only repeat them)")
        for r, q in limits.items():
            if not FPGA_RESOURCE.match(str(r)):
                continue
            try:
                n = parse_quantity(q)
            except ValueError as exc:
                v(f"{where}.resources.limits.{r}", "device-in-limits", str(exc))
                continue
            if n != n.to_integral_value() or n < 1:
                v(f"{where}.resources.limits.{r}", "device-in-limits", f"{q!r}: devices come in whole units")
            if r in requests and not _equal_quantities(requests[r], q):
                v(f"{where}.resources.requests.{r}", "device-in-limits", "request differs from limit")


def check_rings(v, pod, prefix):
    """Who creates and who serves each ring segment of the pod (docs/deploy.md#the-pod)."""
    servers: dict[str, list[str]] = {}  # segment -> containers serving it (ring 0's consumer)
    owners: dict[str, list[str]] = {}  # segment -> gateways creating it
    for where, c in _containers(pod, prefix):
        for argv in tickbook_commands(c):
            sub = argv[1] if len(argv) > 1 else ""
            if sub not in CLI_SUBCOMMANDS:
                v(f"{where}.args", "cli-subcommand",
                  f"`tickbook {sub}` is not a subcommand of the CLI ({', '.join(sorted(CLI_SUBCOMMANDS))}): "
                  "the container would exit at once")
                continue
            rings = _option(argv, "--rings")
            if rings is None:
                continue
            if sub in RING_SERVERS:
                servers.setdefault(rings, []).append(where)
            elif sub == "gateway" and "--attach" not in argv:
                mode = _option(argv, "--offload") or "sw"
                hw = _option(argv, "--hw-rings") or f"{rings}-hw"
                for seg in ([rings] if mode != "hw" else []) + ([hw] if mode in ("hw", "shadow") else []):
                    owners.setdefault(seg, []).append(where)
    for seg, who in sorted(servers.items()):
        if len(who) > 1:
            v(f"{prefix}.containers", "ring-single-consumer",
              f"segment {seg!r} is served by {len(who)} containers ({', '.join(who)}): its rings are "
              "single-producer single-consumer, a second consumer steals and corrupts records; give "
              "the bridge its own segment (the gateway's --offload hw|shadow creates NAME-hw)")
        if owners and seg not in owners:
            v(f"{who[0]}.args", "ring-owner",
              f"segment {seg!r} is created by no gateway of the pod (they create {sorted(owners)}): "
              "the server waits for it and exits")
    for seg, who in sorted(owners.items()):
        if seg not in servers and servers:
            v(f"{who[0]}.args", "ring-owner",
              f"segment {seg!r} created by the gateway has no server in the pod (engine or bridge "
              f"--rings {seg}): the gateway never becomes ready")


def check_workload(v, doc, prefix, pod, classes, runtime_classes, inputs):
    check_guaranteed(v, pod, prefix)
    check_matcher_cpu(v, pod, prefix)
    check_priority(v, pod, prefix, classes)
    check_runtime_class(v, pod, prefix, runtime_classes)
    check_shm(v, pod, prefix)
    check_probes(v, pod, prefix)
    check_images(v, pod, prefix)
    check_devices(v, pod, prefix)
    check_rings(v, pod, prefix)
    pod_rules.check_pod(v, doc, prefix, pod, inputs, matchers=MATCHERS)
    kind, spec = doc.get("kind"), doc.get("spec") or {}
    if kind == "Deployment":
        strategy = (spec.get("strategy") or {}).get("type", "RollingUpdate")
        if strategy != "Recreate":
            v("spec.strategy.type", "update-strategy",
              f"{strategy}: a rolling update runs two matchers for one shard and needs a second set "
              "of exclusive cores; use Recreate")
    if kind == "StatefulSet":
        replicas = spec.get("replicas", 1)
        for where, c in _containers(pod, prefix):
            for e in c.get("env") or []:
                if e.get("name") == SHARD_COUNT_ENV and "value" in e and str(e["value"]) != str(replicas):
                    v(f"{where}.env[{SHARD_COUNT_ENV}]", "shard-count",
                      f"{e['value']!r} != spec.replicas {replicas}: shards would route symbols to "
                      "pods that do not exist, or leave symbols unowned")


# --------------------------------------------------------------------------- kubelet

KUBELET_API = "kubelet.config.k8s.io/v1beta1"

# Field names of KubeletConfiguration v1beta1 (k8s.io/kubelet/config/v1beta1/types.go).
KUBELET_FIELDS = frozenset("""
apiVersion kind enableServer staticPodPath podLogsDir syncFrequency fileCheckFrequency
httpCheckFrequency staticPodURL staticPodURLHeader address port readOnlyPort tlsCertFile
tlsPrivateKeyFile tlsCipherSuites tlsCurvePreferences tlsMinVersion rotateCertificates
serverTLSBootstrap authentication authorization registryPullQPS registryBurst
imagePullCredentialsVerificationPolicy preloadedImagesVerificationAllowlist eventRecordQPS
eventBurst enableDebuggingHandlers enableContentionProfiling healthzPort healthzBindAddress
oomScoreAdj clusterDomain clusterDNS streamingConnectionIdleTimeout nodeStatusUpdateFrequency
nodeStatusReportFrequency nodeLeaseDurationSeconds imageMinimumGCAge imageMaximumGCAge
imageGCHighThresholdPercent imageGCLowThresholdPercent volumeStatsAggPeriod kubeletCgroups
systemCgroups cgroupRoot cgroupsPerQOS cgroupDriver cpuManagerPolicy singleProcessOOMKill
cpuManagerPolicyOptions cpuManagerReconcilePeriod draManagerReconcilePeriod memoryManagerPolicy
topologyManagerPolicy topologyManagerScope topologyManagerPolicyOptions qosReserved
runtimeRequestTimeout hairpinMode maxPods podCIDR podPidsLimit resolvConf runOnce cpuCFSQuota
cpuCFSQuotaPeriod nodeStatusMaxImages maxOpenFiles contentType kubeAPIQPS kubeAPIBurst
serializeImagePulls maxParallelImagePulls evictionHard evictionSoft evictionSoftGracePeriod
evictionPressureTransitionPeriod evictionMaxPodGracePeriod evictionMinimumReclaim
mergeDefaultEvictionSettings podsPerCore enableControllerAttachDetach protectKernelDefaults
makeIPTablesUtilChains iptablesMasqueradeBit iptablesDropBit featureGates failSwapOn memorySwap
containerLogMaxSize containerLogMaxFiles containerLogMaxWorkers containerLogMonitorInterval
configMapAndSecretChangeDetectionStrategy systemReserved kubeReserved reservedSystemCPUs
showHiddenMetricsForVersion systemReservedCgroup kubeReservedCgroup enforceNodeAllocatable
allowedUnsafeSysctls volumePluginDir providerID kernelMemcgNotification logging
enableSystemLogHandler enableSystemLogQuery shutdownGracePeriod shutdownGracePeriodCriticalPods
shutdownGracePeriodByPodPriority crashLoopBackOff reservedMemory enableProfilingHandler
enableDebugFlagsHandler seccompDefault memoryThrottlingFactor memoryReservationPolicy
registerWithTaints registerNode tracing localStorageCapacityIsolation containerRuntimeEndpoint
imageServiceEndpoint failCgroupV1 userNamespaces
""".split())

# Nested structs whose fields are known; None = list of structs with these fields.
KUBELET_NESTED = {
    "authentication": {"x509": {"clientCAFile"}, "webhook": {"enabled", "cacheTTL"}, "anonymous": {"enabled"}},
    "authorization": {"mode": None, "webhook": {"cacheAuthorizedTTL", "cacheUnauthorizedTTL"}},
    "memorySwap": {"swapBehavior": None},
    "crashLoopBackOff": {"maxContainerRestartPeriod": None},
    "userNamespaces": {"idsPerPod": None},
}
KUBELET_LIST_ITEMS = {
    "reservedMemory": {"numaNode", "limits"},
    "registerWithTaints": {"key", "value", "effect", "timeAdded"},
    "shutdownGracePeriodByPodPriority": {"priority", "shutdownGracePeriodSeconds"},
}

CPU_MANAGER_POLICIES = ("none", "static")
MEMORY_MANAGER_POLICIES = ("None", "Static", "BestEffort")
TOPOLOGY_POLICIES = ("none", "best-effort", "restricted", "single-numa-node")
TOPOLOGY_SCOPES = ("container", "pod")
CPU_MANAGER_OPTIONS = ("full-pcpus-only", "distribute-cpus-across-numa", "align-by-socket",
                       "distribute-cpus-across-cores", "strict-cpu-reservation",
                       "prefer-align-cpus-by-uncorecache")
TOPOLOGY_OPTIONS = {"prefer-closest-numa-nodes": "bool", "max-allowable-numa-nodes": "int"}
ENFORCE_NODE_ALLOCATABLE = ("pods", "system-reserved", "system-reserved-compressible",
                            "kube-reserved", "kube-reserved-compressible", "none")
GO_BOOLS = {"1": True, "t": True, "T": True, "TRUE": True, "true": True, "True": True,
            "0": False, "f": False, "F": False, "FALSE": False, "false": False, "False": False}
DEFAULT_EVICTION_MEMORY = "100Mi"
_CPUSET = re.compile(r"^\d+(-\d+)?(,\d+(-\d+)?)*$")


def parse_cpuset(text: str) -> list[int]:
    """Linux cpuset list syntax ("0-3,8,10-11") as a sorted list; ValueError if malformed."""
    s = str(text).replace(" ", "")
    if not _CPUSET.match(s):
        raise ValueError(f"{text!r} is not a cpu list like \"0-1,16-17\"")
    cpus: set[int] = set()
    for part in s.split(","):
        lo, _, hi = part.partition("-")
        a, b = int(lo), int(hi or lo)
        if b < a:
            raise ValueError(f"{text!r}: range {part} runs backwards")
        cpus.update(range(a, b + 1))
    return sorted(cpus)


def _suggest(name: str, known) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
    if not close:
        lowered = {k.lower(): k for k in known}
        if name.lower() in lowered:
            close = [lowered[name.lower()]]
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_kubelet(v, doc):
    if doc.get("apiVersion") != KUBELET_API:
        v("apiVersion", "kubelet-value", f"{doc.get('apiVersion')!r}: expected {KUBELET_API}")

    # Field names, top level and the nested structs we know.
    for key in doc:
        if key not in KUBELET_FIELDS:
            v(str(key), "kubelet-unknown-field",
              f"not a KubeletConfiguration v1beta1 field{_suggest(str(key), KUBELET_FIELDS)}; "
              "the kubelet would ignore it or refuse to start")
    for key, sub in KUBELET_NESTED.items():
        val = doc.get(key)
        if not isinstance(val, dict):
            continue
        for k2, v2 in val.items():
            if k2 not in sub:
                v(f"{key}.{k2}", "kubelet-unknown-field", f"unknown field{_suggest(str(k2), sub)}")
            elif isinstance(sub[k2], set) and isinstance(v2, dict):
                for k3 in v2:
                    if k3 not in sub[k2]:
                        v(f"{key}.{k2}.{k3}", "kubelet-unknown-field", f"unknown field{_suggest(str(k3), sub[k2])}")
    for key, fields in KUBELET_LIST_ITEMS.items():
        for i, item in enumerate(doc.get(key) or []):
            if not isinstance(item, dict):
                v(f"{key}[{i}]", "kubelet-value", "expected a mapping")
                continue
            for k2 in item:
                if k2 not in fields:
                    v(f"{key}[{i}].{k2}", "kubelet-unknown-field", f"unknown field{_suggest(str(k2), fields)}")

    # Values.
    cpu_policy = doc.get("cpuManagerPolicy", "none")
    if cpu_policy not in CPU_MANAGER_POLICIES:
        v("cpuManagerPolicy", "kubelet-value", f"{cpu_policy!r} is not one of {CPU_MANAGER_POLICIES}")
    mem_policy = doc.get("memoryManagerPolicy", "None")
    if mem_policy not in MEMORY_MANAGER_POLICIES:
        v("memoryManagerPolicy", "kubelet-value", f"{mem_policy!r} is not one of {MEMORY_MANAGER_POLICIES}")
    topo = doc.get("topologyManagerPolicy", "none")
    if topo not in TOPOLOGY_POLICIES:
        v("topologyManagerPolicy", "kubelet-value", f"{topo!r} is not one of {TOPOLOGY_POLICIES}")
    scope = doc.get("topologyManagerScope", "container")
    if scope not in TOPOLOGY_SCOPES:
        v("topologyManagerScope", "kubelet-value", f"{scope!r} is not one of {TOPOLOGY_SCOPES}")

    cpu_opts = doc.get("cpuManagerPolicyOptions") or {}
    opt_values: dict[str, bool] = {}
    if not isinstance(cpu_opts, dict):
        v("cpuManagerPolicyOptions", "kubelet-value", "expected a map of option name to \"true\"/\"false\"")
        cpu_opts = {}
    for name, val in cpu_opts.items():
        f = f"cpuManagerPolicyOptions.{name}"
        if name not in CPU_MANAGER_OPTIONS:
            v(f, "kubelet-unknown-field", f"unknown CPU manager option{_suggest(str(name), CPU_MANAGER_OPTIONS)}")
            continue
        if not isinstance(val, str):
            v(f, "kubelet-value", f"{val!r}: option values are strings, write \"true\" (map[string]string)")
        elif val not in GO_BOOLS:
            v(f, "kubelet-value", f"{val!r} is not a boolean the kubelet parses (true/false)")
        else:
            opt_values[name] = GO_BOOLS[val]
    for name, val in (doc.get("topologyManagerPolicyOptions") or {}).items():
        f = f"topologyManagerPolicyOptions.{name}"
        if name not in TOPOLOGY_OPTIONS:
            v(f, "kubelet-unknown-field", f"unknown topology manager option{_suggest(str(name), TOPOLOGY_OPTIONS)}")
        elif TOPOLOGY_OPTIONS[name] == "bool" and str(val) not in GO_BOOLS:
            v(f, "kubelet-value", f"{val!r} is not a boolean")
        elif TOPOLOGY_OPTIONS[name] == "int" and not str(val).isdigit():
            v(f, "kubelet-value", f"{val!r} is not a non-negative integer")

    reserved_cpus = doc.get("reservedSystemCPUs")
    if reserved_cpus is not None:
        try:
            if not parse_cpuset(reserved_cpus):
                raise ValueError("empty")
        except ValueError as exc:
            v("reservedSystemCPUs", "kubelet-value", str(exc))

    for i, e in enumerate(doc.get("enforceNodeAllocatable") or []):
        if e not in ENFORCE_NODE_ALLOCATABLE:
            v(f"enforceNodeAllocatable[{i}]", "kubelet-value", f"{e!r} is not one of {ENFORCE_NODE_ALLOCATABLE}")

    quantities: dict[str, Decimal] = {}
    for block in ("kubeReserved", "systemReserved"):
        for r, q in (doc.get(block) or {}).items():
            try:
                quantities[f"{block}.{r}"] = parse_quantity(q)
            except ValueError as exc:
                v(f"{block}.{r}", "kubelet-value", str(exc))

    # Conflicts.
    if opt_values and cpu_policy != "static":
        v("cpuManagerPolicyOptions", "kubelet-conflict",
          f"options {sorted(opt_values)} need cpuManagerPolicy: static (it is {cpu_policy!r}); "
          "full-pcpus-only has no effect without exclusive allocation")
    if opt_values.get("full-pcpus-only") and opt_values.get("distribute-cpus-across-cores"):
        v("cpuManagerPolicyOptions", "kubelet-conflict",
          "full-pcpus-only and distribute-cpus-across-cores exclude each other")
    if opt_values.get("align-by-socket") and topo == "single-numa-node":
        v("cpuManagerPolicyOptions.align-by-socket", "kubelet-conflict",
          "align-by-socket is incompatible with topologyManagerPolicy single-numa-node")
    if cpu_policy == "static" and not reserved_cpus and not any(
            quantities.get(f"{b}.cpu", 0) > 0 for b in ("kubeReserved", "systemReserved")):
        v("reservedSystemCPUs", "kubelet-conflict",
          "the static CPU manager needs a non-zero CPU reservation (reservedSystemCPUs, or "
          "kubeReserved/systemReserved cpu)")
    if reserved_cpus and (doc.get("systemReservedCgroup") or doc.get("kubeReservedCgroup")):
        v("reservedSystemCPUs", "kubelet-conflict",
          "reservedSystemCPUs cannot be combined with systemReservedCgroup or kubeReservedCgroup")
    enforce = set(doc.get("enforceNodeAllocatable") or [])
    if enforce & {"system-reserved", "system-reserved-compressible"} and not doc.get("systemReservedCgroup"):
        v("enforceNodeAllocatable", "kubelet-conflict", "system-reserved enforcement needs systemReservedCgroup")
    if enforce & {"kube-reserved", "kube-reserved-compressible"} and not doc.get("kubeReservedCgroup"):
        v("enforceNodeAllocatable", "kubelet-conflict", "kube-reserved enforcement needs kubeReservedCgroup")
    if mem_policy == "Static":
        if topo == "none":
            v("memoryManagerPolicy", "kubelet-conflict",
              "the Static memory manager only pins memory through the topology manager; "
              "topologyManagerPolicy none leaves it nothing to align with")
        check_reserved_memory(v, doc, quantities)
    elif doc.get("reservedMemory"):
        v("reservedMemory", "kubelet-conflict",
          f"reservedMemory is only used by memoryManagerPolicy Static (it is {mem_policy!r})")

    # What tickbook nodes need.
    required = {
        "cpuManagerPolicy": (cpu_policy, "static"),
        "topologyManagerPolicy": (topo, "single-numa-node"),
        "topologyManagerScope": (scope, "pod"),
        "memoryManagerPolicy": (mem_policy, "Static"),
    }
    for field, (have, want) in required.items():
        if have != want and (have in (CPU_MANAGER_POLICIES + MEMORY_MANAGER_POLICIES + TOPOLOGY_POLICIES + TOPOLOGY_SCOPES)):
            v(field, "kubelet-required", f"{have!r}: tickbook nodes need {want!r}")
    if opt_values.get("full-pcpus-only") is not True and "full-pcpus-only" not in cpu_opts:
        v("cpuManagerPolicyOptions.full-pcpus-only", "kubelet-required",
          "missing: without it two containers can share a physical core through SMT siblings")
    elif cpu_opts.get("full-pcpus-only") in GO_BOOLS and not opt_values.get("full-pcpus-only"):
        v("cpuManagerPolicyOptions.full-pcpus-only", "kubelet-required", "must be \"true\" on tickbook nodes")
    if not reserved_cpus:
        v("reservedSystemCPUs", "kubelet-required",
          "missing: name the housekeeping CPUs so they stay out of the exclusive pool")


def check_reserved_memory(v, doc, quantities):
    """Static memory manager: sum of reservedMemory[*].limits.memory must equal
    kubeReserved.memory + systemReserved.memory + evictionHard[memory.available]."""
    eviction = doc.get("evictionHard")
    merge = bool(doc.get("mergeDefaultEvictionSettings"))
    if eviction is None or (merge and "memory.available" not in eviction):
        ev_raw = DEFAULT_EVICTION_MEMORY
    else:
        ev_raw = (eviction or {}).get("memory.available", "0")
    if str(ev_raw).endswith("%"):
        v("evictionHard.memory.available", "kubelet-conflict",
          f"{ev_raw!r} is a percentage: reservedMemory must equal it in bytes, so with the Static "
          "memory manager state it as a quantity (e.g. 500Mi)")
        return
    try:
        ev = parse_quantity(ev_raw)
    except ValueError as exc:
        v("evictionHard.memory.available", "kubelet-value", str(exc))
        return
    expected = quantities.get("kubeReserved.memory", Decimal(0)) + quantities.get(
        "systemReserved.memory", Decimal(0)) + ev

    total: dict[str, Decimal] = {}
    seen: set[tuple[int, str]] = set()
    for i, item in enumerate(doc.get("reservedMemory") or []):
        if not isinstance(item, dict):
            continue
        node = item.get("numaNode")
        if not isinstance(node, int) or node < 0:
            v(f"reservedMemory[{i}].numaNode", "kubelet-value", f"{node!r} is not a NUMA node id")
        for r, q in (item.get("limits") or {}).items():
            f = f"reservedMemory[{i}].limits.{r}"
            if r != "memory" and not str(r).startswith("hugepages-"):
                v(f, "kubelet-value", f"{r!r}: only memory and hugepages-<size> can be reserved")
                continue
            if (node, r) in seen:
                v(f, "kubelet-conflict", f"NUMA node {node} reserves {r} twice")
            seen.add((node, r))
            try:
                n = parse_quantity(q)
            except ValueError as exc:
                v(f, "kubelet-value", str(exc))
                continue
            if n <= 0:
                v(f, "kubelet-value", "zero or negative reservation")
            total[r] = total.get(r, Decimal(0)) + n
    have = total.get("memory", Decimal(0))
    if have != expected:
        v("reservedMemory", "kubelet-conflict",
          f"sum of memory reservations is {_mi(have)} but kubeReserved.memory + systemReserved.memory "
          f"+ evictionHard[memory.available] is {_mi(expected)}: the kubelet refuses to start with "
          "the Static memory manager")


def _mi(q: Decimal) -> str:
    mi = q / (2**20)
    return f"{mi.normalize():f}Mi" if mi == mi.to_integral_value() else f"{q:f} bytes"


# --------------------------------------------------------------------------- driver


def check_documents(items: list[tuple[str, dict]]) -> list[Violation]:
    """Check (file, document) pairs; references resolve across all of them."""
    classes = {}
    runtime_classes = {}
    for f, doc in items:
        name = (doc.get("metadata") or {}).get("name")
        if doc.get("kind") == "PriorityClass":
            classes[name] = (f, doc)
        elif doc.get("kind") == "RuntimeClass":
            runtime_classes[name] = (f, doc)
    inputs = pod_rules.Inputs.of((doc for _, doc in items), WORKLOAD_KINDS)

    out: list[Violation] = []
    for f, doc in items:
        obj = object_name(doc)

        def v(field, rule, message, _f=f, _obj=obj):
            out.append(Violation(_f, _obj, field, rule, message))

        if doc.get("kind") == "KubeletConfiguration":
            check_kubelet(v, doc)
            continue
        if doc.get("kind") == "Namespace":
            pod_rules.check_namespace(v, doc, inputs)
        ps = pod_spec_of(doc)
        if ps is not None:
            prefix, pod = ps
            check_workload(v, doc, prefix, pod, classes, runtime_classes, inputs)
    return out


def check_files(paths) -> list[Violation]:
    items = []
    for p in paths:
        items.extend((str(p), d) for d in load_documents(p))
    return check_documents(items)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if args else 2
    try:
        violations = check_files(args)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for viol in violations:
        print(viol)
    if violations:
        print(f"{len(violations)} violation(s)", file=sys.stderr)
        return 1
    print(f"ok: {', '.join(args)}: no policy violation", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
