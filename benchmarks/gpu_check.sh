#!/usr/bin/env bash
# One GPU check: every GPU measurement of maskstream in one run (under 6 minutes on an H100/H200).
#
#   bash benchmarks/device_wheels.sh       # here, once: the wheels the GPU machine lacks, into .whl/
#   bash benchmarks/gpu_check.sh           # there, from the repo root (device tool: carry [".whl"])
#   bash benchmarks/gpu_check.sh --smoke   # anywhere: CPU, tiny sizes, the same code paths (CI runs this)
#
# Markdown tables on stdout, JSON in $OUT/gpu_check.json when $OUT is set (and a copy of the log there).
# Exit code: 0 all checks passed; 1 a correctness check failed or a section broke; 2 no CUDA device (without
# --smoke); 3 Python packages missing (the message names them).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}

# The carried wheels are for the GPU machine's CPython 3.12 on x86-64; elsewhere the local packages are used.
wheels_fit=$("$PYTHON" -c 'import platform, sys; print(sys.version_info[:2] == (3, 12) and platform.machine() == "x86_64")')
if [[ $wheels_fit == True ]] && compgen -G ".whl/*.whl" >/dev/null; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1

# Fail in a second, naming what is missing, rather than minutes in with an ImportError in one section.
"$PYTHON" - "$@" <<'PY' || exit 3
import importlib.util, sys
needed = ["torch", "torchvision", "numpy", "av", "pycocotools", "pydantic", "prometheus_client", "yaml", "redis",
          "scipy", "cv2"]
missing = [name for name in needed if importlib.util.find_spec(name) is None]
if "--smoke" not in sys.argv and importlib.util.find_spec("cupy") is None:
    missing.append("cupy")
if missing:
    print(f"gpu_check: missing Python packages: {', '.join(missing)} "
          "(run benchmarks/device_wheels.sh where pip works and carry .whl; add any not in its list)", file=sys.stderr)
    sys.exit(1)
PY

if [[ -n "${OUT:-}" ]]; then
  set -o pipefail
  timeout "${GPU_CHECK_TIMEOUT_S:-540}" "$PYTHON" benchmarks/gpu_check.py "$@" 2>&1 | tee "$OUT/gpu_check.log"
else
  exec timeout "${GPU_CHECK_TIMEOUT_S:-540}" "$PYTHON" benchmarks/gpu_check.py "$@"
fi
