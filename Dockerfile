# syntax=docker/dockerfile:1
# One image for every aiub service; the command picks the service:
#   docker run aiub gateway --host 0.0.0.0     docker run aiub worker --provider vllm
# compose.yaml builds it once and runs it as each service.

# Pinned: the Python the project is tested on (3.11.7), slim Debian bookworm.
ARG PYTHON_IMAGE=python:3.11.7-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/aiub
WORKDIR /src
# Dependencies first, exactly as locked (python deploy/lock.py), so code changes reuse this layer.
COPY requirements.lock ./
RUN /opt/aiub/bin/pip install --no-deps -r requirements.lock
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY services ./services
RUN /opt/aiub/bin/pip install --no-deps . && /opt/aiub/bin/pip check

FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 aiub \
    && useradd --system --uid 10001 --gid aiub --home-dir /app --no-create-home --shell /usr/sbin/nologin aiub
COPY --from=build /opt/aiub /opt/aiub
COPY config /app/config
ENV PATH=/opt/aiub/bin:$PATH \
    AIUB_CONFIG=/app/config \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /app
USER 10001:10001
# 4000: the gateway; 9464: /metrics of router, health and workers (AIUB_METRICS_PORT).
EXPOSE 4000 9464
ENTRYPOINT ["aiub"]
CMD ["--help"]
