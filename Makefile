# Vanilla Flash: `make help` lists the targets. Each one creates/uses the virtual environment
# $(VENV) and installs what it needs into it.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Where Colab or a GPU image already has torch, use that environment instead: `make run VENV_SYSTEM=1`.
ifdef VENV_SYSTEM
PY := $(PYTHON)
endif
export HF_HUB_OFFLINE ?= 1
export PYTHONUNBUFFERED := 1

.PHONY: help install run run-cpu run-t4 run-ampere run-hopper colab-twin notebooks docs docs-serve docs-figures env check \
	smoke test lint format clean

help: ## list every target
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

# torch first, as a CPU build: on Linux, PyPI's torch is the CUDA build with about 3 GB of nvidia
# packages. The PyTorch CPU index serves torch X+cpu, which the `torch==X` pin accepts and prefers
# (a local version sorts after the plain one); macOS and Windows wheels are CPU builds anyway.
# TORCH_INDEX= (empty) skips it, for a machine that has a CPU torch at hand (CI does).
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu

$(VENV)/.installed: requirements-dev.txt requirements-common.txt requirements-headless.txt requirements-docs.txt pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip install -q $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX)) \
		"$$(grep -E '^torch==' requirements-dev.txt | cut -d' ' -f1)"
	$(VENV)/bin/python -m pip install -q -r requirements-dev.txt
	$(VENV)/bin/python -m pip install -q --no-deps -e .
	touch $@

ifdef VENV_SYSTEM
install: ## install the package (and the CPU/dev requirements into .venv)
	$(PY) -m pip install -q --no-deps -e .
else
install: $(VENV)/.installed
endif

env: install ## environment report: GPU, versions, which attention backends run here
	$(PY) -m vanilla_flash env

check: install ## every attention backend against an fp32 reference (kernels and GPT-2)
	$(PY) -m vanilla_flash check

smoke: install ## a few tiny GPT-2 training steps with the auto attention backend
	$(PY) -m vanilla_flash smoke

# This machine's target (cpu, t4, ampere, hopper), as the package's table says: asked only when
# `make run` needs it, and answered without torch where there is none (then nvidia-smi, else cpu).
GPU_TARGET = $(shell PYTHONPATH=scr $(PYTHON) -m vanilla_flash target 2>/dev/null || echo cpu)

run: ## the main job on whatever hardware is here: the notebooks with this machine's parameters
	$(MAKE) run-$(GPU_TARGET)

run-cpu: install ## execute every notebook with notebooks/params/cpu.yaml (outputs/cpu/)
	$(PY) -m vanilla_flash env
	$(PY) -m vanilla_flash notebooks --target cpu

# A GPU machine (Colab, a cloud box) already has a CUDA build of torch: a GPU target installs its
# requirements file (named in the package's table) next to it, into that Python ($(PYTHON)), and
# never replaces torch; then it runs its notebook set with its parameters.
define run_gpu_target
	$(PYTHON) -m pip install -q -r "$$(PYTHONPATH=scr $(PYTHON) -m vanilla_flash target $(1) --field requirements)" \
		-r requirements-headless.txt -e .
	$(PYTHON) -m vanilla_flash env
	$(PYTHON) -m vanilla_flash notebooks --target $(1)
endef

run-t4: ## the flash-attn 1.x notebooks with t4.yaml (a Turing GPU, e.g. Colab's T4)
	$(call run_gpu_target,t4)

run-ampere: ## the flash-attn 2.x notebooks with ampere.yaml (A100, L4, RTX 30/40)
	$(call run_gpu_target,ampere)

run-hopper: ## the flash-attn 4 notebooks with hopper.yaml (H100, H200, B200)
	$(call run_gpu_target,hopper)

# Colab's 2026.07 runtime has Python 3.12, its 2026.08 one Python 3.13: pyenv's if there is one, else on the PATH.
COLAB_PYTHON ?= $(or $(shell PYENV_VERSION=3.12 pyenv which python3.12 2>/dev/null),python3.12)
COLAB_PYTHON_313 ?= $(or $(shell PYENV_VERSION=3.13 pyenv which python3.13 2>/dev/null),python3.13)

