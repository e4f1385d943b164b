"""Config resolvers: small functions that configs call as ``${name:args}``.

They must exist before Hydra resolves a config, in the launching process and in every
parallel worker, so the package registers them on import (``resdeg/__init__.py``); the
functions they call are imported only when a config uses them.
"""

from __future__ import annotations

from omegaconf import OmegaConf


def percent_of(percent: float, total: int) -> int:
    """``percent`` % of ``total`` iterations, rounded, at least 1: lets a protocol say
    "lr / 10 at 50% of the run" or "test error every 10% of the run" once for every budget."""
    return max(1, round(float(total) * float(percent) / 100))


def times(a: float, b: float) -> int | float:
    """``a`` times ``b``: lets a config size one value by another (the SLURM memory by the GPUs)."""
    product = float(a) * float(b)
    return int(product) if product.is_integer() else product


def with_gpus(gpus: int, with_gpus, without_gpus):
    """``with_gpus`` where a job asks for GPUs, else ``without_gpus``: lets the SLURM launcher
    size tasks, CPUs and memory for a GPU node and for a CPU-only one from ``gpus_per_node``."""
    return with_gpus if int(gpus or 0) > 0 else without_gpus


def _parallel_jobs(runs_per_gpu, cpu_jobs: int, results: str = "results", dataset: str = "cifar10") -> int:
    from pathlib import Path

    from resdeg.launch import parallel_jobs, runs_per_gpu as resolve

    return parallel_jobs(resolve(runs_per_gpu, Path(results) / "bench", dataset), cpu_jobs)


def _imagenet_paper_option(depth: int) -> str:
    from resdeg.models.shortcuts import imagenet_paper_option

    return imagenet_paper_option(depth)


RESOLVERS = {"percent_of": percent_of, "times": times, "with_gpus": with_gpus, "resdeg_parallel_jobs": _parallel_jobs,
             "imagenet_paper_option": _imagenet_paper_option}


def register_resolvers() -> None:
    for name, function in RESOLVERS.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, function)
