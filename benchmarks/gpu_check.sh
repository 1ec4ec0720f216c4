#!/usr/bin/env bash
# The GPU check: one command on a lent GPU machine that brings back every figure it can, in about
# 8 minutes, as one results file (docs/gpu.md says how to call it; docs/benchmarks.md holds the table).
#
#   benchmarks/gpu_check.sh --make-wheels [--diffusers GIT]   on the CPU machine, before: the wheels and
#                                        the diffusers examples the GPU machine lacks, into .whl/
#   benchmarks/gpu_check.sh             on the GPU machine: the check; results in $OUT, else ./gpu-check-out
#   benchmarks/gpu_check.sh --dry-run   the same steps on a CPU with the tiny models, a few steps each
#
# Options: --out DIR (results), --work DIR (models, runs, logs), --budget SECONDS (the whole check;
# default 480 on a GPU), --only PART,PART (e.g. tests,resume for a second call; parts below).
#
# Every part runs in its own process under its own time budget (`timeout`), cut to what is left of
# the whole budget, and the check goes on when a part fails or runs out of time: the results file
# says of each part ok, failed, timeout, skipped or not run, and why. Parts, in order:
#   machine, install                 what the machine has (nvidia-smi, versions); the carried wheels
#   build_sd15, build_sdxl, probe,   at the same time (nothing here is timed): the random SD-1.5- and
#   tests, learning, resume          SDXL-shaped models; the device probe and the batch it picks;
#                                    the CUDA-relevant tests; the learning tests; SIGKILL and resume
#   sd15_ours, sd15_example, ...     one at a time, alone on the machine: benchmarks/bench.py runs
set -u -o pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
cd "$ROOT" || exit 2
PY=${PYTHON:-python3}
MODE=gpu
OUT_DIR=${OUT:-$ROOT/gpu-check-out}
WORK=${TMPDIR:-/tmp}/invokeai-ti-gpu-check
BUDGET=
ONLY=all
DIFFUSERS_GIT=${DIFFUSERS_GIT:-}
# The example scripts are taken from this diffusers commit, the one docs/benchmarks.md measured.
DIFFUSERS_REV=${DIFFUSERS_REV:-58eb52c080}
WHEELS=.whl
# The versions the CPU machine tests with: the GPU machine lacks these (../shared/gpu-machine.md).
WHEEL_PACKAGES=(diffusers==0.42.1 npyscreen platformdirs importlib_metadata lazy-importer pexpect ptyprocess pytest-timeout)
EXAMPLES=(textual_inversion.py textual_inversion_sdxl.py)

usage() { sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

MAKE_WHEELS=
while (($#)); do
  case $1 in
    --dry-run) MODE=dry-run ;;
    --make-wheels) MAKE_WHEELS=1 ;;
    --diffusers) DIFFUSERS_GIT=$2; shift ;;
    --out) OUT_DIR=$2; shift ;;
    --work) WORK=$2; shift ;;
    --budget) BUDGET=$2; shift ;;
    --only) ONLY=$2; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "gpu_check.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done

# ---------------------------------------------------------------------------------------------
# --make-wheels: on the CPU machine, where the package index can be reached
# ---------------------------------------------------------------------------------------------
if [[ -n $MAKE_WHEELS ]]; then
  git check-ignore -q "$WHEELS/" || echo '/.whl/' >>"$(git rev-parse --git-path info/exclude)"
  mkdir -p "$WHEELS/examples"
  "$PY" -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$WHEELS" "${WHEEL_PACKAGES[@]}" || exit 1
  if [[ -z $DIFFUSERS_GIT ]]; then
    echo "No --diffusers GIT given: the examples are not in $WHEELS/examples. Pass a clone of" \
         "huggingface/diffusers (or its .git folder); its examples are Apache-2.0, as this project." >&2
    exit 1
  fi
  for name in "${EXAMPLES[@]}"; do
    git --git-dir="$(git -C "$DIFFUSERS_GIT" rev-parse --absolute-git-dir 2>/dev/null || echo "$DIFFUSERS_GIT")" \
      show "$DIFFUSERS_REV:examples/textual_inversion/$name" >"$WHEELS/examples/$name" || exit 1
  done
  echo "$DIFFUSERS_REV" >"$WHEELS/examples/REVISION"
  ls -l "$WHEELS" "$WHEELS/examples"
  du -sh "$WHEELS"
  exit 0
