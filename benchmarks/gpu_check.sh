#!/usr/bin/env bash
# The one-command GPU check: on a CUDA machine with the repository and its `test` extra installed, it runs
# the GPU-only tests (tests/gpu), bench_gpu.py narrowed to the rows that matter (float16 and, on cards with
# bf16 tensor cores, bfloat16; batches 1 and 8; compile off and reduce-overhead; memebot's path against
# the bare call) and bench_models.py's load, park and free figures, within 8 minutes all told. Tables go
# to benchmarks/results/gpu_check.txt, figures to benchmarks/results/{gpu,models}.json, the tests' report
# to benchmarks/results/gpu_tests.xml. It exits non-zero when a step failed or ran out of its time.
#
#   benchmarks/gpu_check.sh
#
# PYTHON picks the interpreter (default: .venv/bin/python if there is one, else python3). COMPILE_MODES
# (default reduce-overhead: CUDA graphs, the fastest mode for one-step calls; max-autotune alone takes
# longer than the whole check) widens the compile rows, e.g. COMPILE_MODES=default,reduce-overhead.
set -uo pipefail
cd "$(dirname "$0")/.."

if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
COMPILE_MODES="${COMPILE_MODES:-reduce-overhead}"
BUDGET_S=470  # 8 minutes, less the interpreter starts
RESULTS=benchmarks/results
LOG="$RESULTS/gpu_check.txt"

# Fail fast, before anything is written, on a machine that cannot run the check.
if ! gpu=$("$PYTHON" - <<'EOF'
import sys

try:
    import torch
except ImportError:
    sys.exit("torch is not installed: install the repository with its test extra first")
if not torch.cuda.is_available():
    build = "" if torch.version.cuda else f" (torch {torch.__version__} is a CPU-only build)"
    sys.exit(f"no CUDA device: this check needs a GPU{build}")
index = torch.cuda.current_device()
major, minor = torch.cuda.get_device_capability(index)
memory = torch.cuda.get_device_properties(index).total_memory / 1024**3
print(f"{torch.cuda.get_device_name(index)} (compute {major}.{minor}, {memory:.0f} GiB; torch {torch.__version__})")
EOF
); then
    exit 2
fi

mkdir -p "$RESULTS"
echo "GPU: $gpu" | tee "$LOG"
failed=()

# step NAME CAP_S COMMAND...: run COMMAND within CAP_S seconds (and what is left of the budget), logged.
step() {
    local name=$1 cap=$2
    shift 2
    local left=$((BUDGET_S - SECONDS))
    ((left < cap)) && cap=$left
    if ((cap <= 10)); then
        echo "== $name: skipped, the check's $BUDGET_S s are spent" | tee -a "$LOG"
        failed+=("$name (no time left)")
        return
    fi
    echo "== $name (at most ${cap} s)" | tee -a "$LOG"
    timeout --kill-after=10 "$cap" "$@" 2>&1 | tee -a "$LOG"
    local status=${PIPESTATUS[0]}
    if ((status == 124 || status == 137)); then
        failed+=("$name (ran past ${cap} s)")
    elif ((status != 0)); then
        failed+=("$name (exit $status)")
    fi
}

step "GPU-only tests" 150 "$PYTHON" -m pytest -q -rs -p no:cacheprovider -m gpu tests/gpu \
    --junitxml="$RESULTS/gpu_tests.xml"
step "bench_models.py: load, park, free" 70 "$PYTHON" benchmarks/bench_models.py --loads-only --quick \
    --repeats 2 --json "$RESULTS/models.json"
step "bench_gpu.py: batches 1 and 8, compile off and $COMPILE_MODES" 250 "$PYTHON" benchmarks/bench_gpu.py \
    --batches 1,8 --runs 3 --compile-modes "$COMPILE_MODES" --json "$RESULTS/gpu.json"

echo "GPU: $gpu; ${SECONDS} s; tables in $LOG, figures in $RESULTS/gpu.json and $RESULTS/models.json" \
    | tee -a "$LOG"
if ((${#failed[@]})); then
    printf 'FAILED: %s\n' "${failed[@]}" | tee -a "$LOG"
    exit 1
fi
echo "all steps passed" | tee -a "$LOG"
