# syntax=docker/dockerfile:1
# The monitor daemon with the PostgreSQL driver: `docker build -t monitor .`, then
# `docker run --rm monitor --help`. docker-compose.yml runs it with Kafka, PostgreSQL,
# Prometheus and Grafana.

# --- build: install monitor[postgres] into a virtual environment ------------------------------
FROM python:3.12-slim AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
# pyproject.toml names README.md as the readme, so the build needs it too.
COPY pyproject.toml README.md ./
COPY monitor ./monitor
RUN pip install ".[postgres]"

# --- runtime: the virtual environment, the configs and the scripts, as a non-root user --------
FROM python:3.12-slim

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MONITOR_CONFIG=/app/config/compose.yaml

RUN groupadd --system monitor \
    && useradd --system --gid monitor --home-dir /app --shell /usr/sbin/nologin monitor \
    && mkdir /app && chown monitor:monitor /app

COPY --from=build /opt/venv /opt/venv
WORKDIR /app
# config/ holds compose.yaml (the compose deployment's config); scripts/ holds
# produce_events.py, which the compose `traffic` service runs with this image.
COPY --chown=monitor:monitor config ./config
COPY --chown=monitor:monitor scripts ./scripts

USER monitor

# /healthz, /readyz, /metrics and /api/... (http.listen in the config).
EXPOSE 9108

# Slim images have no curl: ask Python. A one-shot command (db upgrade, the traffic script)
# run from this image should disable it (compose: `healthcheck: {disable: true}`).
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:9108/healthz', timeout=4).status == 200 else 1)"]

ENTRYPOINT ["monitor"]
CMD ["run", "--config", "/app/config/compose.yaml"]
