"""Timing a training step three ways: the harness as a sweep runs it (resdeg.build, the
Lightning Trainer, the run record as logger), a bare PyTorch loop on one batch already on the
device (an upper bound: no data work), and, in resdeg.perf.bench, a conventional torchvision
DataLoader pipeline. Warm-up iterations (cuDNN autotuning, torch.compile) are never timed.
"""

from __future__ import annotations

import gc
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir

from resdeg.conf import CONFIG_DIR
from resdeg.devices import sync
from resdeg.resolvers import register_resolvers

REPO = Path(__file__).resolve().parents[3]
# a profiler range around the timers' own synchronisations: gpu-check's sync count leaves them out
OWN_SYNC = "resdeg.perf.own_sync"


def own_sync() -> None:
    """The device caught up, for a timer: marked, so that a sync count never counts it."""
    with torch.profiler.record_function(OWN_SYNC):
        sync()


def compose_cfg(arch: str, depth: int, overrides: list[str]):
    """The config a run of this net composes (the benchmarks' one way to a config: they register
    the config resolvers here, as resdeg.train does on import)."""
    register_resolvers()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("config", [f"model.arch={arch}", f"model.depth={depth}", *overrides])


def build(cfg):
    """Model, optimizer factory and schedule of the bare loop, from the config a run composes."""
    from resdeg.build import instantiate

    model = instantiate(cfg.model)
    return model, instantiate(cfg.protocol.optimizer), instantiate(cfg.protocol.schedule)


@dataclass
class Timing:
    images_per_s: float
    # wall time of the untimed first iterations: cuDNN autotuning, and torch.compile's
    # compilation (and CUDA-graph capture) when compile is on
    warmup_s: float
    # the most GPU memory allocated while training (None on a CPU)
    peak_memory_mib: float | None
    # wall-clock time (time.time()) of the timed part: runs in several processes are compared by it
    timed_from: float = 0.0
    timed_until: float = 0.0


def fresh_peak_memory() -> None:
    """Start counting the peak GPU memory anew. The previous measurement's trainer, module and
    data module (CIFAR-10 on the GPU: 0.74 GB) sit in reference cycles until the collector runs:
    collected first, so that they do not inflate every peak after the first."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _peak_memory_mib() -> float | None:
    return round(torch.cuda.max_memory_allocated() / 2**20, 1) if torch.cuda.is_available() else None


def time_harness(cfg, warmup: int, iterations: int, callbacks: tuple = ()) -> Timing:
    """The harness as a sweep runs it (build_parts, the run's Lightning Trainer, the record
    as logger), evaluation off; ``callbacks`` are added (e.g. a profiler window)."""
    import lightning.pytorch as pl

    from resdeg.build import build_parts, build_trainer
    from resdeg.training.recorder import RunRecorder

    class Stopwatch(pl.Callback):
        def on_train_start(self, trainer, *_):
            self.began = time.perf_counter()

        def on_train_batch_start(self, trainer, *_):
            if trainer.global_step == warmup:
                own_sync()
                self.start, self.wall_start = time.perf_counter(), time.time()

        def on_train_end(self, trainer, *_):
            own_sync()
            self.seconds, self.wall_end = time.perf_counter() - self.start, time.time()

    parts = build_parts(cfg)  # exactly as resdeg.train builds a run
    stopwatch = Stopwatch()
    fresh_peak_memory()
    with tempfile.TemporaryDirectory() as tmp:
        recorder = RunRecorder(Path(tmp) / "record", {"run_id": "bench"}, "")
        recorder.start()
        trainer = build_trainer(
            cfg,
            max_steps=warmup + iterations,
            limit_val_batches=0,
            logger=[recorder],
            callbacks=[*callbacks, stopwatch],
            enable_checkpointing=False,
            enable_progress_bar=False,
            default_root_dir=tmp,
        )
        trainer.fit(parts.module, datamodule=parts.datamodule)
    return Timing(
        iterations * cfg.protocol.batch_size / stopwatch.seconds,
        stopwatch.start - stopwatch.began,
        _peak_memory_mib(),
        stopwatch.wall_start,
        stopwatch.wall_end,
    )


# the bare loop's arithmetic for each Lightning precision it knows: autocast dtype (None: none)
BARE_PRECISIONS = {
    "32-true": None,
    "32": None,
    "bf16-mixed": torch.bfloat16,
    "bf16": torch.bfloat16,
    "16-mixed": torch.float16,
    "16": torch.float16,
}


def time_bare(cfg, warmup: int, iterations: int) -> Timing:
    """A hand-written loop on one pre-made batch already on the device (no data work): the
    same net, optimizer, memory format, precision (autocast as Lightning's mixed precision
    does it, a gradient scaler for fp16) and compile setting as the harness."""
    from resdeg import ResdegError
    from resdeg.build import compile_network

    precision = str(cfg.trainer.precision)
    if precision not in BARE_PRECISIONS:
        raise ResdegError(f"the bare loop knows trainer.precision {', '.join(BARE_PRECISIONS)}, not {precision!r}")
    dtype = BARE_PRECISIONS[precision]
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model, optimizer_factory, schedule = build(cfg)
    memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
    model = model.to(device, memory_format=memory_format)
    compile_network(model, cfg.get("compile"))
    optimizer = optimizer_factory(model.parameters(), lr=schedule.lr(0))
    scaler = torch.amp.GradScaler(device.type, enabled=dtype is torch.float16)
    batch = cfg.protocol.batch_size
    images = torch.randn(batch, 3, 32, 32, device=device).contiguous(memory_format=memory_format)
    labels = torch.randint(0, 10, (batch,), device=device)
    fresh_peak_memory()
    began = time.perf_counter()
    for i in range(warmup + iterations):
        if i == warmup:
            own_sync()
            start, wall_start = time.perf_counter(), time.time()
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    own_sync()
    return Timing(
        iterations * batch / (time.perf_counter() - start), start - began, _peak_memory_mib(), wall_start, time.time()
    )
