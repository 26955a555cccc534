# One-command set-up: every target that needs Python builds .venv first. `make run` needs the
# product alone (RUN_STAMP); the tests, benchmarks and tools add their extras (STAMP).
PY        ?= python3
VENV      := .venv
BIN       := $(VENV)/bin
RUN_STAMP := $(VENV)/.runtime
STAMP     := $(VENV)/.installed
PYTEST    := $(BIN)/python -m pytest

.PHONY: run test bench demo clean

# --no-compile: no bytecode for every module of every package now (a third of the install's
# time). The compile step imports what a run imports, with bytecode writing on even where
# PYTHONDONTWRITEBYTECODE is set: without .pyc files, importing Numba alone took 0.8 s a start.
WRITE_PYC := env -u PYTHONDONTWRITEBYTECODE
$(RUN_STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --no-compile -e .
	@# compile once, side by side, what the demo and replay run: later starts load the cache
	$(WRITE_PYC) $(BIN)/tickbook compile codec matcher
	touch $@

$(STAMP): $(RUN_STAMP)
	$(BIN)/pip install --quiet --no-compile -e '.[test]'
	@# the live engine's loop too (the tests and benchmarks run it)
	$(WRITE_PYC) $(BIN)/tickbook compile
	touch $@

run: $(RUN_STAMP)
	$(BIN)/tickbook demo

# (the slowest tests listed at the end: CI has 30 minutes for all of .ci/run). A worker a core,
# a test file a worker: 509 s against 1,035 s in one process on 2 cores (2026-12-07).
# WORKERS=n sets the number (where the cores seen are more than a container's CPU quota).
test: $(STAMP)
	$(PYTEST) -q -n $(or $(WORKERS),auto) --dist loadfile --durations=15

# Every benchmark prints its figures (nothing asserts a time); pytest-benchmark's timings go to
# build/bench/latest.json. Absolute figures move by up to 50 % with the shared host's load: the
# comparison that decides is bench-gate's, side by side in one run. The slowest benchmarks are listed
# at the end (CI's 30 minutes).
BENCH_JSON := build/bench/latest.json
bench: $(STAMP)
	@mkdir -p build/bench
	$(PYTEST) benchmarks/bench_*.py -q --benchmark-enable -s -p no:cacheprovider --benchmark-json=$(BENCH_JSON) --durations=12

# The latency gate (docs/benchmarks.md#the-gate): the change against a baseline commit (BASE=rev,
# default .ci/last-landed) built in a worktree under build/bench/trees/, interleaved runs, exit 1
# on a significant regression over the calibrated threshold. History: build/bench/history.jsonl.
.PHONY: bench-gate bench-gate-proof bench-calibrate bench-report bench-peers
bench-gate: $(STAMP)
	$(BIN)/python -m benchmarks.gate run $(if $(BASE),--base $(BASE))

# the gate against a known slowdown: it must fail at +15 % and pass at +0 % (CI runs this)
bench-gate-proof: $(STAMP)
	$(BIN)/python -m benchmarks.gate prove

# A/A runs of HEAD against itself: false alarms, and with WRITE=1 new thresholds (RUNS=10)
bench-calibrate: $(STAMP)
	$(BIN)/python -m benchmarks.gate calibrate --runs $(or $(RUNS),10) $(if $(WRITE),--write)

# build/bench/report/index.html: percentile curves of A and B, history, peers (PNG, matplotlib)
bench-report: $(STAMP)
	$(BIN)/python -m benchmarks.gate report

# tickbook and the PyPI order books on one operation stream, in their own venv (build/peers-venv)
bench-peers: $(STAMP)
	$(BIN)/python benchmarks/peers/run.py $(if $(OPS),--ops $(OPS))

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache

# Render the Kustomize overlays and validate them offline: kubernetes-validate --strict (any
# WARN, e.g. a missing schema, fails) and the project policy (k8s/policy/check.py). docs/deploy.md
.PHONY: k8s-check
k8s-check: $(STAMP)
	@mkdir -p build/k8s
	@kubectl kustomize k8s/base > build/k8s/base.yaml
	@for o in sim fpga; do kubectl kustomize k8s/overlays/$$o > build/k8s/$$o.yaml || exit 1; done
	@out=$$($(BIN)/kubernetes-validate --strict --quiet build/k8s/base.yaml build/k8s/sim.yaml build/k8s/fpga.yaml 2>&1); rc=$$?; \
	  if [ $$rc -ne 0 ] || [ -n "$$out" ]; then echo "$$out"; echo "k8s-check: kubernetes-validate reported failures or warnings"; exit 1; fi
	@# one deployment at a time: each is a whole set of objects (its own PDB, NetworkPolicy...)
	@for o in base sim fpga; do $(BIN)/python k8s/policy/check.py build/k8s/$$o.yaml k8s/kubelet/kubelet-config.yaml || exit 1; done

# Regenerate requirements/*.lock (uv, sha256 hashes) and refresh the Dockerfile's base digest
# (docs/deploy.md#the-image). UPGRADE=1 bumps every pin; offline: requirements/update.sh locks
.PHONY: lock
lock:
	UPGRADE=$(UPGRADE) requirements/update.sh

# Rehearse a pod as the kubelet would (testkit/pods.py; root): POD=k8s/overlays/sim (default
# k8s/base), RESTART=1 also times a warm restart. tests/test_pod_rehearsal.py runs every pod.
.PHONY: k8s-rehearse
k8s-rehearse: $(STAMP)
	$(BIN)/python -m testkit.pods $(or $(POD),k8s/base) $(if $(RESTART),--restart)

# --- recovery: the kill test of tests/test_recovery.py, longer (docs/journal.md)
.PHONY: recovery-soak
recovery-soak: $(STAMP)
	TICKBOOK_KILL_POINTS=$${TICKBOOK_KILL_POINTS:-200} $(PYTEST) -q -s tests/test_recovery.py -k kill_anywhere

# --- Verilog order book (hdl/): tests, soak, lint, synthesis
.PHONY: hdl-test hdl-soak hdl-lint synth synth-budget
hdl-test: $(STAMP)
	$(PYTEST) -q tests/test_hdl_lint.py tests/test_hdl_sim.py tests/test_hdl_verilator.py tests/test_hdl_diff.py tests/test_hdl_reference.py tests/test_hdl_cli.py hdl/tb

hdl-soak: $(STAMP)
	HDL_SOAK=1 HDL_SOAK_N=$${HDL_SOAK_N:-10000000} HDL_SOAK_SIM=$${HDL_SOAK_SIM:-verilator} \
	  $(PYTEST) -q -s tests/test_hdl_diff.py -k soak

# the builds `include hdl/rtl/*.vh (tickbook_records.vh: python -m hdl.gen.records_header)
hdl-lint:
	for p in "-GNSYM=1 -GNORD=1 -GNLVL=1" "-GNSYM=4 -GNORD=16 -GNLVL=8" "-GNSYM=3 -GNORD=64 -GNLVL=16"; do \
	  verilator --lint-only -Wall -Ihdl/rtl $$p hdl/rtl/tickbook_book.v || exit 1; done
	for p in "-GNSYM=1 -GNORD=1 -GNLVL=1" "-GNSYM=1 -GNORD=4 -GNLVL=2" "-GNSYM=4 -GNORD=16 -GNLVL=8" "-GNSYM=3 -GNORD=5 -GNLVL=3"; do \
	  verilator --lint-only -Wall -Ihdl/rtl $$p hdl/rtl/tickbook_book_area.v || exit 1; done
	for p in "-GNSYM=1 -GNORD=1 -GNLVL=1 -GNACCT=1" "-GNSYM=3 -GNORD=5 -GNLVL=3" "-GNSYM=8 -GNORD=8192 -GNLVL=256 -GNACCT=1024" "-GNSYM=2 -GNORD=16 -GNLVL=4 -GNACCT=4096" "-GNSYM=2 -GNORD=1048576 -GNLVL=4096 -GNACCT=1048576"; do \
	  verilator --lint-only -Wall -Ihdl/rtl $$p hdl/rtl/tickbook_book_bram.v hdl/rtl/tickbook_book_ticks.v hdl/rtl/tickbook_book_buckets.v hdl/rtl/tickbook_ram.v || exit 1; done
	for p in "-GNACCT=1" "-GNACCT=5 -GGEN_W=2" "-GNACCT=1024" "-GNACCT=4096" "-GNACCT=1048576"; do \
	  verilator --lint-only -Wall -Ihdl/rtl $$p hdl/rtl/tickbook_risk.v || exit 1; done

# yosys + nextpnr-ecp5 (yowasp, the `synth` extra) for an ECP5 LFE5U-85F: the block-RAM build
# NSYM=8 NORD=8192 NLVL=256; BOOK=fast|area a register build (NSYM=1 NORD=4 NLVL=2);
# NSYM/NORD/NLVL/FREQ/SEED/SEEDS/JOBS/ROUTER/YOSYS from the environment (hdl/synth/synth.py)
$(VENV)/.synth: $(RUN_STAMP)
	$(BIN)/pip install --quiet --no-compile -e '.[synth]'
	touch $@

synth: $(VENV)/.synth
	PYTHON=$(BIN)/python hdl/synth/synth.sh

# what fits in a cycle of the same device: small register-to-register designs (hdl/synth/budget/),
# Fmax and the critical path of each (SEED, FREQ, ONLY=name from the environment; about a minute)
synth-budget: $(VENV)/.synth
	$(BIN)/python hdl/synth/budget.py

# LOBSTER sweep: the six NASDAQ sample files, book mode then match mode (docs/lobster.md).
# Fails unless every orderbook row agrees in every run.
LOBSTER_DATA ?= ../shared/data/lobster
.PHONY: lobster-sweep
lobster-sweep: $(STAMP)
	@rc=0; for mode in book match; do for z in $(LOBSTER_DATA)/LOBSTER_SampleFile_*.zip; do \
	  $(BIN)/python -m engine.lobster $$z --mode $$mode || rc=1; echo; done; done; exit $$rc

bench-rings: $(STAMP)
	$(BIN)/python benchmarks/bench_roundtrip.py
