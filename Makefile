# Everything runs from a local virtual environment; `make demo` and `make test` install it first when needed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test lint bench clean

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

demo: install
	$(PY) -m pipeline.demo

test: install
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) out .pytest_cache
