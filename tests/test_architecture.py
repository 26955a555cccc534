"""The arrows of docs/architecture.md, checked on the source: an import that points the wrong way
fails here. `python -m testkit.imports` lists every arrow with where it is made."""

from pathlib import Path

from testkit import imports

SEEDED = {
    # each a file that breaks one rule, in a scratch checkout
    "engine/leaky.py": "def f():\n    from offload import ring\n",
    "offload/upward.py": "import tickbook.cli\n",
    "hdl/sim/kit.py": "from testkit.flows import random_records\n",
    "engine/matcher.py": "import zmq\n",
}


def test_every_import_between_parts_points_an_allowed_way():
    assert imports.violations(imports.all_imports()) == []


def test_the_engine_modules_import_each_other_without_a_cycle():
    assert imports.engine_cycles(imports.all_imports()) == []


def test_the_check_sees_the_imports_of_every_part():
    found = {(i.part, i.target) for i in imports.between_parts(imports.all_imports())}
    # the arrows the product is built on: if these vanish the scan is reading nothing
    for arrow in [("offload", "engine"), ("hdl", "engine"), ("hdl", "offload"), ("tickbook", "engine"),
                  ("tickbook", "offload"), ("tickbook", "hdl"), ("tests", "testkit")]:
        assert arrow in found


def _scratch(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        f = tmp_path / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(text)
    return tmp_path


def test_a_wrong_arrow_is_reported_with_its_file_and_line(tmp_path):
    root = _scratch(tmp_path, SEEDED)
    bad = imports.violations(imports.all_imports(root))
    assert "engine/leaky.py:2: engine may not import offload (offload)" in bad
    assert "offload/upward.py:1: offload may not import tickbook (tickbook.cli)" in bad
    assert "hdl/sim/kit.py:1: hdl may not import testkit (testkit.flows)" in bad
    assert "engine/matcher.py:1: the matcher's hot path imports zmq" in bad
    assert len(bad) == 4


def test_the_cocotb_tests_beside_the_rtl_may_use_the_test_kit(tmp_path):
    root = _scratch(tmp_path, {"hdl/tb/test_x.py": "from testkit.flows import random_records\n"})
    assert imports.violations(imports.all_imports(root)) == []


def test_a_deferred_import_that_closes_a_circle_is_a_cycle(tmp_path):
    root = _scratch(tmp_path, {
        "engine/__init__.py": "",
        "engine/a.py": "from engine.b import x\n",
        "engine/b.py": "def x():\n    from engine.a import y\n",
    })
    assert imports.engine_cycles(imports.all_imports(root)) == [["engine.a", "engine.b", "engine.a"]]


def test_relative_imports_resolve_to_their_part(tmp_path):
    root = _scratch(tmp_path, {"engine/lobster/__init__.py": "", "engine/lobster/read.py": "from ..records import X\nfrom . import y\n"})
    got = [i.module for i in imports.imports_of(root / "engine/lobster/read.py", root)]
    assert got == ["engine.records", "engine.lobster"]


def test_the_wheel_and_the_image_hold_every_runtime_part_and_no_test_kit():
    import tomllib

    from testkit.imports import REPO

    include = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    runtime = {"tickbook", "engine", "offload", "hdl"}
    assert {p.rstrip("*") for p in include} == runtime
    copied = {line.split()[1] for line in (REPO / "Dockerfile").read_text().splitlines() if line.startswith("COPY ") and "--from" not in line}
    assert runtime <= copied, f"the image's build stage does not copy {sorted(runtime - copied)}"
    ignored = set((REPO / ".dockerignore").read_text().split())
    assert {"testkit", "tests", "hdl/tb", "benchmarks"} <= ignored


def test_the_built_wheel_holds_the_rtl_and_its_headers_and_no_tests(tmp_path):
    import shutil
    import subprocess
    import sys
    import zipfile

    from testkit.imports import REPO

    # built from a copy: setuptools leaves its build/lib in the source tree, and a file left
    # there by an earlier layout would go into the wheel
    src = tmp_path / "src"
    for name in ("pyproject.toml", "README.md"):
        src.mkdir(exist_ok=True)
        shutil.copy(REPO / name, src / name)
    for part in ("tickbook", "engine", "offload", "hdl"):
        shutil.copytree(REPO / part, src / part, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path), str(src)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("tickbook-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    rtl = {f"hdl/rtl/{p.name}" for p in (REPO / "hdl/rtl").iterdir() if p.suffix in (".v", ".vh")}
    assert rtl and rtl <= names, f"missing from the wheel: {sorted(rtl - names)}"
    assert {"tickbook/cli.py", "hdl/sim/tb_file.v", "hdl/sim/tb_book.v", "hdl/sim/tb_bridge.v",
            "hdl/sim/tb_bridge.vlt", "engine/default_venue.toml"} <= names
    assert not [n for n in names if n.startswith(("testkit/", "tests/", "hdl/tb/", "benchmarks/"))]
