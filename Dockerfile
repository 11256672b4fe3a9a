# maskstream worker image. CPU works as is; with the NVIDIA container runtime the same image uses the GPU
# (torch's Linux wheels carry CUDA; the `cuda13` extra adds CuPy for our RoIAlign kernel).
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
RUN apt-get update && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md ./
# one COPY per package of pyproject's package list (tests/test_layout.py checks they match)
COPY pipeline pipeline
COPY sources sources
COPY stages stages
COPY sinks sinks
COPY consumer consumer
COPY kernels kernels
COPY maskrcnn maskrcnn
COPY tracking tracking
COPY analytics analytics
COPY synth synth
COPY training training
COPY evaluation evaluation
COPY web web
COPY configs configs
COPY cluster cluster
ARG EXTRAS=cuda13
RUN pip install torch==2.14.1 torchvision==0.29.1 && pip install ".[${EXTRAS}]"

# Non-root at run time; weights and configs are read-only mounts.
RUN useradd --create-home --uid 10001 maskstream
USER maskstream
ENTRYPOINT ["maskstream"]
CMD ["run", "configs/rtsp.yaml"]
