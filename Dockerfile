# syntax=docker/dockerfile:1
# Two targets:
#   docker build --target cpu -t memebot:cpu .      bots (they hold no model with queue.backend: redis),
#                                                    the tiny demo, CPU-only workers
#   docker build --target cuda -t memebot:cuda .    GPU workers and single-box GPU bots
#                                                    (needs the NVIDIA container toolkit on the host)
# Both run as the non-root user memebot; /app/data holds the job store and results, /models the
# downloaded weights (mount both as volumes so they outlive the container).

FROM python:3.11-slim AS cpu
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 HF_HOME=/models
RUN useradd --create-home --uid 1000 memebot
WORKDIR /app
COPY pyproject.toml README.md constraints.txt ./
COPY bot ./bot
COPY generators ./generators
# The CPU wheel of torch, from PyTorch's own index, then everything else at the pinned versions.
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0 \
    && pip install -c constraints.txt .
COPY config.yaml ./
RUN mkdir -p /app/data /models && chown memebot:memebot /app/data /models
USER memebot
VOLUME ["/app/data", "/models"]
EXPOSE 8080
ENTRYPOINT ["memebot"]
CMD ["run"]

FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04 AS cuda
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 HF_HOME=/models VIRTUAL_ENV=/opt/venv PATH=/opt/venv/bin:$PATH
# Ubuntu's python3 moves with the pinned base image; pinning its Debian revision would break the build.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 1001 memebot \
    && python3 -m venv /opt/venv
WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY generators ./generators
# PyPI's Linux torch wheels are CUDA builds; constraints.txt is left out because it pins the CPU one.
RUN pip install torch==2.13.0 && pip install .
COPY config.yaml ./
RUN mkdir -p /app/data /models && chown memebot:memebot /app/data /models
USER memebot
VOLUME ["/app/data", "/models"]
EXPOSE 8080
ENTRYPOINT ["memebot"]
CMD ["run"]
