#!/usr/bin/env bash
# Refresh every lock from pyproject.toml (the one command that changes installed versions on purpose):
#   bash requirements/lock.sh            # keep today's pins where they still satisfy pyproject.toml
#   bash requirements/lock.sh --upgrade  # move everything to the newest releases
# Locks are for Linux x86_64 and CPython 3.11 (CI, the Docker images, the README's commands), with a hash
# for every file pip may install. torch is the CPU build (2.13.0+cpu): pip takes it from a find-links
# folder or PyTorch's CPU index; GPU hosts use gpu.lock, which leaves torch to the CUDA build they install.
set -euo pipefail
cd "$(dirname "$0")/.."
UV_VERSION=0.13.9
if ! uv --version 2>/dev/null | grep -q "^uv $UV_VERSION"; then
    python3 -m venv .venv-lock && .venv-lock/bin/pip install -q "uv==$UV_VERSION"
    uv() { .venv-lock/bin/uv "$@"; }
fi
compile() {  # compile OUT [uv pip compile options...]
    local out="$1"
    shift
    uv pip compile pyproject.toml requirements/build.in "$@" --generate-hashes --python-version 3.11 \
        --python-platform x86_64-manylinux_2_28 --find-links "${TORCH_WHEELS:-/opt/wheels}" \
        -c constraints.txt --output-file "requirements/$out" --quiet \
        --custom-compile-command "bash requirements/lock.sh" ${UPGRADE:+--upgrade}
}
[[ "${1:-}" == "--upgrade" ]] && UPGRADE=1
compile bot.lock                                   # the bot alone (queue.backend: redis): no torch
compile cpu.lock --extra models                    # the quick start: the model stack on the CPU
compile gpu.lock --extra models --no-emit-package torch   # GPU hosts: their CUDA torch first
compile test.lock --all-extras                     # CI and the README's test command
