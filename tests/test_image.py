"""The image is reproducible (docs/deploy.md, "The image"): read the Dockerfile and the locks.

Base images pinned by digest, the dependencies installed from a lock with hashes in a layer that
comes before anything else is copied (so a source change does not reinstall numpy and numba),
the wheel installed with --no-deps, and locks that pin what pyproject.toml asks for. Offline:
no docker, no network. Each checker is also run on a small broken input, so that a check which
passes cannot be one that passes everything.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = (REPO / "Dockerfile").read_text()
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
LOCKS = {name: (REPO / "requirements" / name).read_text()
         for name in ("runtime.lock", "build.lock", "sim.lock")}
TARGETS = {"runtime": ["runtime.lock"], "sim": ["runtime.lock", "sim.lock"]}
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
HASH = re.compile(r"--hash=sha256:[0-9a-f]{64}\b")


# --- reading a Dockerfile ----------------------------------------------------------------------

@dataclass
class Stage:
    name: str
    base: str                                   # the FROM image, ARGs substituted
    steps: list[tuple[str, str]] = field(default_factory=list)   # (INSTRUCTION, arguments)


def logical_lines(text: str) -> list[str]:
    """Instructions with their continuation lines joined, comments and blank lines dropped."""
    lines, buf = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            buf += line[:-1].rstrip() + " "
            continue
        lines.append(buf + line)
        buf = ""
    if buf:
        lines.append(buf)
    return lines


def parse_stages(text: str) -> dict[str, Stage]:
    args: dict[str, str] = {}
    stages: dict[str, Stage] = {}
    current = None
    for line in logical_lines(text):
        keyword, _, rest = line.partition(" ")
        keyword, rest = keyword.upper(), rest.strip()
        if keyword == "ARG" and current is None:            # a global ARG: usable in FROM
            name, _, default = rest.partition("=")
            args[name] = default.strip("\"'")
        elif keyword == "FROM":
            words = [w for w in rest.split() if not w.startswith("--")]
            image = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), ""), words[0])
            name = words[2] if len(words) > 2 and words[1].upper() == "AS" else f"#{len(stages)}"
            current = stages[name] = Stage(name, image)
        elif current is not None:
            current.steps.append((keyword, rest))
    return stages


def unpinned_bases(text: str) -> list[str]:
    """The FROM images (not earlier stages) without @sha256:<64 hex>."""
    stages = parse_stages(text)
    return [s.base for s in stages.values() if s.base not in stages and not DIGEST.search(s.base)]


def external_bases(text: str) -> set[str]:
    stages = parse_stages(text)
    return {s.base for s in stages.values() if s.base not in stages}


def steps_of(text: str, target: str) -> list[tuple[str, str]]:
    """Every instruction that builds `target`, its parent stages' first."""
    stages = parse_stages(text)
    stage = stages[target]
    parent = steps_of(text, stage.base) if stage.base in stages else []
    return parent + stage.steps


def pip_installs(run: str) -> list[list[str]]:
    """The arguments of each `pip install` in a RUN's shell command."""
    found = []
    for command in re.split(r"&&|\|\||;|\|", run):
        words = shlex.split(command)
        for i, word in enumerate(words[:-1]):
            if word.rsplit("/", 1)[-1] in ("pip", "pip3") and words[i + 1] == "install":
                found.append(words[i + 2:])
    return found


def requirement_files(args: list[str]) -> list[str]:
    files = [b for a, b in zip(args, args[1:]) if a in ("-r", "--requirement")]
    return files + [a.split("=", 1)[1] for a in args if a.startswith("--requirement=")]


def copies_only_locks(copy_args: str) -> bool:
    """A COPY of files under requirements/ alone (the one kind allowed before the lock's layer)."""
    words = shlex.split(copy_args)
    if any(w.startswith("--from") for w in words):
        return False
    sources = [w for w in words if not w.startswith("--")][:-1]
    return bool(sources) and all(s.startswith("requirements/") for s in sources)


def lock_install_problems(text: str, target: str, lock: str) -> list[str]:
    """`lock` must be installed in `target` with --require-hashes --no-deps, copied from
    requirements/, and before anything else is copied in: a COPY above the lock's layer (the
    sources, the wheel) would invalidate it, and reinstall every dependency, on every change."""
    steps = steps_of(text, target)
    for i, (keyword, args) in enumerate(steps):
        installs = [a for a in pip_installs(args) if keyword == "RUN"
                    and any(Path(f).name == lock for f in requirement_files(a))]
        if installs:
            break
    else:
        return [f"{target}: {lock} is never installed"]
    problems = [f"{target}: {lock} installed without {flag}"
                for flag in ("--require-hashes", "--no-deps") if flag not in installs[0]]
    before = [args for keyword, args in steps[:i] if keyword in ("COPY", "ADD")]
    problems += [f"{target}: COPY {args} comes before {lock} is installed"
                 for args in before if not copies_only_locks(args)]
    if not any(f"requirements/{lock}" in shlex.split(args) for args in before):
        problems.append(f"{target}: requirements/{lock} is not copied in before its install")
    return problems


