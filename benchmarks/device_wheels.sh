#!/usr/bin/env bash
# Download the wheels benchmarks/gpu_check.sh needs on the GPU machine into .whl/ (gitignored): CPython 3.12,
# manylinux x86-64, no dependencies resolved (each one is listed). Run here, where pip reaches PyPI; the device
# tool carries .whl (`carry: [".whl"]`). About 40 MB, mostly PyAV (the source modules import it).
#
#   bash benchmarks/device_wheels.sh                    # the packages below
#   bash benchmarks/device_wheels.sh scipy==1.17.1      # plus any the machine turns out to lack
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}

# What the pipeline imports that the GPU image (torch, torchvision, numpy, cupy) may lack (redis: the config
# package imports the client's defaults, though the check uses no Redis). Versions as in our venv;
# pydantic-core must be the exact one pydantic pins.
PACKAGES=(
  av==19.0.2
  pycocotools==2.0.11
  pydantic==2.14.4
  pydantic-core==2.50.5
  annotated-types==0.8.0
  typing-inspection==0.4.5
  typing-extensions==4.16.0
  prometheus-client==0.26.0
  redis==8.1.0
  pyyaml==6.0.3
  safetensors==0.8.0
  tqdm==4.70.1
)

mkdir -p .whl
"$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl "${PACKAGES[@]}" "$@"
du -sh .whl
ls .whl
