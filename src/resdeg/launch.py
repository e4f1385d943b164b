"""Running the jobs of a sweep side by side: one GPU per job (or a few small runs per GPU).

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
import sys
import time
from pathlib import Path

from hydra.experimental.callback import Callback

from resdeg import devices

log = logging.getLogger("resdeg")


def cuda_device_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def default_launcher() -> str:
    """What ``LAUNCHER=auto`` (the Makefile's default) runs: the parallel launcher wherever a GPU
    is present, so a sweep uses every GPU of the machine; one run after another on a CPU,
    where two training processes on two cores slow each other far more than twice."""
    return "parallel" if cuda_device_count() else "local"


def measured_runs_per_gpu(bench_dir: str | Path) -> int | None:
    """The runs per GPU that `make gpu-check` found to finish the degradation sweep soonest on
    this GPU model (results/bench/gpu_<device>.csv), or None where it has not run."""
    import csv

    if not cuda_device_count():
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
    import os

    import torch

    gpus = cuda_device_count()
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
    gpus = cuda_device_count()
    return gpus * int(runs_per_gpu) if gpus else int(cpu_jobs)


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
    gpus = cuda_device_count()
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


# jobs of a multirun that did not complete, one line each, in the sweep's folder
NOT_COMPLETE_FILE = "jobs_not_complete.txt"


def note_job_not_complete(error: Exception, write: bool = True) -> bool:
    """In a job of a multirun, note that it did not complete (and why) for the sweep's end
    (``write``: the first process of a DDP job notes it, the others return the same);
    False outside a multirun, where the error ends the process at once."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return False
    hydra_cfg = HydraConfig.get()
    if write:
        write_job_not_complete(Path(hydra_cfg.sweep.dir), hydra_cfg.job.num, hydra_cfg.overrides.task, error)
    return True


def write_job_not_complete(sweep_dir: Path, job_num: int, overrides, why) -> None:
    """One line in the sweep's list of jobs that did not complete (read by SweepOutcome)."""
    sweep_dir.mkdir(parents=True, exist_ok=True)
    line = f"job {job_num} ({' '.join(overrides)}): {why}".replace("\n", " ")
    with open(sweep_dir / NOT_COMPLETE_FILE, "a") as f:  # one short append per job: whole lines under joblib too
        f.write(line + "\n")


class SweepOutcome(Callback):
    """At the end of a multirun: name the jobs that did not complete and exit with status 2,
    so a script or CI running the sweep sees it (a diverged run is a result, not counted)."""

    def on_multirun_end(self, config, **kwargs) -> None:
        path = Path(config.hydra.sweep.dir) / NOT_COMPLETE_FILE
        lines = path.read_text().splitlines() if path.is_file() else []
        if lines:
            log.error(
                f"{len(lines)} job(s) of this sweep did not complete (listed in {path}):\n  " + "\n  ".join(lines)
            )
            sys.exit(2)


if __name__ == "__main__":  # `python -m resdeg.launch`: the Makefile's LAUNCHER=auto
    print(default_launcher())
