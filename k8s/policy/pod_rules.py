"""tickbook policy rules on a pod's filesystem, probes, journal, security and the objects
around its workload (PodDisruptionBudget, NetworkPolicy, Namespace). check.py documents
them with the other rules and calls `check_pod` for each workload and `check_namespace` for
each Namespace; every function here checks one concept and reports through
`v(field, rule, message)`."""

from __future__ import annotations

from dataclasses import dataclass, field

from pod_model import (
    absolute,
    commands_of,
    containers,
    exclusive_cpus,
    literal_env,
    location,
    mount_of,
    namespace_of,
    option,
    runs_any,
    selects,
    subcommand,
    template_labels,
    tickbook_commands,
    volume_source,
    volume_sources,
    writable_problem,
)

# Environment variables naming a folder the process writes (when they are set).
WRITTEN_ENV = ("NUMBA_CACHE_DIR", "TICKBOOK_HDL_BUILD", "TMPDIR", "XDG_CACHE_HOME", "HOME")
SHARD_PROCESSES = ("engine", "gateway")  # a workload running these is a shard
SHARD_KINDS = ("StatefulSet", "Deployment")
PROBES = ("readinessProbe", "livenessProbe", "startupProbe")
PERSISTENT_SOURCES = ("volumeClaimTemplates", "persistentVolumeClaim")
PSA_ENFORCE = "pod-security.kubernetes.io/enforce"
# Pod Security Standards, restricted profile
PSA_VOLUMES = ("configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
               "projected", "secret")
PSA_SECCOMP = ("RuntimeDefault", "Localhost")
PSA_ADD_CAPABILITIES = ("NET_BIND_SERVICE",)


@dataclass
class Inputs:
    """The objects of all checked files that rules on one workload look up."""
    pdbs: list[dict] = field(default_factory=list)
    network_policies: list[dict] = field(default_factory=list)
    namespaces: dict[str, list[dict]] = field(default_factory=dict)  # name -> Namespace documents
    workload_namespaces: set[str] = field(default_factory=set)

    @classmethod
    def of(cls, docs, workload_kinds) -> Inputs:
        out = cls()
        for doc in docs:
            kind = doc.get("kind")
            if kind == "PodDisruptionBudget":
                out.pdbs.append(doc)
            elif kind == "NetworkPolicy":
                out.network_policies.append(doc)
            elif kind == "Namespace":
                out.namespaces.setdefault((doc.get("metadata") or {}).get("name"), []).append(doc)
            elif kind in workload_kinds:
                out.workload_namespaces.add(namespace_of(doc))
        return out


def check_pod(v, doc, prefix, pod, inputs: Inputs, matchers=()):
    """The rules of this module on one workload; `matchers`: container names that must get
    exclusive cores (check.MATCHERS)."""
    check_read_only_root(v, pod, prefix)
    check_writable_paths(v, doc, pod, prefix)
    check_exec_probes(v, pod, prefix, matchers)
    check_journal_volume(v, doc, pod, prefix)
    check_gateway_keys(v, doc, pod, prefix)
    if doc.get("kind") in SHARD_KINDS and runs_any(pod, SHARD_PROCESSES):
        check_disruption_budget(v, doc, inputs)
        check_network_policy(v, doc, inputs)
    check_pod_namespace(v, doc, inputs)
    if namespace_of(doc) in inputs.namespaces:
        check_pod_security(v, pod, prefix)


# --------------------------------------------------------------------------- filesystem


def check_read_only_root(v, pod, prefix):
    for where, c in containers(pod, prefix):
        if ((c.get("securityContext") or {}).get("readOnlyRootFilesystem")) is not True:
            v(f"{where}.securityContext.readOnlyRootFilesystem", "read-only-root",
              "not true: the container could write into the image (a changed binary, a cache that "
              "dies with the container); set securityContext.readOnlyRootFilesystem: true in the "
              "container (the pod's securityContext has no such field) and give what it writes a volume")