fi

# ---------------------------------------------------------------------------------------------
# The check's settings: the GPU's real sizes, or the tiny models for a dry run on a CPU
# ---------------------------------------------------------------------------------------------
if [[ $MODE == gpu ]]; then
  BUDGET=${BUDGET:-480}
  SD15=sd15; SDXL=sdxl; RES=512; RES_XL=1024; B8=8; B4=4; FP16=fp16
  TIMED=(--warmup 3 --steps 8); TIMED_XL=(--warmup 2 --steps 5)
  RESUME=(--resolution 512 --batch 2 --precision fp16 --steps 24 --checkpoint-every 4 --kill-after 10)
  TESTS=(tests/test_cuda.py tests/test_never_lose_work.py tests/test_resume.py tests/test_training.py
         tests/test_training_step.py tests/test_sdxl_training.py tests/test_tiny_sdxl.py tests/test_bad_input.py
         tests/test_previews.py tests/test_vector_size.py tests/test_initializer.py tests/test_demo.py)
  TEST_XDIST=(-n 6 --dist loadscope); LEARNING_XDIST=(-n 2 --dist loadscope); LEARNING_ARGS=(); TEST_TIMEOUT=150
  BUDGETS=(machine=40 install=90 build_sd15=150 build_sdxl=240 probe=60 tests=200 learning=200 resume=150
           sd15=120 sdxl=150 cat_toy=100)
else
  BUDGET=${BUDGET:-1800}
  export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
  SD15=tiny; SDXL=tiny-sdxl; RES=64; RES_XL=64; B8=2; B4=2; FP16=no  # a CPU trains no fp16: fp32 in its place
  TIMED=(--warmup 1 --steps 2); TIMED_XL=(--warmup 1 --steps 2)
  RESUME=(--resolution 64 --batch 1 --precision no --steps 6 --checkpoint-every 2 --kill-after 3)
  TESTS=(tests/test_cuda.py tests/test_paths.py)
  TEST_XDIST=(); LEARNING_XDIST=(); LEARNING_ARGS=(--collect-only); TEST_TIMEOUT=120
  # A shared CPU runs the parts at the same time several times slower than alone: generous budgets.
  BUDGETS=(machine=120 install=120 build_sd15=400 build_sdxl=400 probe=300 tests=400 learning=400 resume=400
           sd15=300 sdxl=300 cat_toy=300)
  # The same code as sdxl_ours_fp16, sdxl_example_bf16 and sd15_ours with other flags: once is proof enough.
  DRY_RUN_SKIPS=(sdxl_ours_bf16 sdxl_example_fp16 sd15_ours_checkpointing)
fi
budget_of() { local entry; for entry in "${BUDGETS[@]}"; do [[ ${entry%%=*} == "$1" ]] && echo "${entry#*=}"; done; }

STARTED_NS=$(date +%s%N)
DEADLINE=$(( STARTED_NS / 1000000000 + BUDGET - 20 ))  # 20 s kept for collecting the results
seconds() { local ms=$(( $1 / 1000000 )); printf '%d.%d' $(( ms / 1000 )) $(( ms % 1000 / 100 )); }  # NANOSECONDS
PARTS=$WORK/parts
CACHE=$WORK/cache
rm -rf "$PARTS" "$WORK/resume"
mkdir -p "$PARTS" "$CACHE" "$OUT_DIR" || exit 2
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
export PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH}
echo "gpu_check.sh: $MODE, budget ${BUDGET} s, parts: $ONLY, results in $OUT_DIR, work in $WORK"

wanted() { [[ ,$ONLY, == *,all,* || ,$ONLY, == *,$1,* ]]; }

