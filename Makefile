# resdeg: the user's entry points. Every target creates and uses the virtual environment
# in .venv on its own; nothing needs installing by hand.
#
#   make sweep-degradation             Fig. 6 sweep: {plain, residual} x {20, 32, 44, 56} on CIFAR-10
#   make sweep-degradation PROTOCOL=paper   the paper's 64k-iteration protocol (the default on a GPU)
#   make sweep-degradation LAUNCHER=parallel   jobs side by side, one GPU each (the default where GPUs are; RUNS_PER_GPU=2: two per GPU)
#   make sweep-degradation LAUNCHER=slurm ARGS="hydra.launcher.partition=gpu"   a SLURM job array
#   make sweep-degradation SEEDS=0,1,2 FORCE=1   seeds as a sweep axis; FORCE=1 reruns complete runs
#   make sweep-deep                      ResNet-110 (SEEDS=0,1,2,3,4) and one ResNet-1202 (SEEDS_1202): Fig. 6's third panel, Table 6
#   make sweep-budget                    the budget study: plain/ResNet-20/56 at BUDGETS=500,1000,2000,4000 iterations (CPU)
#   make sweep-paper-20                  the paper's protocol on ResNet-20 and plain-20, resumable from a fresh clone (CPU: hours)
#   make sweep-shortcuts                 ResNet-20/56 x options A/B/C on CIFAR-10 (DATASET=imagenet: ResNet-34, Table 3)
#   make sweep-imagenet IMAGENET_ROOT=/data/imagenet   Table 2 / Fig. 4: {plain, residual} x {18, 34}
#   make train ARGS="model.arch=plain model.depth=56"   one run, any Hydra overrides
#   make test                          the test suite (CPU); make test-fast: lint and the fast tier (minutes)
#   make figures / make tables / make report   Fig. 6, Fig. 1, Fig. 7, the signals, Table 6 and the verdicts from
#                                      results/ (make report also writes results/REPORT.md and re-executes the notebook)
#   make bench                         training throughput table (results/bench/)
#   make gpu-check                     the GPU path measured in one command (results/bench/gpu_<device>.csv)
#   make help                          this list (also what a bare `make` prints)

SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

# quick | paper | auto (auto: paper where a GPU is present, quick otherwise)
PROTOCOL ?= auto
# seeds as a sweep axis, e.g. SEEDS=0,1,2
SEEDS ?= 0
# extra Hydra overrides for the sweep, e.g. ARGS="trainer.precision=bf16-mixed"
ARGS ?=
# auto | local (one job after another) | parallel (side by side, one GPU per job) | slurm (submitit).
# auto: parallel wherever a GPU is present (every GPU of the machine in use), local on a CPU
LAUNCHER ?= auto
# runs sharing one GPU under the parallel launcher; auto: the number make gpu-check measured
# best on this GPU model (results/bench/gpu_<device>.csv), else one CIFAR run per 16 GiB of GPU memory (at most 4)
RUNS_PER_GPU ?= auto
# Sweeps log to W&B beside the run record (online with credentials, else offline); LOGGER=none turns it off
LOGGER ?= wandb
# FORCE=1 reruns runs whose complete record exists (by default a re-launched sweep skips them)
FORCE ?= 0
# pytest-xdist workers of make test and test-fast (one thread each, tests/conftest.py); 0: in one process
TEST_WORKERS ?= 3
# depths of sweep-deep (ResNet-110 and ResNet-1202)
DEEP_DEPTHS ?= 110,1202
# seeds of sweep-deep's ResNet-1202: the paper trains one (SEEDS are ResNet-110's five runs)
SEEDS_1202 ?= 0
# iterations of the quick protocol family trained by sweep-budget, e.g. BUDGETS=500,1000
BUDGETS ?= 500,1000,2000,4000
# cifar10 | imagenet, for sweep-shortcuts
DATASET ?= cifar10
# ImageNet: a folder with train/ and val/, one sub-folder per class (ImageFolder layout)
IMAGENET_ROOT ?= $(RESDEG_IMAGENET_ROOT)

