"""One builder, from the composed config, of what a run trains with: the data module, the
network, the LightningModule (with its optimizer and schedule) and the Lightning Trainer.

Training (resdeg.train), `make bench` and `make gpu-check` build through these functions, so
a benchmark times exactly what a sweep runs. The Trainer's values that come from the protocol
(iterations, evaluation and logging cadence) are interpolated in conf/trainer/default.yaml.
"""

from __future__ import annotations

import os
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
    model: object  # the network (resdeg.models); compiled in place when cfg.compile asks
    module: object  # resdeg.training.module.ClassifierModule

    def sizes(self) -> dict[str, int]:
        """What a run's record keeps of its net: parameters, and multiply-adds per image."""
        from resdeg.models import count_parameters, multiply_adds

        return {
            "parameters": count_parameters(self.model),
            "multiply_adds": multiply_adds(self.model, tuple(self.datamodule.input_size)),
        }


def build_parts(cfg: DictConfig, run_id: str | None = None, evaluation_owed: bool = False) -> RunParts:
    """Data module, network and LightningModule of the run ``cfg`` describes; ``run_id`` is
    written into its checkpoints, ``evaluation_owed`` says a resumed run first redoes the
    evaluation it was killed in (resdeg.record.decision.Decision.owes_evaluation)."""
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
        run_id=run_id,
        evaluation_owed=evaluation_owed,
    )
    compile_network(module.model, cfg.compile)
    return RunParts(datamodule, model, module)


# torch.compile's modes; `compile: true` is "default". reduce-overhead adds CUDA-graph capture,
# which removes the launch cost of the ~170 kernels of a CIFAR net's step (a small net at
# batch 128 is launch-bound on a large GPU).
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def compile_mode(value) -> str | None:
    """The torch.compile mode that the config value ``compile`` asks for, or None (eager)."""
    if value is None or value is False or str(value).lower() in ("false", "off", "none"):
        return None
    if value is True or str(value).lower() == "true":
        return "default"
    if value in COMPILE_MODES:
        return value
    raise ResdegError(
        f"compile={value!r} is not a torch.compile setting: use false, true or one of {', '.join(COMPILE_MODES)}"
    )


def compile_network(model, value) -> None:
    """Compile ``model`` in place (nn.Module.compile): its state_dict keys stay those of the
    eager net, so a compiled run's checkpoint resumes uncompiled and back, and whether compile
    is on is no part of the run's identity. Compilation happens at the first forward."""
    mode = compile_mode(value)
    if mode is not None:
        model.compile(mode=mode)


@dataclass
class RunCallbacks:
    """A training run's callbacks, each by its role (``all``: the list the Trainer takes)."""

    progress: object
    periodic_checkpoint: object
    preemption: object
    pace: object
    signals: object | None

    @property
    def all(self) -> list:
        roles = [self.progress, self.periodic_checkpoint, self.preemption, self.pace, self.signals]
        return [c for c in roles if c is not None]


def run_callbacks(cfg: DictConfig, run_name: str, checkpoints, stream=None, recorder=None) -> RunCallbacks:
    """The callbacks of a training run: progress (a bar on a terminal, lines elsewhere), the
    periodic and last checkpoints (every ``protocol.checkpoint_every`` iterations), the pre-emption
    checkpoint (SIGTERM, SIGUSR1, SIGUSR2, Ctrl-C) which also writes last.ckpt every
    ``checkpoint_minutes`` (resdeg.training.preemption), the pace (measured
    images/s and the expected wall time, kept in the record), and where ``gradient_signals``
    asks, Section 4.1's forward and backward signals (resdeg.training.signals), written to
    the run record ``recorder`` (resdeg.training.recorder.RunRecorder) when there is one."""
    from pathlib import Path

    from lightning.pytorch.callbacks import ModelCheckpoint

    from resdeg.launch.gpu_slots import parallel_job
    from resdeg.training.pace import Pace
    from resdeg.training.preemption import PreemptionCheckpoint
    from resdeg.training.progress import progress_callback
    from resdeg.training.signals import GradientSignals

    return RunCallbacks(
        progress=progress_callback(
            run_name,
            every=cfg.protocol.log_every,
            stream=stream,
            parallel=parallel_job()[0],
            eval_every=cfg.protocol.eval_every,
        ),
        # one last.ckpt per run, always the newest: without enable_version_counter=False a run
        # resumed from a pre-emption checkpoint (saved before any periodic one) wrote last-v1.ckpt
        # beside a stale last.ckpt, and the next resume went back to the stale one
        periodic_checkpoint=ModelCheckpoint(
            dirpath=checkpoints,
            every_n_train_steps=cfg.protocol.checkpoint_every,
            save_last=True,
            enable_version_counter=False,
        ),
        # the pre-emption checkpoint, and last.ckpt every checkpoint_minutes whatever the iteration
        preemption=PreemptionCheckpoint(
            Path(checkpoints) / "last.ckpt", checkpoint_minutes=cfg.get("checkpoint_minutes")
        ),
        pace=Pace(
            run_name,
            int(cfg.protocol.batch_size),
            int(cfg.protocol.eval_every),
            update_record=recorder.update if recorder is not None else None,
        ),
        signals=(
            GradientSignals(cfg.protocol.eval_every, cfg.protocol.iterations, recorder.write_signals)
            if (cfg.get("gradient_signals") and recorder is not None)
            else None
        ),
    )


def build_trainer(cfg: DictConfig, **kwargs):
    """The Lightning Trainer of conf/trainer/, with this run's loggers, callbacks, devices
    and any overrides (a benchmark sets its own max_steps and turns evaluation off).

    In a SLURM job, Lightning's own auto-requeue is off: the run's pre-emption checkpoint
    (resdeg.training.preemption) and submitit requeue it, where Lightning would requeue on
    SIGUSR1 with a checkpoint of its own (hpc_ckpt) that the run's resume does not read.
    Checkpoints are written beside their destination (resdeg.training.checkpoint_io).
    ``trainer.deterministic=true`` turns cuDNN's benchmark off."""
    from lightning.pytorch.plugins.environments import SLURMEnvironment

    from resdeg.training.checkpoint_io import CheckpointBesideDestination

    if "plugins" not in kwargs:
        # checkpoints staged in their own folder, never in a (small, node-local) TMPDIR
        kwargs["plugins"] = [CheckpointBesideDestination()]
        # (asked only inside a SLURM job: elsewhere detect() warns wherever srun is installed)
        if "SLURM_JOB_ID" in os.environ and SLURMEnvironment.detect():
            kwargs["plugins"].append(SLURMEnvironment(auto_requeue=False))
    if cfg.trainer.get("deterministic") and "benchmark" not in kwargs:
        # cuDNN's benchmark picks convolution algorithms by timing them, differently from one
        # process to the next: where determinism is asked (the exact-resume tests), it is off
        kwargs["benchmark"] = False
    return instantiate(cfg.trainer, **kwargs)
