"""GPU slots: the jobs of a parallel sweep side by side, one GPU per job (or a few small runs per GPU).

Hydra has no built-in "one GPU per parallel job" (hydra#1331, #377), and its parallel
launchers put every job on the first GPU. Here each job of a parallel sweep claims a
*slot*: slot s is on GPU s mod (device count), with ``runs_per_gpu`` slots per GPU. A slot
is an exclusive ``flock`` on a file under ``experiments/gpu_slots/``; the kernel releases
it when the job ends or dies, so a killed sweep never leaves a GPU claimed. A job whose
preferred slot is taken tries the others and, when all are taken, waits for one.

The device count is read at run time (``torch.cuda.device_count()``, which honours
CUDA_VISIBLE_DEVICES), both for the launcher's number of parallel jobs (``n_jobs: auto``,
decided by hydra_plugins/resdeg_parallel as the sweep starts) and for the slots.
On SLURM every job gets its own allocation, so no slot is claimed there.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from pathlib import Path

from resdeg import devices
from resdeg.launch.gpu_share import runs_per_gpu

log = logging.getLogger("resdeg")


def slot_order(job_num: int, n_devices: int, runs_per_gpu: int) -> list[tuple[int, int]]:
    """(slot, device) pairs in the order job ``job_num`` tries them: its own slot first.

    Consecutive jobs start on consecutive devices, so the first n_devices jobs land on n
    distinct GPUs, and a GPU gets a second run only once every GPU has one.
    """
    slots = n_devices * runs_per_gpu
    first = job_num % slots
    return [((first + i) % slots, (first + i) % slots % n_devices) for i in range(slots)]


class SlotClaim:
    """An exclusive claim on one GPU slot, held until ``release()`` (or the process ends)."""

    def __init__(
        self,
        slot_dir: str | Path,
        job_num: int,
        n_devices: int,
        runs_per_gpu: int = 1,
        poll_seconds: float = 5.0,
        timeout: float | None = None,
    ):
        self.slot_dir = Path(slot_dir)
        self.slot_dir.mkdir(parents=True, exist_ok=True)
        self.device: int | None = None
        self._file = None
        deadline = None if timeout is None else time.monotonic() + timeout
        waited = False
        while True:
            for slot, device in slot_order(job_num, n_devices, runs_per_gpu):
                handle = open(self.slot_dir / f"gpu{device}-slot{slot}.lock", "w")
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    handle.close()
                    continue
                handle.write(f"{os.getpid()}\n")
                handle.flush()
                self._file, self.device = handle, device
                return
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"every GPU slot under {self.slot_dir} is taken")
            if not waited:
                log.info(f"all {n_devices * runs_per_gpu} GPU slots are taken: waiting for one to free up")
                waited = True
            time.sleep(poll_seconds)

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing the file drops the flock
            self._file = None


def parallel_job() -> tuple[bool, int]:
    """(whether this job was started by the parallel launcher, its job number)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return False, 0
    hydra_cfg = HydraConfig.get()
    target = str(hydra_cfg.launcher.get("_target_", ""))
    # resdeg's own (hydra_plugins.resdeg_parallel), or Hydra's joblib launcher named directly
    return "resdeg_parallel" in target or "joblib" in target.lower(), int(hydra_cfg.job.get("num", 0) or 0)


class NodeClaim:
    """Every GPU slot of the machine, for a DDP job under the parallel launcher: its processes
    use the GPUs ``trainer.devices`` names, so no other job may share them. The slots are taken
    in one fixed order, waiting for each, so two such jobs never hold part of the node each."""

    def __init__(self, slot_dir: str | Path, n_devices: int, runs_per_gpu: int = 1):
        self.slot_dir = Path(slot_dir)
        self.slot_dir.mkdir(parents=True, exist_ok=True)
        self._files = []
        for slot, device in slot_order(0, n_devices, runs_per_gpu):
            handle = open(self.slot_dir / f"gpu{device}-slot{slot}.lock", "w")
            fcntl.flock(handle, fcntl.LOCK_EX)  # blocks until the job holding it ends
            self._files.append(handle)

    def release(self) -> None:
        for handle in self._files:
            handle.close()
        self._files = []


@contextlib.contextmanager
def job_devices(cfg):
    """The ``trainer.devices`` of this job: under the parallel launcher one claimed GPU, or for
    a DDP job (``trainer=ddp``) the config's devices with the whole node claimed; else the config's."""
    parallel, job_num = parallel_job()
    gpus = devices.cuda_device_count()
    if not (parallel and gpus and cfg.trainer.accelerator in ("auto", "gpu", "cuda")):
        yield cfg.trainer.devices
        return
    per_gpu = runs_per_gpu(cfg.launch.runs_per_gpu, Path(cfg.paths.results) / "bench", str(cfg.data.name))
    if "ddp" in str(cfg.trainer.get("strategy", "")):
        log.info(
            f"job {job_num}: DDP over trainer.devices={cfg.trainer.devices}; waiting for all {gpus} GPU(s) to be free"
        )
        node = NodeClaim(Path(cfg.paths.experiments) / "gpu_slots", gpus, per_gpu)
        try:
            yield cfg.trainer.devices
        finally:
            node.release()
        return
    claim = SlotClaim(Path(cfg.paths.experiments) / "gpu_slots", job_num, gpus, per_gpu)
    log.info(f"job {job_num}: GPU {claim.device} of {gpus} ({per_gpu} run(s) per GPU)")
    try:
        yield [claim.device]
    finally:
        claim.release()