colab-twin: install ## run the flash-attn 1.x set as Colab runs it (its Python and packages, one kernel, no restart): results/colab-twin/
	$(PY) tools/colab_twin.py --sets flash_attn_1 --python $(COLAB_PYTHON)

colab-twin-2026.08: install ## the same on Colab's 2026.08 runtime (Python 3.13, the newest): results/colab-twin-2026.08/
	$(PY) tools/colab_twin.py --sets flash_attn_1 --python $(COLAB_PYTHON_313) \
	  --runtime tools/colab/runtime-2026.08.txt --work .colab-twin-2026.08 --out results/colab-twin-2026.08

notebooks: install ## rewrite the notebooks from notebooks/source/ (notebooks/build.py) and store CPU outputs for nbval
	$(PY) notebooks/build.py
	rm -rf runs/notebooks runs/checkpoints  # the stored outputs are those of a fresh clone
	$(PY) -m vanilla_flash notebooks --target cpu --out notebooks
	$(PY) notebooks/build.py --strip notebooks/flash_attn_*/*.ipynb
	$(PY) notebooks/build.py --to-vi notebooks/flash_attn_*/*.ipynb  # the Vietnamese twins: the same code, so the same outputs

# The site needs mkdocs and its theme alone (requirements-docs.txt), not torch or the package: a venv of its own.
DOCS_VENV ?= .venv-docs

$(DOCS_VENV)/.installed: requirements-docs.txt
	test -x $(DOCS_VENV)/bin/python || $(PYTHON) -m venv $(DOCS_VENV)
	$(DOCS_VENV)/bin/python -m pip install -q -r requirements-docs.txt
	touch $@

docs: $(DOCS_VENV)/.installed ## build the tutorial site (English + Vietnamese) into site/, strict: a broken link fails
	NO_MKDOCS_2_WARNING=1 $(DOCS_VENV)/bin/mkdocs build --strict

docs-serve: $(DOCS_VENV)/.installed ## preview the tutorial site on http://127.0.0.1:8000
	NO_MKDOCS_2_WARNING=1 $(DOCS_VENV)/bin/mkdocs serve

docs-figures: install ## redraw the docs' figures and copy the committed result plots into them
	$(PY) docs/figures/make_figures.py

lint: install ## ruff lint and format check
	$(VENV)/bin/ruff check scr tests notebooks docs tools experiments
	$(VENV)/bin/ruff format --check scr tests notebooks docs tools experiments

format: install ## ruff: fix what can be fixed, format
	$(VENV)/bin/ruff check --fix scr tests notebooks docs tools experiments
	$(VENV)/bin/ruff format scr tests notebooks docs tools experiments

# flash-attn 1.0.9's and 2.8.3's sources, for the CPU tests that load the same weights into 1.x's GPT
# and into transformers' (tests/test_fa_gpt.py) and that edit the real build files the way
# vanilla_flash.build.sources does (tests/test_install.py); fetched once, here, because the tests stay offline.
FA1_SOURCE := $(VENV)/src/flash-attn-1.0.9
FA2_SOURCE := $(VENV)/src/flash-attn-2.8.3
$(FA1_SOURCE)/setup.py: | $(VENV)/.installed
	scripts/fetch_flash_attn_source.sh 1.0.9 $(VENV)/src $(PY) || echo "(the flash-attn 1.x source tests will be skipped)"
$(FA2_SOURCE)/setup.py: | $(VENV)/.installed
	scripts/fetch_flash_attn_source.sh 2.8.3 $(VENV)/src $(PY) || echo "(the flash-attn 2.x source tests will be skipped)"

docs-tables: install ## rewrite the tables the README and docs quote from results files (tools/docs_tables.py)
	$(PY) tools/docs_tables.py

test: lint $(FA1_SOURCE)/setup.py $(FA2_SOURCE)/setup.py ## lint, unit tests (the docs' strict build among them), the notebooks under nbval; CPU, offline
	FA1_SOURCE=$(FA1_SOURCE) FA2_SOURCE=$(FA2_SOURCE) $(PY) -m pytest -q
	$(PY) -m pytest -q -p no:cacheprovider --nbval --nbval-current-env notebooks/flash_attn_*/*.ipynb

clean: ## remove caches and run outputs (keeps .venv)
	rm -rf .pytest_cache .ruff_cache runs outputs build dist site scr/*.egg-info $(DOCS_VENV)
