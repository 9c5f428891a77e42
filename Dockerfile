# syntax=docker/dockerfile:1
# Three targets:
#   docker build --target bot -t memebot:bot .      bots on queue.backend: redis: no torch, no model
#   docker build --target cpu -t memebot:cpu .      the bot image plus the CPU model stack: the tiny
#                                                    demo, single-box CPU bots, CPU-only workers
#   docker build --target cuda -t memebot:cuda .    GPU workers and single-box GPU bots
#                                                    (needs the NVIDIA container toolkit on the host)
# All run as the non-root user memebot; /app/data holds the job store and results, /models (cpu and cuda)
# the weights (mount both as volumes so they outlive the container): a model downloaded for offline use
# goes in /models/<name> (its entry says path: /models/<name>), the Hugging Face cache in /models/hub.

FROM python:3.11-slim AS bot
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
RUN useradd --create-home --uid 1000 memebot
WORKDIR /app
COPY pyproject.toml README.md ./
COPY requirements ./requirements
COPY bot ./bot
COPY generators ./generators
# Only the base dependencies, at the locked versions: the "models" extra (torch, diffusers,
# transformers) is the workers'.
RUN pip install --require-hashes -r requirements/bot.lock && pip install --no-deps --no-build-isolation .
COPY config.yaml ./
RUN mkdir -p /app/data && chown memebot:memebot /app/data
USER memebot
VOLUME ["/app/data"]
EXPOSE 8080
ENTRYPOINT ["memebot"]
CMD ["run"]

FROM bot AS cpu
ENV HF_HOME=/models
USER root
# The model stack at the locked versions, torch's CPU build from PyTorch's own index.
RUN pip install --require-hashes --extra-index-url https://download.pytorch.org/whl/cpu -r requirements/cpu.lock \
    && mkdir -p /models && chown memebot:memebot /models
USER memebot
VOLUME ["/app/data", "/models"]

FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04 AS cuda
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 HF_HOME=/models VIRTUAL_ENV=/opt/venv PATH=/opt/venv/bin:$PATH
# Ubuntu's python3 moves with the pinned base image; pinning its Debian revision would break the build.
# torch.compile needs a C compiler and Python's headers: Triton builds its GPU launcher with them on first
# use, and without them every compiled model would fall back to eager (or fail) on a member's first job.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv python3-dev gcc g++ libc6-dev \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 1001 memebot \
    && python3 -m venv /opt/venv
WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY generators ./generators
# PyPI's Linux torch wheels are CUDA builds. This image's Python is Ubuntu's 3.12, which the locks (made
# for CPython 3.11) do not cover, so it resolves within pyproject.toml's bounds; on a 3.11 GPU host use
# requirements/gpu.lock.
# hadolint reads '.[models]' as an unpinned package: it is this project with its models extra.
# hadolint ignore=DL3013
RUN pip install torch==2.13.0 && pip install '.[models]'
COPY config.yaml ./
RUN mkdir -p /app/data /models && chown memebot:memebot /app/data /models
USER memebot
VOLUME ["/app/data", "/models"]
EXPOSE 8080
ENTRYPOINT ["memebot"]
CMD ["run"]
