# syntax=docker/dockerfile:1
# tickbook images. Two targets:
#   docker build --target runtime -t registry.example.com/tickbook:0.1.0 .
#   docker build --target sim     -t registry.example.com/tickbook-sim:0.1.0 .
# runtime: Python 3.11 slim + the package (engine, gateway, fpga bridge).
# sim:     runtime + Debian's Icarus Verilog + cocotb, for the bridge of the sim overlay.

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY tickbook ./tickbook
COPY engine ./engine
COPY offload ./offload
COPY hdl ./hdl
RUN pip wheel --no-deps --wheel-dir /wheels .

FROM python:3.11-slim AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    NUMBA_CACHE_DIR=/var/cache/tickbook/numba
COPY --from=build /wheels /wheels
RUN pip install /wheels/*.whl && rm -rf /wheels \
 && groupadd --system --gid 10001 tickbook \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin tickbook \
 && mkdir -p /var/cache/tickbook/numba && chown -R 10001:10001 /var/cache/tickbook
# Numeric user so that runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001
WORKDIR /var/lib/tickbook
EXPOSE 5555 5556
ENTRYPOINT ["tickbook"]
CMD ["--help"]

FROM runtime AS sim
USER root
RUN apt-get update \
 && apt-get install -y --no-install-recommends iverilog \
 && rm -rf /var/lib/apt/lists/* \
 && pip install "cocotb>=2.0,<3"
USER 10001:10001
