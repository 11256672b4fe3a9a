# Everything runs from a local virtual environment; `make demo` and `make test` install it first when needed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test test-fast lint typecheck bench clean

install: $(STAMP)

# torch/torchvision first, pinned to the releases our build machines carry on disk (no multi-GB download).
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e '.[dev,cluster]'
	# TrackEval scores the tracking tests; --no-deps because its metadata pins opencv-python, which would
	# clash with our opencv-python-headless (it needs only numpy and scipy at import).
	$(PY) -m pip install -q --no-deps trackeval==1.3.0
	touch $(STAMP)

# DEMO_ARGS, e.g. `make demo DEMO_ARGS=--hold`: keep the live page up after the clip ends (pipeline/demo.py --help)
demo: install
	$(PY) -m pipeline.cli demo $(DEMO_ARGS)

# pytest exit 5 = no tests collected: a broken selection or collection, never a pass; say so (make masks the code)
test: install
	$(PY) -m pytest -q || { code=$$?; [ $$code -ne 5 ] || echo "make test: pytest collected no tests (exit 5)" >&2; exit $$code; }

# everything not marked slow (@pytest.mark.slow: more than a few seconds each); ~2 min on the loaded 2-core machine
test-fast: install
	$(PY) -m pytest -q -m "not slow" || { code=$$?; [ $$code -ne 5 ] || echo "make test-fast: pytest collected no tests (exit 5)" >&2; exit $$code; }

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install
	$(VENV)/bin/mypy

# the quick benchmarks (a few minutes in all); the long ones (live_soak, redis_outage, pipeline_fps, model_speed)
# are run by hand with the commands in docs/BENCHMARKS.md
bench: install
	$(PY) benchmarks/cli_latency.py
	$(PY) benchmarks/pipeline_masks.py --repeat 5
	$(PY) benchmarks/tracking_speed.py --frames 100 --long-frames 1000

clean:
	rm -rf $(VENV) out .pytest_cache