skip() {  # NAME REASON
  printf '{"skipped": true, "reason": "%s", "rc": null, "elapsed_s": 0, "budget_s": 0}\n' "$2" >"$PARTS/$1.status.json"
  echo "-- $1: skipped ($2)"
}

# run_part NAME BUDGET COMMAND...: the command under `timeout`, its output in NAME.log, its exit
# status and time in NAME.status.json; its results (NAME.json or NAME.jsonl) are its own to write.
run_part() {
  local name=$1 budget=$2; shift 2
  if ! wanted "$name"; then skip "$name" "not asked for (--only $ONLY)"; return 0; fi
  local left=$(( DEADLINE - $(date +%s) ))
  (( budget > left )) && budget=$left
  if (( budget < 15 )); then skip "$name" "out of time: ${left} s left of the check's ${BUDGET} s"; return 0; fi
  echo "== $name: up to ${budget} s"
  local t0 t1 rc
  t0=$(date +%s%N)
  timeout --kill-after=10 "$budget" "$@" >"$PARTS/$name.log" 2>&1
  rc=$?
  t1=$(date +%s%N)
  printf '{"rc": %d, "budget_s": %d, "elapsed_s": %s, "started_s": %s}\n' \
    "$rc" "$budget" "$(seconds $(( t1 - t0 )))" "$(seconds $(( t0 - STARTED_NS )))" >"$PARTS/$name.status.json"
  echo "== $name: exit $rc after $(seconds $(( t1 - t0 ))) s"
  return 0
}

# ---------------------------------------------------------------------------------------------
# What the machine has, and the carried wheels
# ---------------------------------------------------------------------------------------------
command -v nvidia-smi >/dev/null && nvidia-smi
"$PY" -m pip list 2>/dev/null | grep -i -E '^(torch|torchvision|triton|transformers|accelerate|diffusers|huggingface.hub|safetensors|tokenizers|numpy|pillow|pytest|pytest-timeout|pytest-xdist|xformers|npyscreen|platformdirs|importlib.metadata|pexpect|ptyprocess) '

