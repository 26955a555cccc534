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


def load_base() -> list[tuple[str, dict]]:
    """The base resources as (file, doc), images pinned as the kustomization would pin them,
    so that the policy tests run whether or not kubectl is installed."""
    items = []
    for p in BASE_RESOURCES:
        for doc in yaml.safe_load_all(p.read_text()):
            if doc:
                items.append((p.name, doc))
    for _, doc in items:
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
    assert kinds == ["Namespace", "PriorityClass", "RuntimeClass", "Service", "StatefulSet"]
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
    assert_violation(_mutated(m), "no-exec-liveness", "containers[engine].readinessProbe.exec")


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


def test_dockerfile_targets():
    text = (REPO / "Dockerfile").read_text()
    stages = {alias: base for base, alias in re.findall(r"^FROM\s+(\S+)\s+AS\s+(\S+)", text, re.M | re.I)}
    assert stages["runtime"] == "python:3.11-slim" and stages["sim"] == "runtime"
    sim = text.split("AS sim", 1)[1]
    assert "iverilog" in sim and "cocotb" in sim


# --------------------------------------------------------------------------- ring segments


def _add_bridge(items, args):
    sts = _find(items, "StatefulSet")
    br = copy.deepcopy(_container(sts, "gateway"))
    br["name"] = "bridge"
    for k in ("ports", "readinessProbe", "startupProbe", "livenessProbe"):
        br.pop(k, None)
    br["args"] = args
    _pod(sts)["containers"].append(br)
    return sts


def test_bridge_on_the_engines_segment_is_a_second_consumer():
    """The defect the overlays had: `tickbook bridge --rings $(TICKBOOK_RINGS)` beside the engine."""
    def m(items):
        sts = _add_bridge(items, ["bridge", "--rings", "$(TICKBOOK_RINGS)"])
        _container(sts, "gateway")["args"] += ["--offload", "shadow"]
    hit = assert_violation(_mutated(m), "ring-single-consumer", "containers")
    assert "'book'" in hit.message and "containers[bridge]" in hit.message and "containers[engine]" in hit.message


def test_bridge_on_its_own_segment_passes():
    def m(items):
        sts = _add_bridge(items, ["bridge", "--rings", "$(TICKBOOK_RINGS)-hw"])
        _container(sts, "gateway")["args"] += ["--offload", "shadow"]
    assert _mutated(m) == []


def test_hw_segment_without_a_gateway_creating_it():
    def m(items):  # gateway left at --offload sw: nobody creates book-hw
        _add_bridge(items, ["bridge", "--rings", "$(TICKBOOK_RINGS)-hw"])
    hit = assert_violation(_mutated(m), "ring-owner", "containers[bridge].args")
    assert "'book-hw'" in hit.message


def test_gateway_segment_without_a_server():
    def m(items):  # --offload shadow but no bridge: book-hw never gets a server
        _container(_find(items, "StatefulSet"), "gateway")["args"] += ["--offload", "shadow"]
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