def wheel_install_problems(text: str, target: str) -> list[str]:
    wheels = [a for keyword, args in steps_of(text, target) if keyword == "RUN"
              for a in pip_installs(args) if any(w.endswith(".whl") for w in a)]
    if not wheels:
        return [f"{target}: no wheel is installed"]
    return [f"{target}: pip install {' '.join(a)} resolves dependencies: add --no-deps"
            for a in wheels if "--no-deps" not in a]


# --- reading a lock ----------------------------------------------------------------------------

def lock_entries(text: str) -> list[str]:
    """Each requirement of a requirements file, its continuation (hash) lines joined."""
    return [line for line in logical_lines(text) if not line.startswith("-")]


def unhashed(text: str) -> list[str]:
    return [entry for entry in lock_entries(text) if not HASH.search(entry)]


def pins(text: str) -> dict[str, str | None]:
    """Package -> its `==` version; None where the lock does not pin one exact version."""
    found = {}
    for entry in lock_entries(text):
        req = Requirement(entry.split(" --hash")[0].strip())
        specs = list(req.specifier)
        exact = len(specs) == 1 and specs[0].operator == "==" and "*" not in specs[0].version
        found[canonicalize_name(req.name)] = specs[0].version if exact else None
    return found


def unmet(requirements: list[str], lock: str) -> list[str]:
    """The requirements the lock does not pin `==` to a version that satisfies them."""
    pinned = pins(lock)
    problems = []
    for text in requirements:
        req = Requirement(text)
        version = pinned.get(canonicalize_name(req.name))
        if version is None:
            problems.append(f"{text}: not pinned with == in the lock")
        elif not req.specifier.contains(Version(version), prereleases=True):
            problems.append(f"{text}: the lock pins {version}")
    return problems


def disagreements(lock_a: str, lock_b: str) -> list[str]:
    a, b = pins(lock_a), pins(lock_b)
    return [f"{name}: {a[name]} vs {b[name]}" for name in sorted(a.keys() & b.keys()) if a[name] != b[name]]


# --- the Dockerfile ----------------------------------------------------------------------------

GOOD = """\
ARG BASE=python:3.11-slim@sha256:{digest}
FROM ${{BASE}} AS base
FROM base AS build
COPY tickbook ./tickbook
RUN pip wheel --no-deps --wheel-dir /wheels .
FROM base AS runtime
COPY requirements/runtime.lock /tmp/runtime.lock
RUN pip install --require-hashes --no-deps -r /tmp/runtime.lock
COPY --from=build /wheels /wheels
RUN pip install --no-deps /wheels/*.whl && rm -rf /wheels
""".format(digest="a" * 64)


def test_the_checkers_pass_a_good_dockerfile():
    assert unpinned_bases(GOOD) == []
    assert lock_install_problems(GOOD, "runtime", "runtime.lock") == []
    assert wheel_install_problems(GOOD, "runtime") == []


def test_every_base_image_is_pinned_by_digest():
    assert parse_stages(DOCKERFILE), "no FROM found"
    assert unpinned_bases(DOCKERFILE) == []


@pytest.mark.parametrize("base", [
    "python:3.11-slim",                                    # a tag alone
    "python:3.11-slim@sha256:" + "a" * 63,                 # a digest one digit short
    "python:3.11-slim@sha256:" + "A" * 64,                 # not lower-case hex
])
def test_an_unpinned_base_is_caught(base):
    assert unpinned_bases(GOOD.replace(GOOD.splitlines()[0], f"ARG BASE={base}")) == [base]
    assert unpinned_bases(f"FROM {base} AS build\nFROM build AS runtime\n") == [base]


def test_every_stage_starts_from_the_same_base():
    assert len(external_bases(DOCKERFILE)) == 1
    two = GOOD.replace("FROM base AS runtime", "FROM python:3.11-slim@sha256:" + "b" * 64 + " AS runtime")
    assert len(external_bases(two)) == 2


@pytest.mark.parametrize("target", TARGETS)
def test_the_locks_are_installed_before_anything_else_is_copied(target):
    for lock in TARGETS[target]:
        assert lock_install_problems(DOCKERFILE, target, lock) == []


def test_a_lock_installed_after_the_sources_is_caught():
    late = GOOD.replace("COPY requirements/runtime.lock", "COPY tickbook ./tickbook\nCOPY requirements/runtime.lock")
    assert lock_install_problems(late, "runtime", "runtime.lock") == [
        "runtime: COPY tickbook ./tickbook comes before runtime.lock is installed"]
    # the same, the sources copied into a parent stage
    inherited = GOOD.replace("FROM base AS runtime", "FROM build AS runtime")
    assert lock_install_problems(inherited, "runtime", "runtime.lock") == [
        "runtime: COPY tickbook ./tickbook comes before runtime.lock is installed"]


