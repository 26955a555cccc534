# syntax=docker/dockerfile:1
# tickbook images. Two targets:
#   docker build --target runtime -t registry.example.com/tickbook:0.1.0 .
#   docker build --target sim     -t registry.example.com/tickbook-sim:0.1.0 .
# runtime: Python 3.11 slim + the locked dependencies + the package (engine, gateway, fpga bridge).
# sim:     the same + Debian's Icarus Verilog + cocotb, for the bridge of the sim overlay.
# Reproducible: the base is pinned by digest, the dependencies come from requirements/*.lock
# (exact versions, sha256 hashes) in layers of their own, and the wheel is installed with
# --no-deps, so a source change rebuilds the wheel, never the dependencies. `make lock`
# (requirements/update.sh) regenerates the locks and refreshes the digest (docs/deploy.md).

# The one base of every stage: a multi-arch index pinned by digest; `make lock` refreshes it.
# digest from: docker-library/repo-info, repos/python/remote/3.11-slim.md at 62e42744 (built
#   2026-08-13: Python 3.11.16, Debian trixie); the registry was not reachable to confirm it.
ARG PYTHON_BASE=python:3.11-slim@sha256:a630a63cdb314e2d138a2fca3e375e319e8568346ffafac5b980f888630ac4f1

FROM ${PYTHON_BASE} AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The wheel, built with the locked setuptools/wheel (no build isolation: nothing unpinned).
FROM base AS build
WORKDIR /src
COPY requirements/build.lock /tmp/build.lock
RUN pip install --require-hashes --no-deps -r /tmp/build.lock
COPY pyproject.toml README.md ./
COPY tickbook ./tickbook
COPY engine ./engine
COPY offload ./offload
COPY hdl ./hdl
RUN pip wheel --no-deps --no-build-isolation --wheel-dir /wheels .

# Dependencies and user: changes only with runtime.lock or the base, so it stays cached.
FROM base AS deps
ENV NUMBA_CACHE_DIR=/var/cache/tickbook/numba
COPY requirements/runtime.lock /tmp/runtime.lock
RUN pip install --require-hashes --no-deps -r /tmp/runtime.lock && rm /tmp/runtime.lock \
 && groupadd --system --gid 10001 tickbook \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin tickbook \
 && mkdir -p /var/cache/tickbook/numba && chown -R 10001:10001 /var/cache/tickbook
WORKDIR /var/lib/tickbook
# 5555 orders (ROUTER), 5556 market data (PUB), 8080 the gateway's readiness/health HTTP.
EXPOSE 5555 5556 8080
ENTRYPOINT ["tickbook"]
CMD ["--help"]

# The simulator's layers, before the wheel: a source change does not reinstall them.
FROM deps AS sim-deps
RUN apt-get update \
 && apt-get install -y --no-install-recommends iverilog \
 && rm -rf /var/lib/apt/lists/*
COPY requirements/sim.lock /tmp/sim.lock
RUN pip install --require-hashes --no-deps -r /tmp/sim.lock && rm /tmp/sim.lock

# pip check: the lock must satisfy everything the wheel declares (--no-deps installs none).
FROM deps AS runtime
COPY --from=build /wheels /wheels
RUN pip install --no-deps /wheels/*.whl && rm -rf /wheels && pip check
# Numeric user so that runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001

FROM sim-deps AS sim
COPY --from=build /wheels /wheels
RUN pip install --no-deps /wheels/*.whl && rm -rf /wheels && pip check
USER 10001:10001
