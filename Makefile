# One-command set-up: every target that needs Python builds .venv first.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
PYTEST  := $(BIN)/python -m pytest

.PHONY: run test bench demo clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/tickbook demo

test: $(STAMP)
	$(PYTEST) -q

bench: $(STAMP)
	$(PYTEST) benchmarks -q --benchmark-enable -s

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache

# Render the Kustomize overlays and validate them offline: kubernetes-validate --strict (any
# WARN, e.g. a missing schema, fails) and the project policy (k8s/policy/check.py). docs/deploy.md
.PHONY: k8s-check
k8s-check: $(STAMP)
	@mkdir -p build/k8s
	@for o in sim fpga; do kubectl kustomize k8s/overlays/$$o > build/k8s/$$o.yaml || exit 1; done
	@out=$$($(BIN)/kubernetes-validate --strict --quiet build/k8s/sim.yaml build/k8s/fpga.yaml 2>&1); rc=$$?; \
	  if [ $$rc -ne 0 ] || [ -n "$$out" ]; then echo "$$out"; echo "k8s-check: kubernetes-validate reported failures or warnings"; exit 1; fi
	$(BIN)/python k8s/policy/check.py build/k8s/sim.yaml build/k8s/fpga.yaml k8s/kubelet/kubelet-config.yaml
