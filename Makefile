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

.PHONY: help install run env check smoke test lint format clean

help: ## list every target
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(VENV)/.installed: requirements-dev.txt requirements-common.txt pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
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

run: install ## the main job on whatever hardware is here (on CPU: the tiny configuration)
	$(PY) -m vanilla_flash env
	$(PY) -m vanilla_flash smoke

lint: install ## ruff lint and format check
	$(VENV)/bin/ruff check scr tests
	$(VENV)/bin/ruff format --check scr tests

format: install ## ruff: fix what can be fixed, format
	$(VENV)/bin/ruff check --fix scr tests
	$(VENV)/bin/ruff format scr tests

test: lint ## lint, unit tests (CPU)
	$(PY) -m pytest -q

clean: ## remove caches and run outputs (keeps .venv)
	rm -rf .pytest_cache .ruff_cache runs outputs build dist scr/*.egg-info
