#!/usr/bin/env bash
# The GPU check: what ten minutes of a lent GPU must give the project, in one command.
#
#   bash tools/gpu_check.sh               # run it (on a machine with a CUDA GPU)
#   bash tools/gpu_check.sh --plan        # print what it would run, run nothing
#   bash tools/gpu_check.sh --fetch-wheels [DIR]   # here, with a package registry: download the
#                                         # wheels a bare GPU image lacks (papermill, Jupyter
#                                         # kernel, dask) into DIR (default .whl) to carry along
#
# Stages (each under its own `timeout`; the whole fits a 10-minute limit on one H200 with 16
# cores, the device tool's per-command limit):
#   0. environment: GPU name and memory, driver, Python, NumPy, CuPy, PyTorch; wheels from .whl
#      (if present) installed with --no-index into a private folder on PYTHONPATH
#   1. tests with real CuPy (${T_TESTS}s): the numerical core's namespace-parametrised tests and
#      the device-path tests (tests/test_device_path.py: the pipeline on CuPy equals NumPy in
#      float64), `-k "cupy and not standin"`
#   2. the peer benchmark on the GPU (${T_BENCH}s): benchmarks/run.py --device gpu (the library on
#      CuPy, its PyTorch twins on CUDA tensors, scikit-learn on the host's cores)
#   3. one notebook at the paper profile (${T_NB}s): 01_nystrom_pc through papermill when it
#      imports, else from its source (tools/run_notebook.py), with a time limit
#   4. the eNTK cost on the GPU (${T_PLAN}s): benchmarks/cost_model.py --device gpu times the eNTK
#      features of the small CNN and of a ResNet-50 on CUDA tensors, which turns the cluster
#      page's ImageNet-1k estimate into a measurement
# and prints every figure; logs and JSON go to $OUT (the device tool's folder) or ./gpu-check.
#
# Data: KREPES_DATA (default: shared/data inside the repository if present, else
# ../shared/data). On the device tool (10 minutes per command: pass timeout_s 600), carry a
# copy of what the stages read — MNIST (benchmark rows, notebook 01): `mkdir -p .gpu-data &&
# cp -r ../shared/data/mnist .gpu-data/ && echo /.gpu-data/ >> .git/info/exclude` — and the
# wheels of `--fetch-wheels`, then run `KREPES_DATA=.gpu-data bash tools/gpu_check.sh` with
# carry [".gpu-data", ".whl"]. Stage limits: T_TESTS, T_BENCH, T_NB, T_PLAN (seconds).
# Exit code: 0 all stages passed, 1 a stage failed or timed out, 2 no GPU (nothing measured).
set -u
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python3}"
T_TESTS="${T_TESTS:-140}"
T_BENCH="${T_BENCH:-160}"
T_NB="${T_NB:-150}"
T_PLAN="${T_PLAN:-60}"
NOTEBOOK="${NOTEBOOK:-01_nystrom_pc}"
OUTDIR="${OUT:-$ROOT/gpu-check}"
mkdir -p "$OUTDIR"
TEST_FILES="tests/test_device_path.py tests/test_kernels.py tests/test_nystrom_landmarks.py \
tests/test_model_train.py tests/test_losses.py tests/test_cg.py tests/test_interpret.py \
tests/test_evaluate.py tests/test_backend.py"
# what a bare GPU image (PyTorch, CuPy, SciPy, scikit-learn, pytest) lacks for stages 1-3 and
# for the Dask extra; resolved for the target's Python (PYV) by --fetch-wheels
WHEELS="papermill nbformat nbclient ipykernel jupyter_client jupyter_core ipython traitlets comm \
debugpy matplotlib_inline nest_asyncio2 pyzmq tornado fastjsonschema jsonschema \
jsonschema_specifications referencing rpds_py entrypoints tenacity asttokens executing pure_eval \
stack_data jedi parso prompt_toolkit wcwidth pexpect ptyprocess ipython_pygments_lexers \
platformdirs dask distributed partd locket zict tblib"

plan() {
  cat <<EOF
On a machine with a CUDA GPU this check runs, in at most $((T_TESTS + T_BENCH + T_NB + T_PLAN + 40)) s:
  1. $PY -m pytest $TEST_FILES -k "cupy and not standin"   (limit ${T_TESTS}s)
     -> the core tests on real CuPy and the pipeline on CuPy == NumPy (float64)
  2. $PY benchmarks/run.py --device gpu --threads \$(nproc) --no-book --out \$OUT/perf-gpu.json   (limit ${T_BENCH}s)
     -> the performance table with the library on CuPy and its PyTorch twins on CUDA
  3. $PY tools/run_notebook.py $NOTEBOOK --profile paper --timeout ${T_NB} --out \$OUT/notebook   (limit $((T_NB + 20))s)
     -> the notebook's claims and figures at the paper's scale (papermill if it imports)
  4. $PY benchmarks/cost_model.py --device gpu --small-rows 4096 --resnet-rows 64 --budget-gb 16 --json \$OUT/plan.json   (limit ${T_PLAN}s)
     -> rows/s of the eNTK features (small CNN, ResNet-50) on the GPU: the ImageNet-1k plan, measured
and writes gpu_check.log, tests.log, bench.log, perf-gpu.json, notebook.log, the notebook's
figures, plan.log and plan.json to $OUTDIR.
EOF
}