def check_writable_paths(v, doc, pod, prefix):
    sources = volume_sources(doc, pod)
    for where, c in containers(pod, prefix):
        env = literal_env(c)
        for name in WRITTEN_ENV:
            if name in env:
                _writable(v, c, env[name], sources, f"{where}.env[{name}]", f"{name}={env[name]}")
        if tickbook_commands(c) and "NUMBA_CACHE_DIR" not in env:
            v(f"{where}.env", "writable-path",
              "NUMBA_CACHE_DIR not set: every tickbook command imports compiled code cached there, and the "
              "image's default is on its read-only root (the command refuses to start); set it to a folder "
              "on a writable volume (an emptyDir, which also keeps restarts warm)")
        for argv in tickbook_commands(c):
            _check_command_paths(v, c, argv, env, sources, where)


def _check_command_paths(v, c, argv, env, sources, where):
    sub, journal = subcommand(argv), option(argv, "--journal")
    if sub == "gateway" and journal is not None:
        _writable(v, c, journal, sources, f"{where}.args", f"--journal {journal}")
    if sub == "engine" and journal is not None:
        path = absolute(c, journal)
        if path is None or mount_of(c, path) is None:
            v(f"{where}.args", "writable-path",
              f"--journal {journal} is not on a volume of this container: the engine cannot load the "
              "state the gateway recovered; mount the gateway's journal volume there (readOnly: true)")
    if sub == "bridge" and (option(argv, "--target") or "sim") == "sim" and "TICKBOOK_HDL_BUILD" not in env:
        v(f"{where}.env", "writable-path",
          "TICKBOOK_HDL_BUILD not set: the simulated bridge compiles its testbench into a folder of "
          "the read-only image and fails; set it to a folder on a writable volume (an emptyDir)")


def _writable(v, c, path, sources, fld, what):
    full = absolute(c, path)
    if full is None:
        v(fld, "writable-path", f"{what}: a relative path depends on the image's working directory; "
          "give an absolute path on a writable volume")
        return
    problem = writable_problem(c, full, sources)
    if problem:
        v(fld, "writable-path", f"{what} is {problem}: writes there fail; point it at a folder on a "
          "volume this container mounts without readOnly (an emptyDir, or a claim for what must persist)")


# --------------------------------------------------------------------------- probes


def check_exec_probes(v, pod, prefix, matchers=()):
    """No exec probe on a container with cores of its own (or a matcher, which must have them)."""
    for where, c in containers(pod, prefix):
        if not (exclusive_cpus(pod, c) or c.get("name") in matchers):
            continue
        for p in PROBES:
            if "exec" in (c.get(p) or {}):
                v(f"{where}.{p}.exec", "exec-probe-exclusive",
                  "exec probe on a container with exclusive CPUs: every period it forks a process "
                  "onto the cores the static CPU manager gave this container alone; use httpGet "
                  "(the gateway's --health), or probe from a container without exclusive cores")


# --------------------------------------------------------------------------- journal


def check_journal_volume(v, doc, pod, prefix):
    sources = volume_sources(doc, pod)
    for where, c, argv in commands_of(pod, prefix, "gateway"):
        journal = option(argv, "--journal")
        mode = option(argv, "--offload") or "sw"
        if mode != "sw":
            if journal is not None and "--attach" not in argv:
                v(f"{where}.args", "journal-volume",
                  f"--offload {mode} with --journal {journal}: the hardware book cannot load a recovered "
                  "state, so this gateway refuses to start on a journal with records: the first restart "
                  "after any traffic fails; drop --journal (the pod restarts with empty books)")
            continue
        if journal is None:
            v(f"{where}.args", "journal-volume",
              "an --offload sw gateway without --journal: a restarted pod comes back with empty books "
              "and sequence numbers from 1; pass --journal DIR on a volume of the StatefulSet's "
              "volumeClaimTemplates")
            continue
        path = absolute(c, journal)
        if not _persistent(c, path, sources):
            m = mount_of(c, path) if path else None
            on = (f"volume {m.get('name')!r} ({sources.get(m.get('name'), 'not declared')})" if m
                  else "the container's root filesystem")
            v(f"{where}.args", "journal-volume",
              f"--journal {journal} is on {on}: it dies with the pod, and a restarted shard comes back "
              "empty; put it on a volume of the StatefulSet's volumeClaimTemplates (elsewhere: a "
              "persistentVolumeClaim volume)")
            continue
        _check_engines_share_journal(v, pod, prefix, argv, c, path)


