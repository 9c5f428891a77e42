# syntax=docker/dockerfile:1
# Two targets:
#   docker build --target cpu -t memebot:cpu .      (the tiny model, demos, CI-like runs)
#   docker build --target cuda -t memebot:cuda .    (GPU hosts; needs the NVIDIA container toolkit)

FROM python:3.11-slim AS cpu
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 HF_HOME=/models
RUN useradd --create-home --uid 1000 memebot
WORKDIR /app
COPY pyproject.toml README.md constraints.txt ./
COPY bot ./bot
COPY generators ./generators
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0 \
    && pip install -c constraints.txt .
COPY config.yaml ./
RUN mkdir -p /app/data /models && chown memebot:memebot /app/data /models
USER memebot
VOLUME ["/app/data", "/models"]
ENTRYPOINT ["memebot"]
CMD ["run"]

FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04 AS cuda
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 HF_HOME=/models VIRTUAL_ENV=/opt/venv PATH=/opt/venv/bin:$PATH
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 1001 memebot \
    && python3 -m venv /opt/venv
WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY generators ./generators
# PyPI's Linux torch wheels are CUDA builds.
RUN pip install torch==2.13.0 && pip install .
COPY config.yaml ./
RUN mkdir -p /app/data /models && chown memebot:memebot /app/data /models
USER memebot
VOLUME ["/app/data", "/models"]
ENTRYPOINT ["memebot"]
CMD ["run"]
