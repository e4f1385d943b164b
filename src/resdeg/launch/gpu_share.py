"""How many runs share one GPU, and how many jobs a parallel sweep runs at once.

``launch.runs_per_gpu: auto`` takes what `make gpu-check` measured best on this GPU model,
else a rule of GPU memory (one CIFAR run per 16 GiB, at most 4); a number is taken as it is.
"""

from __future__ import annotations

import os
from pathlib import Path

from resdeg import devices


def measured_runs_per_gpu(bench_dir: str | Path) -> int | None:
    """The runs per GPU that `make gpu-check` found to finish the degradation sweep soonest on
    this GPU model (results/bench/gpu_<device>.csv), or None where it has not run."""
    import csv

    if not devices.cuda_device_count():
        return None
    path = Path(bench_dir) / f"gpu_{devices.device_slug()}.csv"
    if not path.is_file():
        return None
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            if row.get("section") == "projection" and row.get("metric") == "recommended_runs_per_gpu":
                return max(1, int(float(row["value"])))
    return None


# Where gpu-check has not measured this GPU model: one CIFAR run per 16 GiB of the GPU's
# memory, at most 4 and at most the CPU cores per GPU (each run's Python loop keeps a core
# busy). A CIFAR run's step is small (ResNet-20 at batch 128 is launch-bound), so one run
# leaves most of a large GPU idle; an ImageNet run fills one GPU by itself.
GIB_PER_CIFAR_RUN = 16
MAX_RUNS_PER_GPU = 4


def memory_runs_per_gpu(dataset: str) -> int:
    """The documented rule above: 4 on an 80 GB GPU, 2 on a 40 GB one, 1 below 32 GiB or for ImageNet."""
    import torch

    gpus = devices.cuda_device_count()
    if dataset != "cifar10" or not gpus:
        return 1
    gib = torch.cuda.get_device_properties(0).total_memory / 2**30
    cores_per_gpu = (os.cpu_count() or 1) // gpus
    return max(1, min(MAX_RUNS_PER_GPU, int(gib // GIB_PER_CIFAR_RUN), cores_per_gpu))


def runs_per_gpu(value, bench_dir: str | Path, dataset: str = "cifar10") -> int:
    """``launch.runs_per_gpu``: a number, or ``auto``: for CIFAR what gpu-check measured best
    on this GPU model, else the memory rule (memory_runs_per_gpu); for ImageNet 1."""
    if str(value) == "auto":
        if dataset != "cifar10":
            return 1
        return measured_runs_per_gpu(bench_dir) or memory_runs_per_gpu(dataset)
    return int(value)


# the number of jobs the parallel launcher runs side by side, for each job to size what it
# takes of the node's cores by (resdeg.data.imagenet's decoding workers); 1 where unset
JOBS_SIDE_BY_SIDE_ENV = "RESDEG_JOBS_SIDE_BY_SIDE"


def jobs_side_by_side() -> int:
    return max(1, int(os.environ.get(JOBS_SIDE_BY_SIDE_ENV, "1") or 1))


def parallel_jobs(runs_per_gpu: int, cpu_jobs: int) -> int:
    """Jobs a parallel sweep runs at once: runs_per_gpu on each GPU, or cpu_jobs without one."""
    gpus = devices.cuda_device_count()
    return gpus * int(runs_per_gpu) if gpus else int(cpu_jobs)