def check_gateway_keys(v, doc, pod, prefix):
    """A gateway in a pod serves other pods: CURVE with its key file from a Secret (docs/security.md)."""
    sources = volume_sources(doc, pod)
    for where, c, argv in commands_of(pod, prefix, "gateway"):
        if "--insecure-local" in argv:
            v(f"{where}.args", "gateway-keys",
              "--insecure-local: plain TCP on loopback, any local process may trade any account; a "
              "gateway in a pod serves other pods: pass --keys FILE (CURVE keys in a Secret volume)")
            continue
        keys = option(argv, "--keys")
        if keys is None:
            v(f"{where}.args", "gateway-keys",
              "no --keys: the gateway refuses to start without a key file (or --insecure-local); pass "
              "--keys FILE on a volume of a Secret made from `tickbook keys` (docs/security.md)")
            continue
        path = absolute(c, keys)
        m = mount_of(c, path) if path else None
        source = sources.get(m.get("name")) if m else None
        if source not in ("secret", "projected"):
            on = f"volume {m.get('name')!r} ({source or 'not declared'})" if m else "the image's filesystem"
            v(f"{where}.args", "gateway-keys",
              f"--keys {keys} is on {on}: the key file names the gateway's secret key; mount it from "
              "a Secret (kubectl create secret generic ... --from-file), never bake it into the image "
              "or a ConfigMap")


def _persistent(c, path, sources) -> bool:
    m = mount_of(c, path) if path else None
    return m is not None and sources.get(m.get("name")) in PERSISTENT_SOURCES


def _check_engines_share_journal(v, pod, prefix, gw_argv, gw, gw_path):
    """The engine of the gateway's segment loads what the gateway recovered: same folder."""
    rings = option(gw_argv, "--rings")
    journal = option(gw_argv, "--journal")
    want = location(gw, gw_path)
    for where, c, argv in commands_of(pod, prefix, "engine"):
        if option(argv, "--rings") != rings:
            continue
        mine = option(argv, "--journal")
        path = absolute(c, mine) if mine is not None else None
        if mine is None:
            v(f"{where}.args", "journal-volume",
              f"no --journal: after a restart the gateway recovers the venue into {journal} and starts "
              "ring 0 past 0, and this engine has nothing to load; pass the gateway's --journal "
              f"{journal} (its volume mounted readOnly)")
        elif path is None or location(c, path) != want:
            v(f"{where}.args", "journal-volume",
              f"--journal {mine} is not the gateway's journal ({journal} on volume {want[0]!r}): the "
              "engine would not find the state the gateway recovered; pass the same folder, on the "
              "same volume")


# --------------------------------------------------------------------------- objects around the workload


def _replicas(doc) -> int:
    return (doc.get("spec") or {}).get("replicas", 1)


def _selecting(objs, doc, selector_of):
    ns, labels = namespace_of(doc), template_labels(doc)
    return [o for o in objs if namespace_of(o) == ns and selects(selector_of(o), labels)]


