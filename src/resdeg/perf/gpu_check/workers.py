"""One measurement in a process of its own: a compiled setting (stopped if compiling outlasts the
budget), or one of several runs timed side by side on one GPU.

A worker prints its result as one ``RESULT <json>`` line. Runs timed together wait for each
other after their warm-up (``Barrier``); a worker that dies on the way ends the measurement
within a second: the others are told (an ``abort`` file beside the barrier's) and stopped,
instead of waiting for it until the budget is gone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import lightning.pytorch as pl
import torch

from resdeg.perf.timing import REPO, Timing, compose_cfg, time_bare, time_harness

ABORT = "abort"


class WorkerDied(RuntimeError):
    pass


def start_worker(spec: dict, logs: Path, threads: int | None = None) -> subprocess.Popen:
    """The worker of ``spec``, its output in files under ``logs`` (a pipe left unread could fill and stall it)."""
    env = {**os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {})}
    logs.mkdir(parents=True, exist_ok=True)
    index = spec.get("index", 0)
    out, err = open(logs / f"out-{index}", "w"), open(logs / f"err-{index}", "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "resdeg.perf.gpu_check", "--worker", json.dumps(spec)],
        cwd=REPO,
        env=env,
        stdout=out,
        stderr=err,
        text=True,
    )
    process.logs = (logs / f"out-{index}", logs / f"err-{index}")
    out.close()
    err.close()
    return process


def finish_workers(processes: list[subprocess.Popen], timeout: float, barrier: Path | None = None) -> list[dict]:
    """Every worker's result; WorkerDied as soon as one fails (the others are stopped), or
    TimeoutError when they outlast ``timeout`` seconds."""
    deadline = time.monotonic() + max(1.0, timeout)
    try:
        while any(p.poll() is None for p in processes):
            failed = [p for p in processes if p.poll() not in (None, 0)]
            if failed:
                raise WorkerDied(_why(failed[0]))
            if time.monotonic() > deadline:
                raise TimeoutError("the measurement outlasted the time budget")
            time.sleep(0.2)
        results = []
        for process in processes:
            lines = [
                line[len("RESULT ") :]
                for line in process.logs[0].read_text().splitlines()
                if line.startswith("RESULT ")
            ]
            if process.returncode or not lines:
                raise WorkerDied(_why(process))
            results.append(json.loads(lines[-1]))
        return results
    except BaseException:
        if barrier is not None:
            (barrier / ABORT).touch()
        for process in processes:  # none outlives its measurement
            if process.poll() is None:
                process.kill()
            process.wait()
        raise


def _why(process: subprocess.Popen) -> str:
    index = process.logs[0].name.removeprefix("out-")
    tail = process.logs[1].read_text(errors="replace").strip()[-250:]
    return f"worker {index} exited {process.returncode}: {tail or 'no output'}"


def run_worker(spec: dict, logs: Path, timeout: float) -> dict:
    return finish_workers([start_worker(spec, logs)], timeout)[0]


class Barrier(pl.Callback):
    """Holds a worker after its warm-up until all ``runs`` workers are warm, so they are timed
    together; stops it when another has died (the parent's ``abort`` file)."""

    def __init__(self, folder: str, index: int, runs: int, warmup: int):
        self.folder, self.index, self.runs, self.warmup = Path(folder), index, runs, warmup

    def on_train_batch_start(self, trainer, *_):
        if trainer.global_step == self.warmup:
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            (self.folder / f"ready-{self.index}").touch()
            while len(list(self.folder.glob("ready-*"))) < self.runs:
                if (self.folder / ABORT).exists():
                    raise WorkerDied("another worker of this measurement died")
                time.sleep(0.01)


def worker(spec: dict) -> dict:
    cfg = compose_cfg(spec["arch"], spec["depth"], spec["overrides"])
    result = {}
    for loop in spec["loops"]:
        if loop == "harness":
            callbacks = ()
            if spec.get("barrier"):
                callbacks = (Barrier(spec["barrier"], spec["index"], spec["runs"], spec["warmup"]),)
            timing: Timing = time_harness(cfg, spec["warmup"], spec["iterations"], callbacks=callbacks)
        else:
            timing = time_bare(cfg, spec["warmup"], spec["iterations"])
        result[loop] = vars(timing)
    return result
