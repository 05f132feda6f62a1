# syntax=docker/dockerfile:1
# One image for every aiub service; the command picks the service:
#   docker run aiub gateway --host 0.0.0.0     docker run aiub worker --provider vllm
# compose.yaml builds it once and runs it as each service.

# Pinned: the Python the project is tested on (3.11.7), slim Debian bookworm.
ARG PYTHON_IMAGE=python:3.11.7-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    UV_PROJECT_ENVIRONMENT=/opt/aiub UV_PYTHON_DOWNLOADS=never UV_NO_CACHE=1 UV_COMPILE_BYTECODE=1
WORKDIR /src
# uv from its hashed pin; then the runtime part of uv.lock, exactly as locked (./dev lock),
# before the code, so code changes reuse this layer. The test extra stays out of the image.
COPY deploy/uv.txt ./deploy/uv.txt
RUN pip install --require-hashes --no-deps -r deploy/uv.txt
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --locked --no-install-project --no-editable --python /usr/local/bin/python3
COPY shared ./shared
COPY services ./services
COPY cli ./cli
RUN uv sync --locked --no-editable --python /usr/local/bin/python3

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
