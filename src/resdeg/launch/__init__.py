"""How a sweep's jobs are launched, one concern per module:

- ``gpu_share``: how many runs share a GPU (measured by gpu-check, else a memory rule), and
  how many jobs a parallel sweep runs at once;
- ``gpu_slots``: each job of a parallel sweep claims a GPU slot (an ``flock``), so jobs land on
  distinct GPUs; a DDP job holds the whole node;
- ``ddp``: a DDP job inside a multirun, leaving the process clean for the next job;
- ``sweep_outcome``: the jobs that did not complete, named at the sweep's end (exit 2).

The launchers themselves are Hydra plugins (``hydra_plugins/resdeg_parallel``, ``resdeg_slurm``).
"""

from __future__ import annotations

from resdeg import devices


def default_launcher() -> str:
    """What ``LAUNCHER=auto`` (the Makefile's default) runs: the parallel launcher wherever a GPU
    is present, so a sweep uses every GPU of the machine; one run after another on a CPU,
    where two training processes on two cores slow each other far more than twice."""
    return "parallel" if devices.cuda_device_count() else "local"
