# One image for the API and the workers: `docker compose build` makes both.
#   CPU (default):  docker build -t pruneboard .
#   CUDA workers:   docker build --build-arg TORCH_VARIANT=cu128 -t pruneboard-worker .
# TORCH_VARIANT is a wheel index of download.pytorch.org: cpu, cu126, cu128, ...
FROM python:3.11-slim

ARG TORCH_VERSION=2.13.0
ARG TORCH_VARIANT=cpu

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# torch first and on its own: the largest layer, and the one that changes least often.
RUN pip install "torch==${TORCH_VERSION}" \
        --index-url "https://download.pytorch.org/whl/${TORCH_VARIANT}"

COPY . .
# Editable, so that the API, the workers and alembic all run the code in /app, next to
# alembic/ and the static frontend. pyproject asks only for torch>=2.3: the build above stays.
RUN pip install -e . \
    && useradd --system --uid 10001 --home-dir /app pruneboard \
    && mkdir -p /artifacts /datasets \
    && chown pruneboard /artifacts

USER pruneboard
EXPOSE 8000
CMD ["uvicorn", "backend.main:app", "--host", "0.0.0.0", "--port", "8000", "--timeout-graceful-shutdown", "5"]