def check_disruption_budget(v, doc, inputs: Inputs):
    fld = "spec.template.metadata.labels"
    pdbs = _selecting(inputs.pdbs, doc, lambda o: (o.get("spec") or {}).get("selector"))
    if not pdbs:
        v(fld, "disruption-budget",
          "no PodDisruptionBudget selects these pods: a node drain or the autoscaler evicts a Ready "
          "shard, an outage of its symbols; add one in the same namespace with maxUnavailable: 0 "
          "selecting these labels")
        return
    names = sorted({(o.get("metadata") or {}).get("name") for o in pdbs})
    if len(names) > 1:
        v(fld, "disruption-budget",
          f"{len(names)} PodDisruptionBudgets select these pods ({', '.join(map(str, names))}): the "
          "eviction API refuses to evict a pod covered by more than one; keep one")
    for pdb in pdbs:
        why = _allows_disruption(pdb.get("spec") or {}, _replicas(doc))
        if why:
            v(fld, "disruption-budget",
              f"PodDisruptionBudget/{(pdb.get('metadata') or {}).get('name')} {why}: a drain may evict a "
              "Ready shard; set maxUnavailable: 0")


def _allows_disruption(spec, replicas) -> str | None:
    if "maxUnavailable" in spec:
        m = spec["maxUnavailable"]
        return None if m in (0, "0%") else f"has maxUnavailable {m!r}"
    if "minAvailable" in spec:
        m = spec["minAvailable"]
        ok = m == "100%" or (isinstance(m, int) and not isinstance(m, bool) and m >= replicas)
        return None if ok else f"has minAvailable {m!r} (spec.replicas {replicas})"
    return "sets neither maxUnavailable nor minAvailable"


def _policy_types(np) -> set[str]:
    """spec.policyTypes as the API server defaults it: Ingress, plus Egress when there are egress
    rules (a non-empty list: `egress: []` alone leaves egress open)."""
    spec = np.get("spec") or {}
    if spec.get("policyTypes"):
        return set(spec["policyTypes"])
    return {"Ingress"} | ({"Egress"} if spec.get("egress") else set())


def check_network_policy(v, doc, inputs: Inputs):
    fld = "spec.template.metadata.labels"
    nps = _selecting(inputs.network_policies, doc, lambda o: (o.get("spec") or {}).get("podSelector"))
    if not nps:
        v(fld, "network-policy",
          "no NetworkPolicy selects these pods: any pod of the cluster may send orders to a shard and "
          "the shard may connect anywhere; add one in the same namespace with policyTypes [Ingress, "
          "Egress] selecting these labels")
        return
    missing = {"Ingress", "Egress"} - set().union(*map(_policy_types, nps))
    names = ", ".join(sorted({str((o.get("metadata") or {}).get("name")) for o in nps}))
    fixes = {"Ingress": "add Ingress to policyTypes, with ingress rules for the order and market-data ports "
                        "from their clients only",
             "Egress": "add Egress to policyTypes, with no egress rules (the shard connects to nobody)"}
    for t in sorted(missing):
        v(fld, "network-policy",
          f"the NetworkPolicies selecting these pods ({names}) leave {t} open (not in policyTypes): "
          f"any peer is allowed; {fixes[t]}")


# --------------------------------------------------------------------------- pod security


def check_namespace(v, doc, inputs: Inputs):
    """A Namespace holding workloads enforces the restricted Pod Security profile."""
    name = (doc.get("metadata") or {}).get("name")
    value = ((doc.get("metadata") or {}).get("labels") or {}).get(PSA_ENFORCE)
    if name in inputs.workload_namespaces and value != "restricted":
        v(f"metadata.labels[{PSA_ENFORCE}]", "pod-security",
          f"{repr(value) if value else 'missing'}: the namespace of the workloads must enforce the "
          "restricted Pod Security profile, or the API server admits a pod that runs as root or "
          f"escalates; label it {PSA_ENFORCE}: restricted")


def check_pod_namespace(v, doc, inputs: Inputs):
    """With Namespaces among the inputs, a workload's own is one of them: its Pod Security
    level is known (and a misspelt namespace is caught, not silently left unchecked)."""
    ns = namespace_of(doc)
    if inputs.namespaces and ns not in inputs.namespaces:
        v("metadata.namespace", "pod-security",
          f"namespace {ns!r} is not among the Namespaces checked ({', '.join(sorted(map(str, inputs.namespaces)))}): "
          "its Pod Security level is unknown; put the workload in a namespace labelled "
          f"{PSA_ENFORCE}: restricted")


