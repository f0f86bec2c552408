# Two commands do everything on a fresh machine with Python 3.10+:
#   make demo   - set up, run the preview workflow on the built-in tiny model (writes an mp4), then say
#                 which tier of each model family this machine can run
#   make test   - set up, then run the test suite
# TORCH_SPEC picks the torch build when the venv has none (e.g. a CUDA build's index URL args).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python

.PHONY: setup test demo bench lint clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q $(TORCH_SPEC)
	# Pin the torch we have, so no dependency can pull another build (and gigabytes of CUDA).
	$(PY) -c "import torch; print('torch==' + torch.__version__.split('+')[0])" > $(VENV)/constraints.txt
	$(PY) -m pip install -q -c $(VENV)/constraints.txt -e ".[test]"
	touch $@

test: setup
	$(PY) -m pytest -q

# The preview tier on the example image with the built-in tiny model: writes output/i2v/preview_*.mp4.
demo: setup
	$(PY) -m host_stub run workflows/i2v-preview.json --packs . --input-dir examples --output-dir output \
		--models-dir models --set LoadI2VModel.model=tiny-i2vgen-xl
	$(PY) -m i2v_nodes tiers workflows/api

bench: setup
	$(PY) bench/run.py

lint: setup
	$(PY) -m ruff check .

clean:
	rm -rf $(VENV) output models/i2v/tiny-*