install_wheels() {
  shopt -s nullglob
  local wheels=("$WHEELS"/*.whl) keep=() wheel
  shopt -u nullglob
  if ((${#wheels[@]} == 0)); then skip install "no wheels in $WHEELS/ (make them with --make-wheels)"; return; fi
  for wheel in "${wheels[@]}"; do
    # pytest-timeout is preinstalled on the GPU machine: the carried one is for a CPU without it.
    [[ $(basename "$wheel") == pytest_timeout-* ]] && "$PY" -c 'import pytest_timeout' 2>/dev/null && continue
    keep+=("$wheel")
  done
  local target=
  if [[ $MODE == gpu ]]; then
    # Into the machine's own environment (it is bare at every call), so that the tests' subprocesses,
    # which set PYTHONPATH themselves, find them too; into a folder on PYTHONPATH where that is refused.
    if ! timeout 90 "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir "${keep[@]}"; then
      target=$WORK/site
    fi
  else
    target=$WORK/site  # never into the CPU machine's shared environment
  fi
  if [[ -n $target ]]; then
    rm -rf "$target"
    timeout 90 "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$target" "${keep[@]}"
    export PYTHONPATH=$target:$PYTHONPATH
  fi
  run_part install "$(budget_of install)" "$PY" benchmarks/gpu_check.py installed --json "$PARTS/install.json" \
    --examples "$WHEELS/examples" ${target:+--target "$target"} "${keep[@]}"
}
if wanted install; then install_wheels; else skip install "not asked for (--only $ONLY)"; fi
run_part machine "$(budget_of machine)" "$PY" benchmarks/gpu_check.py machine --json "$PARTS/machine.json"
cat "$PARTS/machine.log" 2>/dev/null | tail -n 40

CUDA=$("$PY" -c 'import torch; print(int(torch.cuda.is_available()))' 2>/dev/null || echo 0)
BF16=$("$PY" -c 'import torch; print(int(torch.cuda.is_available() and torch.cuda.is_bf16_supported()))' 2>/dev/null || echo 0)
[[ $MODE == dry-run ]] && BF16=1  # a CPU emulates bf16 slowly; a tiny model shows that it runs
if [[ $MODE == gpu && $CUDA != 1 ]]; then
  echo "No CUDA GPU is visible to torch here: the timed parts are skipped (they would take hours on a CPU)."
fi
EXAMPLE_DIR=$ROOT/$WHEELS/examples
# A check started from inside a test (tests/test_gpu_check.py under pytest-xdist) inherits that
# worker's variables; its own pytest runs must not take themselves for xdist workers, or
# gpu_pytest_log would write nothing.
unset PYTEST_XDIST_WORKER PYTEST_XDIST_WORKER_COUNT PYTEST_XDIST_TESTRUNUID
# pyproject's addopts ask for pytest-xdist; the check says itself how many processes to use.
PYTEST_OPTS=(-o addopts= -p benchmarks.gpu_pytest_log -p no:cacheprovider -q -rfE)
"$PY" -c 'import pytest_timeout' 2>/dev/null && PYTEST_OPTS+=(--timeout "$TEST_TIMEOUT")
"$PY" -c 'import xdist' 2>/dev/null || { TEST_XDIST=(); LEARNING_XDIST=(); }

# ---------------------------------------------------------------------------------------------
# At the same time, since nothing here is timed: models, probe, tests, learning tests, resume
# ---------------------------------------------------------------------------------------------
needs_model() {  # the builds run when a part that uses their model is asked for
  local part
  for part in "$@"; do wanted "$part" && return 0; done
  return 1
}
build() {  # NAME MODEL
  if [[ $ONLY != all ]] && ! wanted "$1" && ! needs_model "${@:3}"; then skip "$1" "no part asked for needs it"; return; fi
  ONLY=all run_part "$1" "$(budget_of "$1")" "$PY" benchmarks/bench.py --trainers ours --prepare-only \
    --model "$2" --cache-dir "$CACHE" --images 5
  printf '{"model": "%s", "images": "%s"}\n' "$CACHE/$(model_folder "$2")" "$CACHE/images-5" >"$PARTS/$1.json"
}
model_folder() { "$PY" -c "import sys; sys.path.insert(0, 'benchmarks'); import bench; print(bench.MODEL_FOLDERS['$1'])"; }
pytest_part() {  # NAME ARGS...
  local name=$1; shift
  GPU_CHECK_TESTS_LOG=$PARTS/$name.jsonl run_part "$name" "$(budget_of "$name")" "$PY" -m pytest "${PYTEST_OPTS[@]}" "$@"
  [[ -e $PARTS/$name.jsonl ]] || : >"$PARTS/$name.jsonl"
}
PHASE=()
( build build_sd15 "$SD15" resume sd15_ours sd15_example cat_toy_ours sd15_ours_checkpointing
  if [[ $MODE == gpu && $CUDA != 1 ]]; then skip resume "no CUDA GPU visible"
  else run_part resume "$(budget_of resume)" "$PY" benchmarks/gpu_check.py resume --json "$PARTS/resume.json" \
    --model "$CACHE/$(model_folder "$SD15")" --images "$CACHE/images-5" --work "$WORK/resume" "${RESUME[@]}"
  fi ) & PHASE+=($!)
( build build_sdxl "$SDXL" sdxl_ours_fp16 sdxl_example_bf16 sdxl_ours_bf16 sdxl_example_fp16 ) & PHASE+=($!)
( run_part probe "$(budget_of probe)" "$PY" benchmarks/gpu_check.py probe --json "$PARTS/probe.json" ) & PHASE+=($!)
( pytest_part tests "${TEST_XDIST[@]}" "${TESTS[@]}" ) & PHASE+=($!)
( pytest_part learning "${LEARNING_XDIST[@]}" "${LEARNING_ARGS[@]}" tests/test_learning.py tests/test_learning_sdxl.py ) &
PHASE+=($!)
wait "${PHASE[@]}"

# ---------------------------------------------------------------------------------------------
# One at a time, alone on the machine: the timed comparisons, most wanted first
# ---------------------------------------------------------------------------------------------
bench() {  # NAME BUDGET TRAINER MODEL RESOLUTION BATCH PRECISION EXTRA...
  local name=$1 budget=$2 trainer=$3 model=$4 res=$5 batch=$6 precision=$7; shift 7
  local example=()
  if ! wanted "$name"; then skip "$name" "not asked for (--only $ONLY)"; return; fi
  if [[ " ${DRY_RUN_SKIPS[*]-} " == *" $name "* ]]; then skip "$name" "left out of a dry run: its code ran in another part"; return; fi
  if [[ $MODE == gpu && $CUDA != 1 ]]; then skip "$name" "no CUDA GPU visible"; return; fi
  if [[ $precision == bf16 && $BF16 != 1 ]]; then skip "$name" "this GPU has no bf16"; return; fi
  if [[ $trainer == example ]]; then
    local script=$EXAMPLE_DIR/textual_inversion.py
    [[ $model == sdxl || $model == tiny-sdxl ]] && script=$EXAMPLE_DIR/textual_inversion_sdxl.py
    if [[ ! -f $script ]]; then skip "$name" "no $script (make it with --make-wheels --diffusers GIT)"; return; fi
    example=(--example "$script" --skip-version-check)
  fi
  run_part "$name" "$budget" "$PY" benchmarks/bench.py --trainers "$trainer" "${example[@]}" --model "$model" \
    --cache-dir "$CACHE" --images 5 --resolution "$res" --batch "$batch" --precisions "$precision" --repeats 1 \
    --json "$PARTS/$name.json" --logs "$PARTS/$name-logs" "$@"
}
bench sd15_ours "$(budget_of sd15)" ours "$SD15" "$RES" "$B8" "$FP16" "${TIMED[@]}"
bench sd15_example "$(budget_of sd15)" example "$SD15" "$RES" "$B8" "$FP16" "${TIMED[@]}"
bench sdxl_ours_fp16 "$(budget_of sdxl)" ours "$SDXL" "$RES_XL" "$B4" "$FP16" "${TIMED_XL[@]}"
bench sdxl_example_bf16 "$(budget_of sdxl)" example "$SDXL" "$RES_XL" "$B4" bf16 "${TIMED_XL[@]}"
# The cat-toy run: batch 1 x accumulation 4, the seed's run of 3000 such steps projected from these.
bench cat_toy_ours "$(budget_of cat_toy)" ours "$SD15" "$RES" 1 "$FP16" --accumulation 4 "${TIMED[@]}"
bench sdxl_ours_bf16 "$(budget_of sdxl)" ours "$SDXL" "$RES_XL" "$B4" bf16 "${TIMED_XL[@]}"
bench sdxl_example_fp16 "$(budget_of sdxl)" example "$SDXL" "$RES_XL" "$B4" "$FP16" "${TIMED_XL[@]}"
bench sd15_ours_checkpointing "$(budget_of sd15)" ours "$SD15" "$RES" "$B8" "$FP16" --gradient-checkpointing "${TIMED_XL[@]}"

# ---------------------------------------------------------------------------------------------
# One results file, the table made from it, and the logs
# ---------------------------------------------------------------------------------------------
echo "== results"
"$PY" benchmarks/gpu_check.py collect --parts "$PARTS" --out "$OUT_DIR/gpu_check.json" --mode "$MODE" \
  --budget "$BUDGET" --started "$(seconds "$STARTED_NS")"
rc=$?
"$PY" benchmarks/gpu_report.py "$OUT_DIR/gpu_check.json" | tee "$OUT_DIR/gpu_table.md"
(cd "$WORK" && find parts resume \( -name '*.log' -o -name '*.json' -o -name '*.jsonl' -o -name '*.csv' \) \
  -print 2>/dev/null | tar -czf "$OUT_DIR/gpu_check_logs.tar.gz" -T -)
echo "gpu_check.sh: done in $(seconds $(( $(date +%s%N) - STARTED_NS ))) s; $OUT_DIR holds gpu_check.json, gpu_table.md, gpu_check_logs.tar.gz"
exit $rc
