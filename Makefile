# resdeg: the user's entry points. Every target creates and uses the virtual environment
# in .venv on its own; nothing needs installing by hand.
#
#   make sweep-degradation             Fig. 6 sweep: {plain, residual} x {20, 32, 44, 56} on CIFAR-10
#   make sweep-degradation PROTOCOL=paper   the paper's 64k-iteration protocol (the default on a GPU)
#   make train ARGS="model.arch=plain model.depth=56"   one run, any Hydra overrides
#   make test                          the test suite (CPU, a few minutes)
#   make figures / make tables / make report   Fig. 6, Fig. 1, Table 6 and the verdict from results/
#   make bench                         training throughput table (results/bench/)

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

# quick | paper | auto (auto: paper where a GPU is present, quick otherwise)
PROTOCOL ?= auto
# seeds as a sweep axis, e.g. SEEDS=0,1,2
SEEDS ?= 0
# extra Hydra overrides for the sweep, e.g. ARGS="trainer.precision=bf16-mixed"
ARGS ?=

# Where CIFAR-10 lies (a folder holding cifar-10-python.tar.gz or cifar-10-batches-py/).
# RESDEG_CIFAR_ROOT wins; otherwise a copy in ../shared/data (this project's machines) is
# used; otherwise experiments/data (data.download=true fetches the official archive there).
RESDEG_CIFAR_ROOT ?= $(firstword $(patsubst %/cifar-10-python.tar.gz,%,$(wildcard $(CURDIR)/../shared/data/cifar-10-python.tar.gz)) $(CURDIR)/experiments/data)
export RESDEG_CIFAR_ROOT

.PHONY: setup test sweep-degradation train bench figures tables report clean-venv

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -e '.[dev]'
	touch $@

setup: $(VENV)/.installed

test: setup
	$(PY) -m pytest

sweep-degradation: setup
	@protocol=$(PROTOCOL); \
	if [ "$$protocol" = auto ]; then \
	  if $(PY) -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)'; then protocol=paper; \
	  else protocol=quick; echo "No GPU found: running the quick CPU protocol (conf/protocol/cifar_quick.yaml, about 30 min on 2 cores). PROTOCOL=paper runs the paper's 64k iterations."; fi; \
	fi; \
	set -x; $(PY) -m resdeg.train --multirun experiment=degradation_cifar protocol=cifar_$$protocol seed=$(SEEDS) $(ARGS)

# training throughput: harness vs bare PyTorch loop vs conventional pipeline (results/bench/)
bench: setup
	$(PY) -m resdeg.bench $(ARGS)

# regenerate figures / tables / both from results/ alone (results/figures, results/tables)
figures: setup
	$(PY) -m resdeg.report figures
tables: setup
	$(PY) -m resdeg.report tables
report: setup
	$(PY) -m resdeg.report all

train: setup
	$(PY) -m resdeg.train $(ARGS)

clean-venv:
	rm -rf $(VENV)
