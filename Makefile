# Two commands do everything on a fresh machine with Python 3.10+:
#   make demo   - set up, run a Wan 2.2 tier workflow and an LTX-2 one (with sound) on the built-in tiny
#                 models (each writes an mp4), then say which tier of each model family this machine can run
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

# Two tier workflows on the example image, each on its model's built-in tiny twin, scaled down to run on a
# CPU in seconds: Wan 2.2 A14B (output/demo/wan2.2-a14b_*.mp4) and LTX-2, whose video has its own sound
# (output/demo/ltx2-with-sound_*.mp4). Random weights: the videos are noise, the plumbing is real.
DEMO_RUN = $(PY) -m host_stub run --packs . --input-dir examples --output-dir output --models-dir models \
	--set LoadI2VModel.offload=none --set LoadI2VModel.weights=default --set I2VSample.steps=4

demo: setup
	$(DEMO_RUN) workflows/wan-24gb.json --set LoadI2VModel.model=tiny-wan2.2-i2v-a14b \
		--set VRAMGuard.width=96 --set VRAMGuard.height=64 --set VRAMGuard.num_frames=17 \
		--set EncodeVideo.filename_prefix=demo/wan2.2-a14b
	$(DEMO_RUN) workflows/ltx2-24gb.json --set LoadI2VModel.model=tiny-ltx2 \
		--set VRAMGuard.width=96 --set VRAMGuard.height=64 --set VRAMGuard.num_frames=25 \
		--set EncodeVideo.filename_prefix=demo/ltx2-with-sound
	$(PY) -m i2v_nodes tiers workflows/api

bench: setup
	$(PY) bench/run.py

lint: setup
	$(PY) -m ruff check .

clean:
	rm -rf $(VENV) output models/i2v/tiny-*
