"""One check of the composed config, before any record is written.

A bad value found later costs more: `protocol.iterations=0` would record a "complete" run
with no data, `protocol.batch_size=0` a ZeroDivisionError, `protocol.schedule.base_lr=nan`
a run that trains and then "diverges", `trainer.precision=fp17` a record left "running".
Each check here names the key, the value and what is allowed, in one message; the entry
point turns it into exit status 2 and writes nothing.
"""

from __future__ import annotations

import math

from omegaconf import DictConfig

from resdeg import ResdegError
from resdeg.devices import unusable_gpu

# Lightning 2's precision values (lightning.fabric.connector); anything else fails deep inside the Trainer
PRECISIONS = (
    "64-true",
    "64",
    "32-true",
    "32",
    "16-true",
    "bf16-true",
    "16-mixed",
    "bf16-mixed",
    "16",
    "bf16",
    "transformer-engine",
    "transformer-engine-float16",
)

# CIFAR-10's training set; a held-out split (data.val_size) comes out of it
CIFAR10_TRAIN_IMAGES = 50_000
CIFAR10_CLASSES = 10
# numpy.random.seed's bound (Lightning's seed_everything seeds numpy too)
MAX_SEED = 2**32 - 1


def _integer(cfg: DictConfig, key: str, minimum: int | None = None) -> int:
    value = _get(cfg, key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ResdegError(f"{key}={value!r} is not an integer: give a whole number, e.g. {key}={max(minimum or 0, 1)}")
    if minimum is not None and value < minimum:
        raise ResdegError(f"{key}={value} is too small: it must be at least {minimum}")
    return value


def _positive_number(cfg: DictConfig, key: str) -> float:
    value = _get(cfg, key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ResdegError(f"{key}={value!r} must be a finite number above 0, e.g. {key}=0.1")
    return float(value)


def _number_at_least(cfg: DictConfig, key: str, minimum: float) -> float:
    value = _get(cfg, key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < minimum:
        raise ResdegError(f"{key}={value!r} must be a finite number of at least {minimum:g}")
    return float(value)


def _get(cfg: DictConfig, key: str):
    node = cfg
    for part in key.split("."):
        node = node[part]
    return node


def check_config(cfg: DictConfig) -> None:
    """Raise ResdegError naming the first bad value of the composed config; return if all are good."""
    seed = _integer(cfg, "seed", 0)
    if seed > MAX_SEED:  # numpy's seeds (Lightning seeds numpy too) end there
        raise ResdegError(f"seed={seed} is too large: it must be at most {MAX_SEED}")
    if "depth" in cfg.model:
        _integer(cfg, "model.depth", 1)  # which depths build is the model's own check
    protocol = cfg.protocol
    _integer(cfg, "protocol.iterations", 1)
    batch_size = _integer(cfg, "protocol.batch_size", 1)
    for key in ("log_every", "eval_every", "checkpoint_every"):
        if key in protocol:
            _integer(cfg, f"protocol.{key}", 1)
    minutes = cfg.get("checkpoint_minutes")
    if minutes is not None and (
        isinstance(minutes, bool) or not isinstance(minutes, (int, float)) or not math.isfinite(minutes) or minutes < 0
    ):
        raise ResdegError(
            f"checkpoint_minutes={minutes!r} must be a number of minutes of at least 0 "
            "(e.g. checkpoint_minutes=10), or null for checkpoints by iteration only"
        )
    _positive_number(cfg, "protocol.schedule.base_lr")
    for key in ("warmup_lr", "gamma"):
        if key in protocol.schedule:
            _positive_number(cfg, f"protocol.schedule.{key}")
    if "warmup_iterations" in protocol.schedule:
        _integer(cfg, "protocol.schedule.warmup_iterations", 0)
    for key in ("momentum", "weight_decay"):
        if key in protocol.get("optimizer", {}):
            _number_at_least(cfg, f"protocol.optimizer.{key}", 0)
    if "eval_batch_size" in cfg.data:
        _integer(cfg, "data.eval_batch_size", 1)
    if cfg.data.get("name") == "cifar10":
        val_size = _integer(cfg, "data.val_size", 0)
        train_images = CIFAR10_TRAIN_IMAGES - val_size
        if train_images < 1:
            raise ResdegError(
                f"data.val_size={val_size} leaves no training images: it must be below {CIFAR10_TRAIN_IMAGES}"
            )
        classes = cfg.model.get("num_classes", CIFAR10_CLASSES)
        if classes != CIFAR10_CLASSES:
            raise ResdegError(
                f"model.num_classes={classes!r} does not match CIFAR-10's {CIFAR10_CLASSES} classes: "
                f"leave it at {CIFAR10_CLASSES}"
            )
        if batch_size > train_images:
            raise ResdegError(
                f"protocol.batch_size={batch_size} is larger than the {train_images} training images: "
                f"choose at most {train_images} (the paper's is 128)"
            )
    devices = cfg.trainer.get("devices", 1)
    if isinstance(devices, int) and not isinstance(devices, bool) and devices == 0:
        raise ResdegError("trainer.devices=0 trains on no device: give a number of at least 1, or auto")
    accelerator = str(cfg.trainer.get("accelerator", "auto"))
    if accelerator in ("gpu", "cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ResdegError(
                f"trainer.accelerator={accelerator} but no CUDA GPU is usable here "
                f"({unusable_gpu() or 'torch.cuda.is_available() is False'}): use trainer.accelerator=auto or cpu"
            )
    elif accelerator == "auto" and cfg.get("protocol", {}).get("family") != "quick":
        # a GPU protocol on a machine whose GPU this torch cannot use would train on the CPU for days
        reason = unusable_gpu()
        if reason:
            raise ResdegError(reason)
    precision = str(cfg.trainer.get("precision", "32-true"))
    if precision not in PRECISIONS:
        raise ResdegError(f"trainer.precision={precision!r} is unknown: choose one of {', '.join(PRECISIONS[:10])}")
    if "compile" in cfg:
        from resdeg.build import compile_mode

        compile_mode(cfg.compile)  # false, true or a torch.compile mode
    per_gpu = cfg.get("launch", {}).get("runs_per_gpu", 1)
    if str(per_gpu) != "auto" and (isinstance(per_gpu, bool) or not isinstance(per_gpu, int) or per_gpu < 1):
        raise ResdegError(
            f"launch.runs_per_gpu={per_gpu!r} must be a whole number of at least 1, or auto "
            "(what make gpu-check measured best on this GPU)"
        )
