"""Config resolvers: small functions that configs call as ``${name:args}``.

They must exist before Hydra resolves a config, in the launching process and in every
worker of a sweep: the entry points register them (resdeg.train, whose module every sweep
worker imports to run its job, and the benchmarks). Each is arithmetic on config values: none
reads a file or imports the package's models, data or training.
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


RESOLVERS = {"percent_of": percent_of, "times": times, "with_gpus": with_gpus}


def register_resolvers() -> None:
    for name, function in RESOLVERS.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, function)