HYDRA_LAUNCHER_local := basic
HYDRA_LAUNCHER_parallel := parallel
HYDRA_LAUNCHER_slurm := slurm
# expanded only when a sweep runs (after setup): auto asks resdeg.launch whether a GPU is present
# (before the first set-up, as under `make -n`, there is no .venv to ask: local)
CHOSEN_LAUNCHER = $(if $(filter auto,$(LAUNCHER)),$(or $(shell $(PY) -m resdeg.launch 2>/dev/null),local),$(LAUNCHER))
SWEEP_ARGS_BUT_SEEDS = --multirun hydra/launcher=$(or $(HYDRA_LAUNCHER_$(CHOSEN_LAUNCHER)),$(error LAUNCHER=$(LAUNCHER) is unknown: use auto, local, parallel or slurm)) \
	launch.runs_per_gpu=$(RUNS_PER_GPU) logger=$(LOGGER) $(if $(filter 1 true yes,$(FORCE)),force=true)
SWEEP_ARGS = $(SWEEP_ARGS_BUT_SEEDS) seed=$(SEEDS)
comma := ,

# CIFAR-10 is found by the package itself (conf/data/cifar10.yaml: data.root, by default
# $RESDEG_CIFAR_ROOT, else experiments/data), the same inside make and outside it.

.PHONY: help setup test test-fast sweep-degradation sweep-deep sweep-budget sweep-paper-20 sweep-shortcuts sweep-imagenet train bench gpu-check figures tables report clean-venv

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -e '.[dev]'
	touch $@

setup: $(VENV)/.installed

help:
	@sed -n '1,/^$$/{s/^# \{0,1\}//;p}' $(firstword $(MAKEFILE_LIST))

# the whole suite (what CI runs), then the inner loop's tier: the formatter and linter, and
# the unit tests (tests/unit/; tests/integration/ is the slow tier, tests/conftest.py)
test: setup
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup

test-fast: setup
	$(VENV)/bin/ruff format --check src tests
	$(VENV)/bin/ruff check src tests
	$(PY) -m pytest -n $(TEST_WORKERS) tests/unit

# The CIFAR-10 protocol a target runs ($$protocol): PROTOCOL=paper or quick, or auto: the
# paper's with a GPU, the quick CPU family without one, said in one line with what the quick
# run shows for this target ($(1), one of the QUICK_SHOWS_* below); a GPU that this torch
# cannot use (a driver older than its CUDA) stops it with the fix (resdeg.devices)
CHOOSE_PROTOCOL = protocol=$(PROTOCOL); \
	if [ "$$protocol" = auto ]; then \
	  $(PY) -m resdeg.devices; gpu=$$?; [ $$gpu != 2 ] || exit 2; \
	  if [ $$gpu = 0 ]; then protocol=paper; \
	  else protocol=quick; echo "No GPU found: running the quick CPU protocol (conf/protocol/cifar_quick.yaml, 500 iterations unless protocol.iterations=N; each run says its expected wall time). $(1) PROTOCOL=paper runs the paper's 64k iterations."; fi; \
	fi
