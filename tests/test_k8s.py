"""Kubernetes deployment, validated offline.

- The overlays render with a real Kustomize (`kubectl kustomize`); without kubectl only the
  tests that need rendered output skip, and say why.
- Rendered output (and the plain base resources) pass `kubernetes-validate --strict`, with a
  warning (e.g. "Couldn't find schema") counted as a failure.
- The project's policy checker (k8s/policy/check.py) passes on the rendered overlays plus the
  KubeletConfiguration, and each rule fails on a manifest mutated to break it.
"""

from __future__ import annotations

import copy
import importlib.util
import re
import shutil
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
K8S = REPO / "k8s"
OVERLAYS = ("sim", "fpga")
KUBELET = K8S / "kubelet" / "kubelet-config.yaml"
CHECKER = K8S / "policy" / "check.py"
BASE_RESOURCES = sorted(p for p in (K8S / "base").glob("*.yaml") if p.name != "kustomization.yaml")
KUBECTL = shutil.which("kubectl")


def _load_checker():
    spec = importlib.util.spec_from_file_location("tickbook_k8s_policy_check", CHECKER)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look the module up while the class is built
    spec.loader.exec_module(module)
    return module


check = _load_checker()


# --------------------------------------------------------------------------- helpers


def kubernetes_validate(paths) -> list[str]:
    """Run `kubernetes-validate --strict --quiet`; return its problem lines, [] if clean.

    --quiet prints only warnings and failures, so any output is a problem: a WARN about a
    missing schema fails just like an ERROR (the tool itself exits 0 on warnings).
    """
    r = subprocess.run(
        [sys.executable, "-m", "kubernetes_validate", "--strict", "--quiet", *map(str, paths)],
        capture_output=True, text=True, timeout=120,
    )
    problems = [line for line in (r.stdout + r.stderr).splitlines() if line.strip()]
    if r.returncode != 0 and not problems:
        problems = [f"kubernetes-validate exited {r.returncode} without output"]
    return problems


CLUSTER_SCOPED = {"Namespace", "PriorityClass", "RuntimeClass"}


def load_base() -> list[tuple[str, dict]]:
    """The base resources as (file, doc), images pinned and namespaced as the kustomization
    would pin and namespace them, so that the policy tests run whether or not kubectl is
    installed. (The generated ConfigMap is left out: no rule reads it.)"""
    namespace = yaml.safe_load((K8S / "base" / "kustomization.yaml").read_text())["namespace"]
    items = []
    for p in BASE_RESOURCES:
        for doc in yaml.safe_load_all(p.read_text()):
            if doc:
                items.append((p.name, doc))
    for _, doc in items:
        if doc["kind"] not in CLUSTER_SCOPED:
            doc["metadata"]["namespace"] = namespace
        for c in _pod(doc).get("containers", []) if doc["kind"] == "StatefulSet" else []:
            c["image"] = "registry.example.com/tickbook:0.1.0"
    return items


def load_kubelet() -> dict:
    return yaml.safe_load(KUBELET.read_text())


def _pod(doc: dict) -> dict:
    return doc["spec"]["template"]["spec"]


def _find(items, kind) -> dict:
    return next(doc for _, doc in items if doc["kind"] == kind)


def _container(doc, name) -> dict:
    return next(c for c in _pod(doc)["containers"] if c["name"] == name)


def _own(container, key):
    """The container's own copy of a field: the base shares env and securityContext between
    the engine and the gateway through YAML anchors (one object after loading), and a test
    that mutates one container must not mutate the other."""
    container[key] = copy.deepcopy(container[key])
    return container[key]


def _args_without(args, option):
    """args minus `option VALUE`."""
    i = args.index(option)
    return args[:i] + args[i + 2:]


def _set_offload(gateway, mode):
    """The gateway switched to --offload MODE as the overlays do it: hw and shadow gateways
    have no --journal (the hardware book cannot load a recovered state)."""
    args = gateway["args"]
    if mode != "sw" and "--journal" in args:
        args = _args_without(args, "--journal")
    gateway["args"] = args + ["--offload", mode]


def assert_violation(violations, rule, field_part, file=None, obj=None):
    hits = [v for v in violations if v.rule == rule and field_part in v.field
            and (file is None or v.file == file) and (obj is None or v.obj == obj)]
    assert hits, f"expected a {rule} violation on a field containing {field_part!r}; got:\n" + "\n".join(
        map(str, violations)) if violations else f"expected a {rule} violation on {field_part!r}; got none"
    return hits[0]


def kubelet_violations(doc) -> list:
    return check.check_documents([("kubelet-config.yaml", doc)])


# --------------------------------------------------------------------------- rendering


