"""Where outputs go when no config names a folder: the results tree (records, figures, tables,
benchmarks) and the experiments folder (checkpoints, Hydra, W&B, smoke checks): ``$RESDEG_RESULTS``
and ``$RESDEG_EXPERIMENTS``, else ``results/`` and ``experiments/`` in the folder launched from,
as conf/config.yaml's ``paths`` say for a run. The benchmarks and the report read them here."""

from __future__ import annotations

import os
from pathlib import Path


def results_root() -> Path:
    return Path(os.environ.get("RESDEG_RESULTS") or "results")


def experiments_root() -> Path:
    return Path(os.environ.get("RESDEG_EXPERIMENTS") or "experiments")
