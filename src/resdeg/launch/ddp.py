"""A DDP job inside a Hydra multirun, leaving the process as it found it for the next job."""

from __future__ import annotations

import contextlib
import os
import sys

# What Lightning's own DDP launcher sets in the first process's environment for the processes
# it starts (lightning/pytorch/strategies/launchers/subprocess_script.py)
LIGHTNING_DDP_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")


@contextlib.contextmanager
def ddp_job(cfg):
    """One DDP job of a Hydra multirun, leaving the process as it found it.

    Lightning starts the later DDP processes by re-running ``sys.argv``: in a multirun that
    would launch the whole sweep again, so they get this job's own overrides. After the job,
    the first process must not keep (a) the job's process group, or the next job would reuse
    a group whose other processes have exited ("Connection closed by peer" with gloo, a hang
    with NCCL), (b) the LOCAL_RANK... variables Lightning set, or the next job would take the
    processes as started externally and start none, (c) the rewritten ``sys.argv``, or the
    next job's processes would train this job's run.
    """
    if "ddp" not in str(cfg.trainer.get("strategy", "")):
        yield
        return
    from hydra.core.hydra_config import HydraConfig

    argv, environment = list(sys.argv), {key: os.environ.get(key) for key in LIGHTNING_DDP_ENV}
    if HydraConfig.initialized() and ("--multirun" in sys.argv or "-m" in sys.argv):
        sys.argv = [sys.argv[0], *HydraConfig.get().overrides.task]
    try:
        yield
    finally:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
        sys.argv = argv
        for key, value in environment.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