def check_pod_security(v, pod, prefix):
    """The restricted profile of the Pod Security Standards, which the namespace enforces: the
    API server would refuse the pod (the StatefulSet creates nothing, and says so only in events)."""
    _psa_host(v, pod, prefix)
    _psa_volumes(v, pod, prefix)
    psc = pod.get("securityContext") or {}
    for where, c in containers(pod, prefix):
        sc = c.get("securityContext") or {}
        _psa_user(v, where, sc, psc)
        _psa_seccomp(v, where, sc, psc)
        _psa_privileges(v, where, sc)
        _psa_host_ports(v, where, c)


def _psa(v, fld, problem, fix):
    v(fld, "pod-security", f"{problem}: the namespace enforces the restricted Pod Security profile, so "
      f"the API server refuses the pod (the StatefulSet creates nothing, only its events say why); {fix}")


def _psa_host(v, pod, prefix):
    for f in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(f):
            _psa(v, f"{prefix}.{f}", f"{f}: true", "remove it")


def _psa_volumes(v, pod, prefix):
    for vol in pod.get("volumes") or []:
        source = volume_source(vol)
        if source not in PSA_VOLUMES:
            _psa(v, f"{prefix}.volumes[{vol.get('name')}].{source}",
                 f"a {source} volume (the profile allows {', '.join(PSA_VOLUMES)})",
                 "use an emptyDir, or a claim for what must persist")


def _psa_host_ports(v, where, c):
    for p in c.get("ports") or []:
        if p.get("hostPort"):
            _psa(v, f"{where}.ports[{p.get('name', p.get('containerPort'))}].hostPort",
                 f"hostPort {p['hostPort']}", "remove it (clients reach the shard through the Service)")


def _psa_user(v, where, sc, psc):
    if sc.get("runAsNonRoot", psc.get("runAsNonRoot")) is not True:
        _psa(v, f"{where}.securityContext.runAsNonRoot",
             "runAsNonRoot is not true here nor in the pod's securityContext",
             "set runAsNonRoot: true in the pod's securityContext, with a non-zero runAsUser")
    if sc.get("runAsUser", psc.get("runAsUser")) == 0:
        _psa(v, f"{where}.securityContext.runAsUser", "runAsUser 0 (root)", "use the image's user, 10001")


def _psa_seccomp(v, where, sc, psc):
    t = (sc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
    if t not in PSA_SECCOMP:
        _psa(v, f"{where}.securityContext.seccompProfile",
             f"seccomp profile {t or 'not set'} (here or in the pod's securityContext)",
             "set seccompProfile: {type: RuntimeDefault} in the pod's securityContext")


def _psa_privileges(v, where, sc):
    if sc.get("privileged"):
        _psa(v, f"{where}.securityContext.privileged", "privileged: true", "remove it")
    if sc.get("allowPrivilegeEscalation") is not False:
        have = sc.get("allowPrivilegeEscalation")
        _psa(v, f"{where}.securityContext.allowPrivilegeEscalation",
             "allowPrivilegeEscalation true" if have else "allowPrivilegeEscalation not set (it defaults to true)",
             "set allowPrivilegeEscalation: false")
    caps = sc.get("capabilities") or {}
    if "ALL" not in (caps.get("drop") or []):
        _psa(v, f"{where}.securityContext.capabilities.drop", "capabilities.drop lacks ALL",
             "set capabilities: {drop: [ALL]}")
    extra = [c for c in caps.get("add") or [] if c not in PSA_ADD_CAPABILITIES]
    if extra:
        _psa(v, f"{where}.securityContext.capabilities.add", f"capabilities.add {extra}",
             "remove them: only NET_BIND_SERVICE may be added")