@pytest.fixture(scope="session")
def rendered(tmp_path_factory) -> dict[str, Path]:
    if KUBECTL is None:
        pytest.skip("kubectl not found on PATH: the overlays cannot be rendered with Kustomize "
                    "(`kubectl kustomize` works offline); rendering tests skipped, policy and "
                    "schema tests on the base resources still run")
    out = tmp_path_factory.mktemp("k8s-rendered")
    paths = {}
    for overlay in OVERLAYS:
        r = subprocess.run([KUBECTL, "kustomize", str(K8S / "overlays" / overlay)],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, f"kubectl kustomize k8s/overlays/{overlay} failed:\n{r.stderr}"
        paths[overlay] = out / f"{overlay}.yaml"
        paths[overlay].write_text(r.stdout)
    return paths


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_the_expected_objects(rendered, overlay):
    docs = [d for d in yaml.safe_load_all(rendered[overlay].read_text()) if d]
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == ["ConfigMap", "Namespace", "NetworkPolicy", "PodDisruptionBudget", "PriorityClass",
                     "RuntimeClass", "Service", "ServiceAccount", "StatefulSet"]
    sts = next(d for d in docs if d["kind"] == "StatefulSet")
    names = sorted(c["name"] for c in _pod(sts)["containers"])
    # fpga: the card is the matcher (--offload hw), no engine container
    assert names == (["bridge", "gateway"] if overlay == "fpga" else ["bridge", "engine", "gateway"])
    bridge = _container(sts, "bridge")
    gateway = _container(sts, "gateway")
    assert bridge["args"][:3] == ["bridge", "--rings", "$(TICKBOOK_RINGS)-hw"], bridge["args"]
    mode = gateway["args"][gateway["args"].index("--offload") + 1]
    assert mode == ("hw" if overlay == "fpga" else "shadow")
    # who serves which segment, as the policy reads it: one server per segment
    served = {}
    for c in _pod(sts)["containers"]:
        for argv in check.tickbook_commands(c):
            if argv[1] in check.RING_SERVERS:
                served.setdefault(argv[argv.index("--rings") + 1], []).append(c["name"])
    assert served == ({"book-hw": ["bridge"]} if overlay == "fpga" else {"book": ["engine"], "book-hw": ["bridge"]})
    limits = bridge["resources"]["limits"]
    if overlay == "fpga":
        assert any(check.FPGA_RESOURCE.match(r) for r in limits), limits
        assert "hugepages-2Mi" in limits
    else:
        assert not any(check.FPGA_RESOURCE.match(r) for r in limits)
        assert bridge["image"].startswith("registry.example.com/tickbook-sim:")


def _rendered_docs(rendered, overlay) -> dict[str, dict]:
    """kind -> the rendered object of that kind (the overlays render one of each)."""
    docs = [d for d in yaml.safe_load_all(rendered[overlay].read_text()) if d]
    return {d["kind"]: d for d in docs}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_objects_around_the_shards(rendered, overlay):
    """Namespace (restricted Pod Security), ServiceAccount, PodDisruptionBudget, NetworkPolicy
    and the venue ConfigMap, as the shards' StatefulSet uses them."""
    docs = [d for d in yaml.safe_load_all(rendered[overlay].read_text()) if d]
    by_kind = _rendered_docs(rendered, overlay)
    sts = by_kind["StatefulSet"]
    labels = sts["spec"]["template"]["metadata"]["labels"]
    # every namespaced object in the namespace that enforces the restricted profile
    ns = by_kind["Namespace"]
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    namespaces = {d["metadata"].get("namespace") for d in docs if d["kind"] not in CLUSTER_SCOPED}
    assert namespaces == {ns["metadata"]["name"]}
    # the shards' own identity, no API token
    sa = by_kind["ServiceAccount"]
    assert sa["automountServiceAccountToken"] is False
    assert _pod(sts)["serviceAccountName"] == sa["metadata"]["name"]
    assert _pod(sts)["automountServiceAccountToken"] is False
    # no voluntary disruption of a Ready shard; ingress and egress both isolated
    pdb = by_kind["PodDisruptionBudget"]
    assert pdb["spec"]["maxUnavailable"] == 0
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    np = by_kind["NetworkPolicy"]
    assert np["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    assert set(np["spec"]["policyTypes"]) == {"Ingress", "Egress"} and not np["spec"].get("egress")
    # the venue: the generated ConfigMap (content-hashed name) is the volume at /etc/tickbook
    cm = by_kind["ConfigMap"]
    venue_file = K8S / "overlays" / overlay / "venue.toml"
    if not venue_file.exists():
        venue_file = K8S / "base" / "venue.toml"
    assert cm["metadata"]["name"].startswith("tickbook-venue-")
    assert cm["data"]["venue.toml"] == venue_file.read_text()
    venue = next(x for x in _pod(sts)["volumes"] if x["name"] == "venue")
    assert venue["configMap"]["name"] == cm["metadata"]["name"]
    for c in _pod(sts)["containers"]:
        assert {"name": "venue", "mountPath": "/etc/tickbook", "readOnly": True} in c["volumeMounts"], c["name"]
        assert c["args"][c["args"].index("--config") + 1] == "/etc/tickbook/venue.toml", c["name"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_filesystem_journal_and_probes(rendered, overlay):
    sts = _rendered_docs(rendered, overlay)["StatefulSet"]
    bridge, gateway = _container(sts, "bridge"), _container(sts, "gateway")
    for c in _pod(sts)["containers"]:
        assert c["securityContext"]["readOnlyRootFilesystem"] is True, c["name"]
    # the journal: a claim per shard, mounted read-write by the gateway, read-only by the engine
    assert [t["metadata"]["name"] for t in sts["spec"]["volumeClaimTemplates"]] == ["journal"]
    journal_mounts = {c["name"]: m for c in _pod(sts)["containers"]
                      for m in c["volumeMounts"] if m["name"] == "journal"}
    assert journal_mounts["gateway"]["mountPath"] == "/var/lib/tickbook/journal"
    assert not journal_mounts["gateway"].get("readOnly")
    assert set(journal_mounts) == ({"gateway"} if overlay == "fpga" else {"gateway", "engine"})
    if overlay == "sim":  # the engine keeps the base's --journal: it loads only what a gateway hands over
        assert journal_mounts["engine"]["readOnly"] is True
        engine = _container(sts, "engine")
        assert engine["args"][engine["args"].index("--journal") + 1] == "/var/lib/tickbook/journal"
    # a hw/shadow gateway cannot recover (the hardware book cannot load the state): no --journal
    assert "--journal" not in gateway["args"]
    # probed over HTTP on its health port (no process forked into the pod), not by exec
    assert gateway["args"][gateway["args"].index("--health") + 1] == "0.0.0.0:8080"
    assert {"name": "health", "containerPort": 8080, "protocol": "TCP"} in gateway["ports"]
    for probe, path in (("readinessProbe", "/ready"), ("startupProbe", "/live"), ("livenessProbe", "/live")):
        assert gateway[probe]["httpGet"] == {"path": path, "port": "health"}, probe
    for c in _pod(sts)["containers"]:
        probes = ("readinessProbe", "startupProbe", "livenessProbe")
        assert not any("exec" in c.get(p, {}) for p in probes), c["name"]
    # the bridge: a card's waits for a driver (--target card); the simulator builds on a volume
    env = {e["name"]: e.get("value") for e in bridge.get("env", [])}
    if overlay == "fpga":
        assert bridge["args"][bridge["args"].index("--target") + 1] == "card"
    else:
        assert "--target" not in bridge["args"]
        assert env["TICKBOOK_HDL_BUILD"] == "/var/cache/tickbook/hdl"
        assert {"name": "hdl-build", "mountPath": "/var/cache/tickbook/hdl"} in bridge["volumeMounts"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_rendered_overlay_passes_kubernetes_validate_strict(rendered, overlay):
    assert kubernetes_validate([rendered[overlay]]) == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_rendered_overlay_passes_policy(rendered, overlay):
    violations = check.check_files([rendered[overlay], KUBELET])
    assert violations == [], "\n".join(map(str, violations))


def test_checker_cli_passes_rendered_overlays(rendered):
    r = subprocess.run([sys.executable, str(CHECKER), *map(str, rendered.values()), str(KUBELET)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


# --------------------------------------------------------------------------- schemas


def test_base_resources_pass_kubernetes_validate_strict():
    assert kubernetes_validate(BASE_RESOURCES) == []


def test_missing_schema_warning_counts_as_failure():
    # kubernetes-validate has no KubeletConfiguration schema: it warns and exits 0. That
    # warning must fail the check, which is why the kubelet file goes to our checker instead.
    problems = kubernetes_validate([KUBELET])
    assert problems and any("schema" in p.lower() for p in problems), problems


def test_kubernetes_validate_strict_rejects_unknown_field(tmp_path):
    items = load_base()
    sts = copy.deepcopy(_find(items, "StatefulSet"))
    _container(sts, "engine")["cpuPinning"] = "exclusive"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(sts))
    problems = kubernetes_validate([bad])
    assert problems and any("cpuPinning" in p for p in problems), problems


# --------------------------------------------------------------------------- policy: good input


def test_base_passes_policy():
    violations = check.check_documents(load_base())
    assert violations == [], "\n".join(map(str, violations))


def test_kubelet_config_passes_policy():
    violations = check.check_files([KUBELET])
    assert violations == [], "\n".join(map(str, violations))


def test_checker_cli_reports_file_object_field_and_exits_nonzero(tmp_path):
    items = load_base()
    sts = copy.deepcopy(_find(items, "StatefulSet"))
    _container(sts, "engine")["resources"]["limits"]["cpu"] = "1500m"
    _container(sts, "engine")["resources"]["requests"]["cpu"] = "1500m"
    bad = tmp_path / "shard.yaml"
    bad.write_text(yaml.safe_dump_all([sts] + [d for _, d in items if d["kind"] != "StatefulSet"]))
    r = subprocess.run([sys.executable, str(CHECKER), str(bad)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1, r.stdout + r.stderr
    assert (f"{bad}: StatefulSet/tickbook: spec.template.spec.containers[engine].resources.limits.cpu: "
            "matcher-whole-cpu:") in r.stdout, r.stdout


def test_checker_cli_unreadable_input_exits_2(tmp_path):
    r = subprocess.run([sys.executable, str(CHECKER), str(tmp_path / "missing.yaml")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "missing.yaml" in r.stderr


# --------------------------------------------------------------------------- policy: one failing test per rule


def _mutated(mutate):
    items = copy.deepcopy(load_base())
    mutate(items)
    return check.check_documents(items)


def test_pod_not_guaranteed_requests_below_limits():
    def m(items):
        _container(_find(items, "StatefulSet"), "gateway")["resources"]["requests"]["memory"] = "512Mi"
    assert_violation(_mutated(m), "guaranteed-qos", "containers[gateway].resources.requests.memory",
                     file="statefulset.yaml", obj="StatefulSet/tickbook")


def test_pod_not_guaranteed_missing_limit():
    def m(items):
        del _container(_find(items, "StatefulSet"), "engine")["resources"]["limits"]["memory"]
    assert_violation(_mutated(m), "guaranteed-qos", "containers[engine].resources.limits.memory")


@pytest.mark.parametrize("cpu", ["1500m", "0.5", 2.5])
def test_fractional_cpu_on_the_matcher(cpu):
    def m(items):
        res = _container(_find(items, "StatefulSet"), "engine")["resources"]
        res["requests"]["cpu"] = res["limits"]["cpu"] = cpu
    v = _mutated(m)
    assert_violation(v, "matcher-whole-cpu", "containers[engine].resources.limits.cpu")
    assert not [x for x in v if x.rule == "guaranteed-qos"], "still Guaranteed: only the CPU rule fires"


def test_whole_cpu_in_millicores_is_accepted():
    def m(items):
        res = _container(_find(items, "StatefulSet"), "engine")["resources"]
        res["requests"]["cpu"] = res["limits"]["cpu"] = "4000m"
    assert _mutated(m) == []


def test_missing_priority_class():
    def m(items):
        del _pod(_find(items, "StatefulSet"))["priorityClassName"]
    assert_violation(_mutated(m), "priority-class", "spec.template.spec.priorityClassName")


def test_priority_class_not_defined():
    def m(items):
        items[:] = [(f, d) for f, d in items if d["kind"] != "PriorityClass"]
    assert_violation(_mutated(m), "priority-class", "priorityClassName")


def test_priority_class_global_default_and_implicit_preemption():
    def m(items):
        pc = _find(items, "PriorityClass")
        pc["globalDefault"] = True
        del pc["preemptionPolicy"]
    v = _mutated(m)
    assert len([x for x in v if x.rule == "priority-class"]) == 2, "\n".join(map(str, v))


def test_shm_not_memory_backed():
    def m(items):
        vol = next(x for x in _pod(_find(items, "StatefulSet"))["volumes"] if x["name"] == "shm")
        del vol["emptyDir"]["medium"]
    assert_violation(_mutated(m), "shm-memory", "volumes[shm].emptyDir.medium")


def test_shm_on_host_path():
    def m(items):
        vol = next(x for x in _pod(_find(items, "StatefulSet"))["volumes"] if x["name"] == "shm")
        del vol["emptyDir"]
        vol["hostPath"] = {"path": "/dev/shm"}
    assert_violation(_mutated(m), "shm-memory", "volumes[shm]")


def test_shm_without_size_limit():
    def m(items):
        vol = next(x for x in _pod(_find(items, "StatefulSet"))["volumes"] if x["name"] == "shm")
        del vol["emptyDir"]["sizeLimit"]
    assert_violation(_mutated(m), "shm-memory", "volumes[shm].emptyDir.sizeLimit")


def test_gateway_not_sharing_shm():
    def m(items):
        gw = _container(_find(items, "StatefulSet"), "gateway")
        gw["volumeMounts"] = [x for x in gw["volumeMounts"] if x["mountPath"] != "/dev/shm"]
    assert_violation(_mutated(m), "shm-memory", "containers[gateway].volumeMounts")


def test_exec_liveness_probe_on_hot_pod():
    def m(items):
        _container(_find(items, "StatefulSet"), "engine")["livenessProbe"] = {
            "exec": {"command": ["tickbook", "health"]}}
    assert_violation(_mutated(m), "no-exec-liveness", "containers[engine].livenessProbe.exec")


def test_exec_readiness_on_the_matcher():
    def m(items):
        _container(_find(items, "StatefulSet"), "engine")["readinessProbe"] = {
            "exec": {"command": ["test", "-f", "/dev/shm/book.ready"]}}
    assert_violation(_mutated(m), "exec-probe-exclusive", "containers[engine].readinessProbe.exec")


def test_missing_runtime_class():
    def m(items):
        del _pod(_find(items, "StatefulSet"))["runtimeClassName"]
    assert_violation(_mutated(m), "runtime-class", "runtimeClassName")


def test_shard_count_differs_from_replicas():
    def m(items):
        _find(items, "StatefulSet")["spec"]["replicas"] = 3
    assert_violation(_mutated(m), "shard-count", "env[TICKBOOK_SHARD_COUNT]")


def test_deployment_with_rolling_update():
    def m(items):
        sts = _find(items, "StatefulSet")
        sts["kind"] = "Deployment"
        for k in ("serviceName", "podManagementPolicy", "updateStrategy"):
            sts["spec"].pop(k)
    assert_violation(_mutated(m), "update-strategy", "spec.strategy.type", obj="Deployment/tickbook")


def test_unpinned_image():
    def m(items):
        _container(_find(items, "StatefulSet"), "gateway")["image"] = "registry.example.com/tickbook:latest"
    assert_violation(_mutated(m), "image-pinned", "containers[gateway].image")


def test_fpga_resource_in_requests_only():
    def m(items):
        _container(_find(items, "StatefulSet"), "engine")["resources"]["requests"][
            "fpga.intel.com/region-ce48969398f05f33946d560708be108a"] = 1
    assert_violation(_mutated(m), "device-in-limits", "requests.fpga.intel.com/region-")


# --------------------------------------------------------------------------- policy: read-only root and around it
# The rules of the read-only-root design (k8s/policy/pod_rules.py): each broken on the base, or
# on a rendered overlay where only the overlay has the part (the bridge, hw/shadow gateways).


def _rules(violations) -> set[str]:
    return {x.rule for x in violations}


def _set_env(container, name, value):
    env = [e for e in _own(container, "env") if e["name"] != name]
    container["env"] = env + ([] if value is None else [{"name": name, "value": value}])


def _mount(container, name) -> dict:
    return next(x for x in container["volumeMounts"] if x["name"] == name)


@pytest.mark.parametrize("value", [None, False])
def test_container_without_read_only_root(value):
    def m(items):
        sc = _own(_container(_find(items, "StatefulSet"), "gateway"), "securityContext")
        if value is None:
            del sc["readOnlyRootFilesystem"]
        else:
            sc["readOnlyRootFilesystem"] = value
    v = _mutated(m)
    hit = assert_violation(v, "read-only-root", "containers[gateway].securityContext.readOnlyRootFilesystem")
    assert "set securityContext.readOnlyRootFilesystem: true" in hit.message, hit
    assert _rules(v) == {"read-only-root"}, "\n".join(map(str, v))


def test_read_only_root_is_a_container_field():
    def m(items):  # the pod's securityContext has no such field: it does not cover the engine
        sts = _find(items, "StatefulSet")
        _pod(sts)["securityContext"]["readOnlyRootFilesystem"] = True
        del _own(_container(sts, "engine"), "securityContext")["readOnlyRootFilesystem"]
    assert_violation(_mutated(m), "read-only-root", "containers[engine].securityContext.readOnlyRootFilesystem")


@pytest.mark.parametrize("container, name, value, field_part, says", [
    ("engine", "NUMBA_CACHE_DIR", "/opt/numba", "containers[engine].env[NUMBA_CACHE_DIR]", "root filesystem"),
    ("gateway", "NUMBA_CACHE_DIR", None, "containers[gateway].env", "NUMBA_CACHE_DIR not set"),
    ("engine", "NUMBA_CACHE_DIR", None, "containers[engine].env", "NUMBA_CACHE_DIR not set"),
    # the engine mounts the journal readOnly
    ("engine", "NUMBA_CACHE_DIR", "/var/lib/tickbook/journal/numba", "containers[engine].env[NUMBA_CACHE_DIR]",
     "which is readOnly"),
    ("gateway", "TMPDIR", "/tmp", "containers[gateway].env[TMPDIR]", "root filesystem"),
    ("gateway", "HOME", "/home/tickbook", "containers[gateway].env[HOME]", "root filesystem"),
    ("engine", "XDG_CACHE_HOME", "cache", "containers[engine].env[XDG_CACHE_HOME]", "relative path"),
    ("engine", "TICKBOOK_HDL_BUILD", "/etc/tickbook/hdl", "containers[engine].env[TICKBOOK_HDL_BUILD]", "readOnly"),
])
def test_written_path_not_on_a_writable_volume(container, name, value, field_part, says):
    def m(items):
        _set_env(_container(_find(items, "StatefulSet"), container), name, value)
    v = _mutated(m)
    hit = assert_violation(v, "writable-path", field_part)
    assert says in hit.message, hit
    assert _rules(v) == {"writable-path"}, "\n".join(map(str, v))


def test_config_map_volume_is_read_only_without_the_flag():
    def m(items):  # the kubelet mounts a configMap read-only whatever the volumeMount says
        gw = _container(_find(items, "StatefulSet"), "gateway")
        del _mount(gw, "venue")["readOnly"]
        _set_env(gw, "HOME", "/etc/tickbook")
    hit = assert_violation(_mutated(m), "writable-path", "containers[gateway].env[HOME]")
    assert "a configMap, which is always read-only" in hit.message, hit


def test_written_paths_on_writable_volumes_pass():
    def m(items):
        sts = _find(items, "StatefulSet")
        _set_env(_container(sts, "gateway"), "TMPDIR", "/dev/shm/tmp")
        _set_env(_container(sts, "engine"), "HOME", "/var/cache/tickbook/numba/../numba/home")
    assert _mutated(m) == []


def test_gateway_journal_on_a_read_only_mount():
    def m(items):
        _mount(_container(_find(items, "StatefulSet"), "gateway"), "journal")["readOnly"] = True
    hit = assert_violation(_mutated(m), "writable-path", "containers[gateway].args")
    assert hit.message.startswith("--journal /var/lib/tickbook/journal is under volumeMount 'journal'"), hit


def test_engine_journal_not_on_a_volume():
    def m(items):
        engine = _container(_find(items, "StatefulSet"), "engine")
        engine["volumeMounts"] = [x for x in engine["volumeMounts"] if x["name"] != "journal"]
    v = _mutated(m)
    hit = assert_violation(v, "writable-path", "containers[engine].args")
    assert "not on a volume of this container" in hit.message, hit
    # ... and so it cannot be the gateway's journal either
    assert_violation(v, "journal-volume", "containers[engine].args")


def test_sim_bridge_without_a_build_folder(rendered):
    def m(items):
        _set_env(_container(_find(items, "StatefulSet"), "bridge"), "TICKBOOK_HDL_BUILD", None)
    hit = assert_violation(_rendered_mutated(rendered, "sim", m), "writable-path", "containers[bridge].env")
    assert hit.message.startswith("TICKBOOK_HDL_BUILD not set"), hit


def test_sim_bridge_build_folder_not_mounted(rendered):
    def m(items):
        bridge = _container(_find(items, "StatefulSet"), "bridge")
        bridge["volumeMounts"] = [x for x in bridge["volumeMounts"] if x["name"] != "hdl-build"]
    hit = assert_violation(_rendered_mutated(rendered, "sim", m), "writable-path",
                           "containers[bridge].env[TICKBOOK_HDL_BUILD]")
    assert "root filesystem" in hit.message, hit


def test_card_bridge_needs_no_build_folder_but_a_sim_target_does(rendered):
    def m(items):  # the fpga bridge passes without TICKBOOK_HDL_BUILD only because of --target card
        bridge = _container(_find(items, "StatefulSet"), "bridge")
        assert "TICKBOOK_HDL_BUILD" not in {e["name"] for e in bridge["env"]}
        bridge["args"] = _args_without(bridge["args"], "--target")
    assert_violation(_rendered_mutated(rendered, "fpga", m), "writable-path", "containers[bridge].env")


@pytest.mark.parametrize("probe", ["readinessProbe", "startupProbe", "livenessProbe"])
def test_exec_probe_on_a_container_with_exclusive_cpus(probe):
    def m(items):  # the gateway has 2 whole CPUs of its own too
        _container(_find(items, "StatefulSet"), "gateway")[probe] = {"exec": {"command": ["tickbook", "health"]}}
    v = _mutated(m)
    hit = assert_violation(v, "exec-probe-exclusive", f"containers[gateway].{probe}.exec")
    assert "forks a process onto the cores" in hit.message, hit
    assert _rules(v) == ({"exec-probe-exclusive", "no-exec-liveness"} if probe == "livenessProbe"
                         else {"exec-probe-exclusive"}), "\n".join(map(str, v))


def test_exec_probe_on_a_container_without_exclusive_cpus():
    def m(items):  # 1.5 CPUs: the gateway runs in the shared pool, where a fork costs nobody a core
        gw = _container(_find(items, "StatefulSet"), "gateway")
        gw["resources"]["requests"]["cpu"] = gw["resources"]["limits"]["cpu"] = "1500m"
        gw["readinessProbe"] = {"exec": {"command": ["tickbook", "health"]}}
    assert _mutated(m) == []


def test_sw_gateway_without_journal():
    def m(items):
        gw = _container(_find(items, "StatefulSet"), "gateway")
        gw["args"] = _args_without(gw["args"], "--journal")
    hit = assert_violation(_mutated(m), "journal-volume", "containers[gateway].args")
    assert "without --journal" in hit.message, hit


@pytest.mark.parametrize("offload", [None, "sw"])
def test_sw_gateway_journal_on_an_empty_dir(offload):
    def m(items):
        sts = _find(items, "StatefulSet")
        del sts["spec"]["volumeClaimTemplates"]
        _pod(sts)["volumes"].append({"name": "journal", "emptyDir": {"sizeLimit": "20Gi"}})
        if offload:
            _set_offload(_container(sts, "gateway"), offload)
    v = _mutated(m)
    hit = assert_violation(v, "journal-volume", "containers[gateway].args")
    assert "on volume 'journal' (emptyDir): it dies with the pod" in hit.message, hit
    assert _rules(v) == {"journal-volume"}, "\n".join(map(str, v))


def test_engine_without_the_gateways_journal():
    def m(items):
        engine = _container(_find(items, "StatefulSet"), "engine")
        engine["args"] = _args_without(engine["args"], "--journal")
    hit = assert_violation(_mutated(m), "journal-volume", "containers[engine].args")
    assert hit.message.startswith("no --journal"), hit


def test_engine_journal_on_another_volume():
    def m(items):  # same path, but the engine's mount there is another volume
        sts = _find(items, "StatefulSet")
        _pod(sts)["volumes"].append({"name": "other", "emptyDir": {}})
        _mount(_container(sts, "engine"), "journal")["name"] = "other"
    hit = assert_violation(_mutated(m), "journal-volume", "containers[engine].args")
    assert "is not the gateway's journal (/var/lib/tickbook/journal on volume 'journal')" in hit.message, hit


def test_engine_journal_in_another_folder_of_the_volume():
    def m(items):
        engine = _container(_find(items, "StatefulSet"), "engine")
        i = engine["args"].index("--journal")
        engine["args"][i + 1] = "/var/lib/tickbook/journal/engine"
    assert_violation(_mutated(m), "journal-volume", "containers[engine].args")


def test_engine_journal_mounted_elsewhere_is_the_same_folder():
    def m(items):  # the same volume at another path in the engine: the same journal
        engine = _container(_find(items, "StatefulSet"), "engine")
        _mount(engine, "journal")["mountPath"] = "/journal"
        engine["args"][engine["args"].index("--journal") + 1] = "/journal"
    assert _mutated(m) == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_hw_or_shadow_gateway_with_a_journal(rendered, overlay):
    def m(items):
        _container(_find(items, "StatefulSet"), "gateway")["args"] += ["--journal", "/var/lib/tickbook/journal"]
    hit = assert_violation(_rendered_mutated(rendered, overlay, m), "journal-volume", "containers[gateway].args")
    assert "refuses to start on a journal with records" in hit.message, hit


def _as_deployment(items):
    sts = _find(items, "StatefulSet")
    sts["kind"] = "Deployment"
    for k in ("serviceName", "podManagementPolicy", "updateStrategy"):
        sts["spec"].pop(k)
    sts["spec"]["strategy"] = {"type": "Recreate"}
    return sts


def test_deployment_journal_on_a_persistent_volume_claim():
    def m(items):
        dep = _as_deployment(items)
        del dep["spec"]["volumeClaimTemplates"]
        _pod(dep)["volumes"].append({"name": "journal", "persistentVolumeClaim": {"claimName": "tickbook-journal"}})
    assert _mutated(m) == []


def test_deployment_has_no_volume_claim_templates():
    def m(items):  # a Deployment ignores volumeClaimTemplates: the journal mount has no volume
        _as_deployment(items)
    hit = assert_violation(_mutated(m), "journal-volume", "containers[gateway].args")
    assert "on volume 'journal' (not declared)" in hit.message, hit


@pytest.mark.parametrize("mutate, says", [
    (lambda items: items.remove(next(x for x in items if x[1]["kind"] == "PodDisruptionBudget")),
     "no PodDisruptionBudget selects these pods"),
    (lambda items: _find(items, "PodDisruptionBudget")["metadata"].update(namespace="elsewhere"),
     "no PodDisruptionBudget selects these pods"),
    (lambda items: _find(items, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"].update(
        {"app.kubernetes.io/component": "gateway"}), "no PodDisruptionBudget selects these pods"),
    (lambda items: _find(items, "PodDisruptionBudget")["spec"].update(maxUnavailable=1),
     "PodDisruptionBudget/tickbook has maxUnavailable 1"),
    (lambda items: _find(items, "PodDisruptionBudget")["spec"].update(maxUnavailable="50%"),
     "has maxUnavailable '50%'"),
    (lambda items: _find(items, "PodDisruptionBudget")["spec"].update(
        minAvailable=_find(items, "PodDisruptionBudget")["spec"].pop("maxUnavailable")) or
     _find(items, "PodDisruptionBudget")["spec"].update(minAvailable=1), "has minAvailable 1 (spec.replicas 2)"),
    (lambda items: items.append(("extra.yaml", {**copy.deepcopy(_find(items, "PodDisruptionBudget")),
                                                "metadata": {"name": "tickbook-2", "namespace": "tickbook"}})),
     "2 PodDisruptionBudgets select these pods (tickbook, tickbook-2)"),
])
def test_shard_not_protected_by_a_disruption_budget(mutate, says):
    hit = assert_violation(_mutated(mutate), "disruption-budget", "spec.template.metadata.labels",
                           file="statefulset.yaml", obj="StatefulSet/tickbook")
    assert says in hit.message, hit


@pytest.mark.parametrize("min_available", [2, "100%"])
def test_disruption_budget_with_min_available_of_every_replica(min_available):
    def m(items):
        spec = _find(items, "PodDisruptionBudget")["spec"]
        del spec["maxUnavailable"]
        spec["minAvailable"] = min_available
    assert _mutated(m) == []


@pytest.mark.parametrize("mutate, says", [
    (lambda items: items.remove(next(x for x in items if x[1]["kind"] == "NetworkPolicy")),
     "no NetworkPolicy selects these pods"),
    (lambda items: _find(items, "NetworkPolicy")["metadata"].update(namespace="elsewhere"),
     "no NetworkPolicy selects these pods"),
    (lambda items: _find(items, "NetworkPolicy")["spec"]["podSelector"]["matchLabels"].update(
        {"app.kubernetes.io/name": "other"}), "no NetworkPolicy selects these pods"),
    (lambda items: _find(items, "NetworkPolicy")["spec"].update(policyTypes=["Ingress"]), "leave Egress open"),
    # the API server defaults policyTypes to Ingress, plus Egress only for a non-empty egress list
    (lambda items: _find(items, "NetworkPolicy")["spec"].pop("policyTypes"), "leave Egress open"),
])
def test_shard_not_isolated_by_a_network_policy(mutate, says):
    hit = assert_violation(_mutated(mutate), "network-policy", "spec.template.metadata.labels",
                           file="statefulset.yaml", obj="StatefulSet/tickbook")
    assert says in hit.message, hit


def test_network_policies_isolate_together():
    def m(items):  # one policy for ingress, one for egress: together the pods are isolated both ways
        np = _find(items, "NetworkPolicy")
        egress = copy.deepcopy(np)
        egress["metadata"]["name"] = "tickbook-egress"
        egress["spec"] = {"podSelector": np["spec"]["podSelector"], "policyTypes": ["Egress"]}
        np["spec"]["policyTypes"] = ["Ingress"]
        del np["spec"]["egress"]
        items.append(("egress.yaml", egress))
    assert _mutated(m) == []


def test_workload_without_engine_or_gateway_needs_no_budget_or_policy():
    def m(items):
        items[:] = [x for x in items if x[1]["kind"] not in ("PodDisruptionBudget", "NetworkPolicy")]
        sts = _find(items, "StatefulSet")
        for c in _pod(sts)["containers"]:
            c["args"] = ["journal", "--help"]
    assert not _rules(_mutated(m)) & {"disruption-budget", "network-policy"}


@pytest.mark.parametrize("value", [None, "baseline"])
def test_namespace_not_enforcing_restricted(value):
    def m(items):
        labels = _find(items, "Namespace")["metadata"]["labels"]
        if value is None:
            del labels["pod-security.kubernetes.io/enforce"]
        else:
            labels["pod-security.kubernetes.io/enforce"] = value
    v = _mutated(m)
    hit = assert_violation(v, "pod-security", "metadata.labels[pod-security.kubernetes.io/enforce]",
                           file="namespace.yaml", obj="Namespace/tickbook")
    assert hit.message.startswith(f"{value!r}:" if value else "missing:"), hit
    assert _rules(v) == {"pod-security"}, "\n".join(map(str, v))


def _engine_sc(items) -> dict:
    return _own(_container(_find(items, "StatefulSet"), "engine"), "securityContext")


@pytest.mark.parametrize("mutate, field_part", [
    (lambda items: _pod(_find(items, "StatefulSet"))["securityContext"].pop("runAsNonRoot"),
     "containers[gateway].securityContext.runAsNonRoot"),
    (lambda items: _engine_sc(items).update(runAsNonRoot=False), "containers[engine].securityContext.runAsNonRoot"),
    (lambda items: _engine_sc(items).update(runAsUser=0), "containers[engine].securityContext.runAsUser"),
    (lambda items: _pod(_find(items, "StatefulSet"))["securityContext"].pop("seccompProfile"),
     "containers[engine].securityContext.seccompProfile"),
    (lambda items: _engine_sc(items).update(seccompProfile={"type": "Unconfined"}),
     "containers[engine].securityContext.seccompProfile"),
    (lambda items: _engine_sc(items).pop("allowPrivilegeEscalation"),
     "containers[engine].securityContext.allowPrivilegeEscalation"),
    (lambda items: _engine_sc(items).update(privileged=True), "containers[engine].securityContext.privileged"),
    (lambda items: _engine_sc(items).update(capabilities={"drop": ["NET_RAW"]}),
     "containers[engine].securityContext.capabilities.drop"),
    (lambda items: _engine_sc(items).update(capabilities={"drop": ["ALL"], "add": ["SYS_NICE", "IPC_LOCK"]}),
     "containers[engine].securityContext.capabilities.add"),
    (lambda items: _pod(_find(items, "StatefulSet"))["volumes"].append(
        {"name": "host-shm", "hostPath": {"path": "/dev/shm"}}), "volumes[host-shm].hostPath"),
    (lambda items: _pod(_find(items, "StatefulSet")).update(hostNetwork=True), "spec.template.spec.hostNetwork"),
    (lambda items: _pod(_find(items, "StatefulSet")).update(hostIPC=True), "spec.template.spec.hostIPC"),
    (lambda items: _container(_find(items, "StatefulSet"), "gateway")["ports"][0].update(hostPort=5555),
     "containers[gateway].ports[orders].hostPort"),
])
def test_pod_breaks_the_restricted_profile(mutate, field_part):
    v = _mutated(mutate)
    hit = assert_violation(v, "pod-security", field_part, file="statefulset.yaml", obj="StatefulSet/tickbook")
    assert "the namespace enforces the restricted Pod Security profile" in hit.message, hit


def test_restricted_profile_allows_net_bind_service():
    def m(items):
        _engine_sc(items)["capabilities"] = {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}
    assert _mutated(m) == []


def test_workload_outside_the_checked_namespaces():
    def m(items):  # a misspelt namespace: no Namespace document, so no known Pod Security level
        _find(items, "StatefulSet")["metadata"]["namespace"] = "tickbok"
    v = _mutated(m)
    hit = assert_violation(v, "pod-security", "metadata.namespace", obj="StatefulSet/tickbook")
    assert hit.message.startswith("namespace 'tickbok' is not among the Namespaces checked (tickbook)"), hit


def test_restricted_profile_is_checked_only_with_the_namespace():
    def m(items):  # the namespace (and so its admission) is not among the inputs
        items[:] = [x for x in items if x[1]["kind"] != "Namespace"]
        _engine_sc(items)["allowPrivilegeEscalation"] = True
    assert _mutated(m) == []


# --------------------------------------------------------------------------- policy: sub-rules on rendered overlays
# One failing case for each sub-rule the cases above leave out, on the manifests Kustomize
# renders (what is deployed), each asserting the rule's own message.


def _rendered_mutated(rendered, overlay, mutate):
    docs = [d for d in yaml.safe_load_all(rendered[overlay].read_text()) if d]
    items = [(rendered[overlay].name, d) for d in docs]
    assert check.check_documents(items) == [], "the rendered overlay must pass before it is mutated"
    mutate(items)
    return check.check_documents(items)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_priority_class_below_the_minimum(rendered, overlay):
    def m(items):
        _find(items, "PriorityClass")["value"] = check.MIN_PRIORITY - 1
    hit = assert_violation(_rendered_mutated(rendered, overlay, m), "priority-class", "priorityClassName")
    assert f"has value {check.MIN_PRIORITY - 1} < {check.MIN_PRIORITY}" in hit.message, hit


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_runtime_class_not_defined(rendered, overlay):
    def m(items):
        items[:] = [(f, d) for f, d in items if d["kind"] != "RuntimeClass"]
    hit = assert_violation(_rendered_mutated(rendered, overlay, m), "runtime-class", "spec.template.spec.runtimeClassName")
    assert hit.message == "RuntimeClass 'tickbook-tuned' is not defined in the checked manifests", hit


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_two_volumes_mounted_at_dev_shm(rendered, overlay):
    def m(items):  # the gateway gets a /dev/shm of its own: it would never see the matcher's rings
        sts = _find(items, "StatefulSet")
        shm = next(x for x in _pod(sts)["volumes"] if x["name"] == "shm")
        _pod(sts)["volumes"].append({**copy.deepcopy(shm), "name": "shm-gateway"})
        for mount in _container(sts, "gateway")["volumeMounts"]:
            if mount["mountPath"] == "/dev/shm":
                mount["name"] = "shm-gateway"
    hit = assert_violation(_rendered_mutated(rendered, overlay, m), "shm-memory", "spec.template.spec.volumes")
    assert "containers mount different volumes at /dev/shm (['shm', 'shm-gateway'])" in hit.message, hit


def test_hugepages_request_not_equal_to_limit(rendered):
    def m(items):
        _container(_find(items, "StatefulSet"), "bridge")["resources"]["requests"]["hugepages-2Mi"] = "256Mi"
    v = _rendered_mutated(rendered, "fpga", m)
    hit = assert_violation(v, "guaranteed-qos", "containers[bridge].resources.requests.hugepages-2Mi")
    assert hit.message == "hugepages request '256Mi' != limit '512Mi'", hit


@pytest.mark.parametrize("quantity", ["500m", 0.5, "1.5"])
def test_a_fractional_device_limit(rendered, quantity):
    def m(items):
        res = _container(_find(items, "StatefulSet"), "bridge")["resources"]
        device = next(r for r in res["limits"] if check.FPGA_RESOURCE.match(r))
        res["limits"][device] = quantity
    v = _rendered_mutated(rendered, "fpga", m)
    hit = assert_violation(v, "device-in-limits", "containers[bridge].resources.limits.amd.com/xilinx_")
    assert hit.message == f"{quantity!r}: devices come in whole units", hit


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("image", ["registry.example.com/tickbook", "registry.example.com:5000/tickbook"])
def test_an_image_with_no_tag(rendered, overlay, image):
    """A registry port is not a tag."""
    def m(items):
        _container(_find(items, "StatefulSet"), "gateway")["image"] = image
    hit = assert_violation(_rendered_mutated(rendered, overlay, m), "image-pinned", "containers[gateway].image")
    assert hit.message.startswith(f"{image!r} has no tag"), hit


# --------------------------------------------------------------------------- policy: kubelet


@pytest.mark.parametrize("wrong, right", [
    ("cpuManagerPolicyy", "cpuManagerPolicy"),
    ("topologyManagerScopes", "topologyManagerScope"),
    ("reservedSystemCpus", "reservedSystemCPUs"),
    ("memoryManagerpolicy", "memoryManagerPolicy"),
])
def test_kubelet_misspelled_field(wrong, right):
    doc = load_kubelet()
    doc[wrong] = doc.pop(right)
    v = assert_violation(kubelet_violations(doc), "kubelet-unknown-field", wrong,
                         file="kubelet-config.yaml", obj="KubeletConfiguration")
    assert f"did you mean {right!r}" in v.message


def test_kubelet_unknown_field():
    doc = load_kubelet()
    doc["isolatedCPUs"] = "2-15"
    assert_violation(kubelet_violations(doc), "kubelet-unknown-field", "isolatedCPUs")


def test_kubelet_unknown_nested_field():
    doc = load_kubelet()
    doc["reservedMemory"][0]["numa"] = 0
    assert_violation(kubelet_violations(doc), "kubelet-unknown-field", "reservedMemory[0].numa")


def test_kubelet_misspelled_cpu_manager_option():
    doc = load_kubelet()
    doc["cpuManagerPolicyOptions"] = {"full-pcpu-only": "true"}
    v = kubelet_violations(doc)
    assert_violation(v, "kubelet-unknown-field", "cpuManagerPolicyOptions.full-pcpu-only")
    assert_violation(v, "kubelet-required", "full-pcpus-only")


@pytest.mark.parametrize("field, value", [
    ("cpuManagerPolicy", "Static"),             # the CPU manager's names are lower case
    ("memoryManagerPolicy", "static"),          # ... the memory manager's are capitalised
    ("topologyManagerPolicy", "single-numa"),
    ("topologyManagerScope", "numa"),
    ("reservedSystemCPUs", "0-1;16-17"),
    ("reservedSystemCPUs", "3-1"),
])
def test_kubelet_bad_value(field, value):
    doc = load_kubelet()
    doc[field] = value
    assert_violation(kubelet_violations(doc), "kubelet-value", field)


def test_kubelet_option_value_must_be_a_string_bool():
    doc = load_kubelet()
    doc["cpuManagerPolicyOptions"]["full-pcpus-only"] = "yes"
    assert_violation(kubelet_violations(doc), "kubelet-value", "cpuManagerPolicyOptions.full-pcpus-only")


def test_kubelet_full_pcpus_only_requires_static_policy():
    doc = load_kubelet()
    doc["cpuManagerPolicy"] = "none"
    v = kubelet_violations(doc)
    assert_violation(v, "kubelet-conflict", "cpuManagerPolicyOptions")
    assert_violation(v, "kubelet-required", "cpuManagerPolicy")


def test_kubelet_reserved_memory_inconsistent_with_reservations():
    doc = load_kubelet()
    doc["kubeReserved"]["memory"] = "2Gi"   # reservedMemory still sums to 2548Mi
    v = assert_violation(kubelet_violations(doc), "kubelet-conflict", "reservedMemory")
    assert "2548Mi" in v.message and "3572Mi" in v.message


def test_kubelet_reserved_memory_missing_with_static_memory_manager():
    doc = load_kubelet()
    del doc["reservedMemory"]
    assert_violation(kubelet_violations(doc), "kubelet-conflict", "reservedMemory")


def test_kubelet_default_eviction_threshold_is_counted():
    # Without evictionHard the kubelet's default memory.available (100Mi) is reserved too.
    doc = load_kubelet()
    del doc["evictionHard"]
    assert_violation(kubelet_violations(doc), "kubelet-conflict", "reservedMemory")
    doc["reservedMemory"] = [{"numaNode": 0, "limits": {"memory": "1124Mi"}},
                             {"numaNode": 1, "limits": {"memory": "1Gi"}}]
    assert kubelet_violations(doc) == []


def test_kubelet_percentage_eviction_with_static_memory_manager():
    doc = load_kubelet()
    doc["evictionHard"]["memory.available"] = "5%"
    assert_violation(kubelet_violations(doc), "kubelet-conflict", "evictionHard.memory.available")


def test_kubelet_reserved_cpus_with_reserved_cgroups():
    doc = load_kubelet()
    doc["systemReservedCgroup"] = "/system.slice"
    assert_violation(kubelet_violations(doc), "kubelet-conflict", "reservedSystemCPUs")


def test_kubelet_exclusive_cpu_options():
    doc = load_kubelet()
    doc["cpuManagerPolicyOptions"]["distribute-cpus-across-cores"] = "true"
    assert_violation(kubelet_violations(doc), "kubelet-conflict", "cpuManagerPolicyOptions")


def test_kubelet_align_by_socket_with_single_numa_node():
    doc = load_kubelet()
    doc["cpuManagerPolicyOptions"]["align-by-socket"] = "true"
    assert_violation(kubelet_violations(doc), "kubelet-conflict", "align-by-socket")


def test_kubelet_static_cpu_manager_without_reservation():
    doc = load_kubelet()
    del doc["reservedSystemCPUs"]
    v = kubelet_violations(doc)
    assert_violation(v, "kubelet-conflict", "reservedSystemCPUs")
    assert_violation(v, "kubelet-required", "reservedSystemCPUs")


def test_kubelet_static_memory_manager_with_topology_none():
    doc = load_kubelet()
    doc["topologyManagerPolicy"] = "none"
    assert_violation(kubelet_violations(doc), "kubelet-conflict", "memoryManagerPolicy")


# --------------------------------------------------------------------------- small parts


@pytest.mark.parametrize("text, value", [
    ("2", 2), (2, 2), ("500m", 0.5), ("1Gi", 2**30), ("1274Mi", 1274 * 2**20), ("1e3", 1000), ("1k", 1000),
])
def test_parse_quantity(text, value):
    assert check.parse_quantity(text) == check.Decimal(str(value))


def test_parse_cpuset():
    assert check.parse_cpuset("0,16,32,48") == [0, 16, 32, 48]
    assert check.parse_cpuset("0-1,16-17") == [0, 1, 16, 17]
    with pytest.raises(ValueError):
        check.parse_cpuset("0-")


def test_documented_routing_examples_follow_the_rule():
    """docs/deploy.md's routing table: shard = crc32(utf-8 symbol) mod replicas."""
    text = (REPO / "docs" / "deploy.md").read_text()
    rows = re.findall(r"^\|\s*`([A-Z0-9]+)`\s*\|\s*`(0x[0-9a-f]{8})`\s*\|\s*(\d+)\s*\|\s*(\d+)\s*\|", text, re.M)
    assert len(rows) >= 4, "routing example table not found in docs/deploy.md"
    for symbol, crc, two, three in rows:
        c = zlib.crc32(symbol.encode("utf-8"))
        assert (f"0x{c:08x}", c % 2, c % 3) == (crc, int(two), int(three)), symbol


def _dockerfile_stages(text):
    """alias -> (base, body) of each stage; ${ARG} bases resolved from the ARG defaults."""
    args = dict(re.findall(r"^ARG\s+(\w+)=(\S+)", text.split("\nFROM", 1)[0], re.M))
    parts = re.split(r"^FROM\s+(\S+)\s+AS\s+(\S+)\s*$", text, flags=re.M | re.I)
    return {alias: (re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], base), body)
            for base, alias, body in zip(parts[1::3], parts[2::3], parts[3::3])}


def _dockerfile_chain(stages, alias):
    """The stage, the stage it is built FROM, ..., down to the external image."""
    chain = [alias]
    while chain[-1] in stages:
        chain.append(stages[chain[-1]][0])
    return chain


def test_dockerfile_targets():
    stages = _dockerfile_stages((REPO / "Dockerfile").read_text())
    runtime, sim = _dockerfile_chain(stages, "runtime"), _dockerfile_chain(stages, "sim")
    # both on Python 3.11 slim, pinned by digest, through the same dependency layers and user
    for chain in (runtime, sim):
        assert re.fullmatch(r"python:3\.11-slim@sha256:[0-9a-f]{64}", chain[-1]), chain
        assert "deps" in chain, chain
    # ... and each target installs the package and drops to the numeric user
    for alias in ("runtime", "sim"):
        body = stages[alias][1]
        assert "COPY --from=build /wheels" in body and re.search(r"^USER 10001:10001$", body, re.M), alias
    sim_text = "".join(stages[a][1] for a in sim if a in stages)
    runtime_text = "".join(stages[a][1] for a in runtime if a in stages)
    assert "iverilog" in sim_text and "iverilog" not in runtime_text
    # cocotb comes from the sim lock, which only the sim target installs
    assert "requirements/sim.lock" in sim_text and "sim.lock" not in runtime_text
    assert re.search(r"^cocotb==", (REPO / "requirements" / "sim.lock").read_text(), re.M)


# --------------------------------------------------------------------------- ring segments


def _add_bridge(items, args):
    """A simulator bridge as the sim overlay adds it: the gateway's image, env and shared
    volumes, no journal, its own build folder (TICKBOOK_HDL_BUILD on an emptyDir)."""
    sts = _find(items, "StatefulSet")
    br = copy.deepcopy(_container(sts, "gateway"))
    br["name"] = "bridge"
    for k in ("ports", "readinessProbe", "startupProbe", "livenessProbe"):
        br.pop(k, None)
    br["args"] = args
    br["env"].append({"name": "TICKBOOK_HDL_BUILD", "value": "/var/cache/tickbook/hdl"})
    br["volumeMounts"] = [x for x in br["volumeMounts"] if x["name"] != "journal"] + [
        {"name": "hdl-build", "mountPath": "/var/cache/tickbook/hdl"}]
    _pod(sts)["volumes"].append({"name": "hdl-build", "emptyDir": {"sizeLimit": "256Mi"}})
    _pod(sts)["containers"].append(br)
    return sts


def test_bridge_on_the_engines_segment_is_a_second_consumer():
    """The defect the overlays had: `tickbook bridge --rings $(TICKBOOK_RINGS)` beside the engine."""
    def m(items):
        sts = _add_bridge(items, ["bridge", "--rings", "$(TICKBOOK_RINGS)"])
        _set_offload(_container(sts, "gateway"), "shadow")
    hit = assert_violation(_mutated(m), "ring-single-consumer", "containers")
    assert "'book'" in hit.message and "containers[bridge]" in hit.message and "containers[engine]" in hit.message


def test_bridge_on_its_own_segment_passes():
    def m(items):
        sts = _add_bridge(items, ["bridge", "--rings", "$(TICKBOOK_RINGS)-hw"])
        _set_offload(_container(sts, "gateway"), "shadow")
    assert _mutated(m) == []


@pytest.mark.parametrize("target", [[], ["--target", "card"]])
def test_a_bridge_without_numba_cache_dir_is_refused_whatever_its_target(target):
    """The rehearsal's finding: `tickbook bridge` imports the engine's cached codecs, so with the
    image's NUMBA_CACHE_DIR on a read-only root it cannot start at all."""
    def m(items):
        sts = _add_bridge(items, ["bridge", "--rings", "$(TICKBOOK_RINGS)-hw", *target])
        _set_offload(_container(sts, "gateway"), "shadow")
        br = _container(sts, "bridge")
        br["env"] = [e for e in br["env"] if e["name"] != "NUMBA_CACHE_DIR"]
    hit = assert_violation(_mutated(m), "writable-path", "containers[bridge].env")
    assert "NUMBA_CACHE_DIR not set" in hit.message


def test_hw_segment_without_a_gateway_creating_it():
    def m(items):  # gateway left at --offload sw: nobody creates book-hw
        _add_bridge(items, ["bridge", "--rings", "$(TICKBOOK_RINGS)-hw"])
    hit = assert_violation(_mutated(m), "ring-owner", "containers[bridge].args")
    assert "'book-hw'" in hit.message


def test_gateway_segment_without_a_server():
    def m(items):  # --offload shadow but no bridge: book-hw never gets a server
        _set_offload(_container(_find(items, "StatefulSet"), "gateway"), "shadow")
    hit = assert_violation(_mutated(m), "ring-owner", "containers[gateway].args")
    assert "'book-hw'" in hit.message


def test_unknown_cli_subcommand():
    def m(items):
        _container(_find(items, "StatefulSet"), "engine")["args"] = ['exec tickbook matcher --rings "${TICKBOOK_RINGS}"']
    assert_violation(_mutated(m), "cli-subcommand", "containers[engine].args")


def test_policy_knows_the_cli_subcommands():
    import argparse

    from tickbook.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) == check.CLI_SUBCOMMANDS