QUICK_SHOWS_degradation := At 500 iterations it shows the plain half of Fig. 6; the budget study (make sweep-budget SEEDS=0,1; results/REPORT.md) measures which budget shows the residual half.
QUICK_SHOWS_deep := Its warm-up is a linear ramp to lr 0.05, not the paper's lr 0.01 until 80% training error (docs/protocols.md); ResNet-1202 takes hours on a CPU (DEEP_DEPTHS=110 leaves it out).
QUICK_SHOWS_train := The report draws a run only beside runs of the same protocol settings (results/README.md: The report's sets).
QUICK_SHOWS_shortcuts := The shortcut options on CIFAR-10 are not in the paper (its Table 3 is ImageNet: DATASET=imagenet).

sweep-degradation: setup
	@$(call CHOOSE_PROTOCOL,$(QUICK_SHOWS_degradation)); \
	set -x; $(PY) -m resdeg.train $(SWEEP_ARGS) experiment=degradation_cifar protocol=cifar_$$protocol $(ARGS)

# Fig. 6's deep ResNets: ResNet-110 (SEEDS=0,1,2,3,4 for the paper's five runs) and ResNet-1202 (SEEDS_1202: one, as the paper),
# with the paper's 0.01 warm-up (cifar_paper_warmup); without a GPU the quick CPU family
# (DEEP_DEPTHS=110 leaves out ResNet-1202, hours on a CPU)
sweep-deep: setup
	@$(call CHOOSE_PROTOCOL,$(QUICK_SHOWS_deep)); \
	if [ "$$protocol" = paper ]; then protocol=paper_warmup; fi; \
	for depth in $(subst $(comma), ,$(DEEP_DEPTHS)); do \
	  seeds=$(SEEDS); [ $$depth != 1202 ] || seeds=$(SEEDS_1202); \
	  (set -x; $(PY) -m resdeg.train $(SWEEP_ARGS_BUT_SEEDS) seed=$$seeds experiment=deep_cifar protocol=cifar_$$protocol \
	    model.depth=$$depth $(ARGS)) || exit $$?; \
	done

# The budget study: how many quick-protocol iterations the residual advantage needs on a CPU
# (plain/ResNet-20/56; `make report` draws results/figures/budget_cifar10_quick.png)
sweep-budget: setup
	set -x; $(PY) -m resdeg.train $(SWEEP_ARGS) experiment=budget_cifar protocol.iterations=$(BUDGETS) $(ARGS)

# The paper's protocol, unchanged (64k iterations, lr 0.1), on the 20-layer nets: ResNet-20, then
# plain-20. Hours on a CPU (the run says how many from its first iterations), longer than a
# machine may be kept: its last.ckpt lies in the results tree (results/checkpoints/); commit it
# with the record while the run trains, and the same command resumes it on a fresh clone. The
# checkpoint is removed when the run completes.
sweep-paper-20: setup
	set -x; $(PY) -m resdeg.train $(SWEEP_ARGS) experiment=degradation_cifar protocol=cifar_paper model.depth=20 \
	  model.arch=residual,plain 'paths.checkpoints=$${paths.results}/checkpoints' $(ARGS)

# Shortcut options A/B/C: on CIFAR-10 (ResNet-20/56, not in the paper; quick protocol without
# a GPU) or on ImageNet (ResNet-34, Table 3)
sweep-shortcuts: setup
	@if [ "$(DATASET)" = imagenet ]; then \
	  set -x; $(PY) -m resdeg.train $(SWEEP_ARGS) experiment=shortcuts_imagenet $(IMAGENET_DATA) $(ARGS); \
	else \
	  $(call CHOOSE_PROTOCOL,$(QUICK_SHOWS_shortcuts)); \
	  set -x; $(PY) -m resdeg.train $(SWEEP_ARGS) experiment=shortcuts_cifar protocol=cifar_$$protocol $(ARGS); \
	fi

# ImageNet (Table 2, Fig. 4): {plain, residual} x {18, 34}, the paper's protocol
sweep-imagenet: setup
	@test -n "$(IMAGENET_ROOT)" || { echo "set IMAGENET_ROOT=/path/to/imagenet (a folder with train/ and val/, one sub-folder per class)"; exit 2; }
	set -x; $(PY) -m resdeg.train $(SWEEP_ARGS) experiment=degradation_imagenet $(IMAGENET_DATA) $(ARGS)

IMAGENET_DATA = $(if $(IMAGENET_ROOT),data.root=$(IMAGENET_ROOT))

# training throughput: harness vs bare PyTorch loop vs conventional pipeline (results/bench/)
bench: setup
	$(PY) -m resdeg.perf.bench $(ARGS)

# the GPU path measured in one command, within 5 minutes (ARGS=--budget-s=540: more of each section):
# throughput (harness and bare loop, fp32 and bf16), runs per GPU, syncs per step, a 1,000-iteration
# run end to end, compiled settings, projected sweep times: results/bench/gpu_<device>.csv and .md.
# Without a GPU: a smoke version in about a minute, written to experiments/gpu_check/
gpu-check: setup
	$(PY) -m resdeg.perf.gpu_check $(ARGS)

# regenerate figures / tables / both from results/ alone (results/figures, results/tables)
figures: setup
	$(PY) -m resdeg.report figures
tables: setup
	$(PY) -m resdeg.report tables
# with LOGGER=wandb (the default) the report's figures and tables also go to a W&B run 'report'
# and notebooks/explore_results.ipynb re-executed on them (committed with its outputs)
report: setup
	$(PY) -m resdeg.report all $(if $(filter wandb,$(LOGGER)),--wandb)
	$(PY) -m resdeg.report notebook

# one run; its CIFAR-10 protocol is chosen as the sweeps choose it, unless ARGS names one
# (protocol=..., an experiment, or ImageNet data)
train: setup
	@if echo " $(ARGS)" | grep -qE '[ ](protocol|experiment)=|data=imagenet'; then \
	  set -x; $(PY) -m resdeg.train $(ARGS); \
	else \
	  $(call CHOOSE_PROTOCOL,$(QUICK_SHOWS_train)); \
	  set -x; $(PY) -m resdeg.train protocol=cifar_$$protocol $(ARGS); \
	fi

clean-venv:
	rm -rf $(VENV)