case "${1:-}" in
  --plan) plan; exit 0 ;;
  --fetch-wheels)
    DEST="${2:-.whl}"; PYV="${PYV:-3.12}"
    mkdir -p "$DEST"
    for w in $WHEELS; do
      "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version "$PYV" \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
        --platform manylinux_2_26_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$DEST" "$w" \
        || echo "could not download $w" >&2
    done
    du -sh "$DEST"; exit 0 ;;
  "") ;;
  *) echo "usage: bash tools/gpu_check.sh [--plan | --fetch-wheels [DIR]]" >&2; exit 64 ;;
esac

exec > >(tee "$OUTDIR/gpu_check.log") 2>&1
echo "# KREPES GPU check — $(date -u +%Y-%m-%dT%H:%M:%SZ) — $(hostname), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"

if [ -d "$ROOT/.whl" ] && ls "$ROOT"/.whl/*.whl >/dev/null 2>&1; then
  SITE=/tmp/krepes-gpu-site
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$SITE" "$ROOT"/.whl/*.whl && export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}" \
    && echo "# wheels from .whl installed into $SITE"
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
if [ -z "${KREPES_DATA:-}" ]; then
  if [ -d "$ROOT/shared/data" ]; then KREPES_DATA="$ROOT/shared/data"; else KREPES_DATA="$ROOT/../shared/data"; fi
fi
export KREPES_DATA KREPES_RESULTS="$OUTDIR/results" MPLBACKEND=Agg PYTHONUNBUFFERED=1 TQDM_DISABLE=1
export KREPES_CACHE="${KREPES_CACHE:-/tmp/krepes-gpu-cache}"
echo "# KREPES_DATA=$KREPES_DATA ($(ls "$KREPES_DATA" 2>/dev/null | tr '\n' ' '))"

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null \
  | sed 's/^/# nvidia-smi: /'
"$PY" - <<'EOF'
import importlib, platform
print(f"# python {platform.python_version()}", end="")
for name in ("numpy", "scipy", "cupy", "torch", "sklearn", "dask", "distributed", "papermill"):
    try:
        print(f", {name} {importlib.import_module(name).__version__}", end="")
    except Exception as err:  # noqa: BLE001
        print(f", {name} missing", end="")
print()
from krepes_lib.backend import _real_cupy_or_none, gpu_available
cp = _real_cupy_or_none()
if cp is None:
    try:
        import cupy
        cupy.cuda.runtime.getDeviceCount()
        why = "CuPy imports but no kernel runs"
    except Exception as err:  # noqa: BLE001
        why = f"{type(err).__name__}: {err}"
    print(f"# GPU: none usable ({why})")
else:
    p = cp.cuda.runtime.getDeviceProperties(0)
    name = p["name"].decode() if isinstance(p["name"], bytes) else p["name"]
    print(f"# GPU: {name}, {p['totalGlobalMem'] / 2**30:.0f} GiB, {cp.cuda.runtime.getDeviceCount()} device(s)")
EOF
if ! "$PY" -c "from krepes_lib.backend import gpu_available; raise SystemExit(0 if gpu_available() else 1)" 2>/dev/null; then
  echo "NO GPU: no usable CUDA device here (CuPy missing, no driver, or no device), so nothing was measured."
  plan
  exit 2
fi

status=0
stage() {  # stage NAME LIMIT LOG COMMAND...: the command under `timeout`, its output also in LOG
  local name="$1" limit="$2" log="$3"; shift 3
  local t0=$SECONDS
  echo; echo "=== stage: $name (limit ${limit}s) ==="
  timeout --kill-after=10 "$limit" "$@" 2>&1 | tee "$OUTDIR/$log"
  local rc=${PIPESTATUS[0]}
  [ $rc -eq 124 ] && echo "TIMEOUT: $name ran past ${limit}s"
  echo "=== $name: rc=$rc, $((SECONDS - t0)) s ==="
  [ $rc -eq 0 ] || status=1
}

stage "tests on real CuPy" "$T_TESTS" tests.log "$PY" -m pytest -q -p no:cacheprovider \
  --no-header -rfE $TEST_FILES -k "cupy and not standin"
stage "peer benchmark on the GPU" "$T_BENCH" bench.log "$PY" benchmarks/run.py --device gpu \
  --threads "$(nproc)" --no-book --out "$OUTDIR/perf-gpu.json"
stage "notebook $NOTEBOOK at the paper profile" "$((T_NB + 20))" notebook.log "$PY" \
  tools/run_notebook.py "$NOTEBOOK" --profile paper --timeout "$T_NB" --out "$OUTDIR/notebook"
stage "eNTK cost on the GPU" "$T_PLAN" plan.log "$PY" benchmarks/cost_model.py --device gpu \
  --small-rows 4096 --resnet-rows 64 --budget-gb 16 --json "$OUTDIR/plan.json"
echo
echo "# done: status $status; logs and results in $OUTDIR ($(ls "$OUTDIR" | tr '\n' ' '))"
exit $status
