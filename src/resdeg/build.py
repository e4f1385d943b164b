"""One builder, from the composed config, of what a run trains with: the data module, the
network, the LightningModule (with its optimizer and schedule) and the Lightning Trainer.

Training (resdeg.train) and `make bench` build through these functions, so a benchmark
times exactly what a sweep runs. The Trainer's values that come from the protocol
(iterations, evaluation and logging cadence) are interpolated in conf/trainer/default.yaml.
"""

from __future__ import annotations

from dataclasses import dataclass

import hydra
from hydra.errors import InstantiationException
from omegaconf import DictConfig

from resdeg import ResdegError


def instantiate(node, **kwargs):
    """hydra.utils.instantiate, re-raising our own errors unwrapped (one clear message)."""
    try:
        return hydra.utils.instantiate(node, **kwargs)
    except InstantiationException as exc:
        cause = exc.__cause__
        if isinstance(cause, ResdegError):
            raise cause from None
        raise


@dataclass
class RunParts:
    datamodule: object  # resdeg.data.CIFAR10DataModule or ImageNetDataModule
    model: object  # the network (resdeg.models), before torch.compile
    module: object  # resdeg.training.module.ClassifierModule


def build_parts(cfg: DictConfig) -> RunParts:
    """Data module, network and LightningModule of the run ``cfg`` describes."""
    from resdeg.training.module import ClassifierModule

    datamodule = instantiate(cfg.data)
    model = instantiate(cfg.model)
    protocol = cfg.protocol
    module = ClassifierModule(
        model=model,
        schedule=instantiate(protocol.schedule),
        optimizer_factory=instantiate(protocol.optimizer),
        log_every=protocol.log_every,
        eval_split_names=datamodule.eval_split_names,
        channels_last=cfg.channels_last,
        give_up_at_chance_after=protocol.get("give_up_at_chance_after"),
        top5=getattr(datamodule, "top5", False),
    )
    if cfg.compile:
        import torch

        module.model = torch.compile(module.model)
    return RunParts(datamodule, model, module)


def build_trainer(cfg: DictConfig, **kwargs):
    """The Lightning Trainer of conf/trainer/, with this run's loggers, callbacks, devices
    and any overrides (a benchmark sets its own max_steps and turns evaluation off)."""
    return instantiate(cfg.trainer, **kwargs)