def test_a_lock_installed_without_hashes_or_with_dependencies_is_caught():
    assert lock_install_problems(GOOD.replace("--require-hashes ", ""), "runtime", "runtime.lock") == [
        "runtime: runtime.lock installed without --require-hashes"]
    assert lock_install_problems(GOOD.replace("--no-deps -r", "-r"), "runtime", "runtime.lock") == [
        "runtime: runtime.lock installed without --no-deps"]


def test_a_lock_never_installed_or_never_copied_is_caught():
    assert lock_install_problems(GOOD, "runtime", "sim.lock") == ["runtime: sim.lock is never installed"]
    uncopied = GOOD.replace("COPY requirements/runtime.lock /tmp/runtime.lock\n", "")
    assert lock_install_problems(uncopied, "runtime", "runtime.lock") == [
        "runtime: requirements/runtime.lock is not copied in before its install"]


@pytest.mark.parametrize("target", TARGETS)
def test_the_wheel_is_installed_without_its_dependencies(target):
    assert wheel_install_problems(DOCKERFILE, target) == []


def test_a_wheel_installed_with_its_dependencies_is_caught():
    resolving = GOOD.replace("pip install --no-deps /wheels", "pip install /wheels")
    assert wheel_install_problems(resolving, "runtime") == [
        "runtime: pip install /wheels/*.whl resolves dependencies: add --no-deps"]
    assert wheel_install_problems(GOOD, "base") == ["base: no wheel is installed"]


@pytest.mark.parametrize("target", TARGETS)
def test_the_image_keeps_its_user_ports_and_entrypoint(target):
    steps = steps_of(DOCKERFILE, target)
    assert [args for keyword, args in steps if keyword == "USER"][-1] == "10001:10001"
    assert any(k == "ENV" and "NUMBA_CACHE_DIR=" in a for k, a in steps)
    exposed = {port for k, a in steps if k == "EXPOSE" for port in a.split()}
    assert {"5555", "5556", "8080"} <= exposed           # orders, market data, health
    assert ("ENTRYPOINT", '["tickbook"]') in steps


# --- the locks ---------------------------------------------------------------------------------

def test_the_runtime_lock_pins_every_project_dependency():
    assert unmet(PYPROJECT["project"]["dependencies"], LOCKS["runtime.lock"]) == []


def test_a_missing_unpinned_or_wrong_dependency_is_caught():
    lock = "numpy==2.4.6 \\\n    --hash=sha256:" + "0" * 64 + "\npandas>=2.1 \\\n    --hash=sha256:" + "1" * 64 + "\n"
    assert unmet(["numpy>=1.26"], lock) == []
    assert unmet(["numpy>=3"], lock) == ["numpy>=3: the lock pins 2.4.6"]
    assert unmet(["pandas>=2.1"], lock) == ["pandas>=2.1: not pinned with == in the lock"]
    assert unmet(["pyzmq>=25"], lock) == ["pyzmq>=25: not pinned with == in the lock"]


def test_the_build_lock_pins_the_build_requirements():
    assert unmet(PYPROJECT["build-system"]["requires"], LOCKS["build.lock"]) == []


@pytest.mark.parametrize("lock", LOCKS)
def test_every_locked_requirement_has_a_hash(lock):
    assert lock_entries(LOCKS[lock]), f"{lock} has no requirements"
    assert unhashed(LOCKS[lock]) == []


@pytest.mark.parametrize("lock", LOCKS)
def test_every_locked_requirement_is_pinned_to_one_version(lock):
    assert [name for name, version in pins(LOCKS[lock]).items() if version is None] == []


def test_a_requirement_without_a_hash_is_caught():
    lock = ("# via nothing\nnumpy==2.4.6 \\\n    --hash=sha256:" + "0" * 64 + "\n    # via x\n"
            "pandas==3.1.1\n"
            "pyzmq==27.3.0 \\\n    --hash=md5:" + "0" * 32 + "\n")
    assert unhashed(lock) == ["pandas==3.1.1", "pyzmq==27.3.0 --hash=md5:" + "0" * 32]


def test_the_sim_lock_has_cocotb():
    assert unmet(["cocotb>=2.0,<3"], LOCKS["sim.lock"]) == []
    assert unmet(["cocotb>=2.0,<3"], LOCKS["runtime.lock"]) != []     # the check can fail


def test_the_locks_agree_on_every_package_they_share():
    for lock in ("sim.lock", "build.lock"):
        assert disagreements(LOCKS["runtime.lock"], LOCKS[lock]) == []
    assert disagreements("numpy==2.4.6\n", "numpy==2.4.5\n") == ["numpy: 2.4.6 vs 2.4.5"]


@pytest.mark.parametrize("lock", LOCKS)
def test_each_lock_says_how_it_was_made(lock):
    header = "".join(line for line in LOCKS[lock].splitlines(keepends=True) if line.startswith("#"))
    assert "make lock" in header
    assert "uv pip compile" in header and "--generate-hashes" in header
    assert "--python-version 3.11" in header
