"""Hydra entry point: one training run, or one job of a multirun sweep.

    python -m resdeg.train model.arch=plain model.depth=56 protocol=cifar_quick
    python -m resdeg.train -m experiment=degradation_cifar protocol=cifar_quick

Each run writes its record under ``results/runs/<dataset>-<protocol>/<run_id>/`` as it goes
(see resdeg.training.recorder); checkpoints and Hydra output go under ``experiments/``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sys
import time
from functools import partial
from pathlib import Path

import hydra
from hydra.errors import InstantiationException
from omegaconf import DictConfig, OmegaConf

from resdeg import ResdegError
from resdeg.config_checks import check_config

log = logging.getLogger("resdeg")

# The parts of the config that change what a run computes; two runs with equal values are
# the same experiment and share a run id. Paths, loader choice and logging do not count.
IDENTITY_DATA_KEYS = ("name", "val_size", "split_seed", "augment", "padding", "batch_size", "colour_augment")

# Set by the first process of a DDP run for the processes Lightning starts after it, so that
# all of them resume from the same checkpoint (or none does).
RESUME_ENV = "RESDEG_RESUME_CHECKPOINT"


def run_identity(cfg: DictConfig) -> dict:
    model = cfg.model
    name = f"plain-{model.depth}" if model.arch == "plain" else f"resnet-{model.depth}-{model.shortcut}"
    fingerprint = {
        "model": OmegaConf.to_container(model, resolve=True),
        "protocol": OmegaConf.to_container(cfg.protocol, resolve=True),
        "data": {k: cfg.data.get(k) for k in IDENTITY_DATA_KEYS if k in cfg.data},
        "seed": cfg.seed,
        "precision": str(cfg.trainer.get("precision")),
    }
    digest = _hash(fingerprint)
    # what all nets of one sweep share (protocol, data, precision): the report never draws
    # runs of different settings in one figure, even under one protocol name
    setting = {key: value for key, value in fingerprint.items() if key not in ("model", "seed")}
    return {
        "run_id": f"{name}_seed{cfg.seed}_{digest}",
        "name": name,
        "group": f"{cfg.data.name}-{cfg.protocol.name}",
        "dataset": cfg.data.name,
        "arch": model.arch,
        "depth": int(model.depth),
        "shortcut": model.shortcut,
        "protocol": cfg.protocol.name,
        # runs of one protocol at several budgets (quick-500, quick-1000...) share a family
        "protocol_family": cfg.protocol.get("family", cfg.protocol.name),
        "seed": int(cfg.seed),
        "config_hash": digest,
        "protocol_hash": _hash(setting),
    }


def _hash(fingerprint: dict) -> str:
    return hashlib.sha1(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()[:8]


def checkpoint_iteration(path: Path) -> int:
    import torch

    return int(torch.load(path, map_location="cpu", weights_only=False)["global_step"])


def readable_checkpoint(checkpoint_dir: Path, name: str) -> Path | None:
    """The newest checkpoint of the run that can be read (last.ckpt first, then the periodic
    ones, newest first); None when the run left none (killed before its first checkpoint).

    A checkpoint cut short (a full disk, a kill mid-write) is named and passed over; when
    none can be read, the run is not silently restarted: force=true starts it afresh.
    """
    candidates = sorted(checkpoint_dir.glob("*.ckpt"), key=lambda p: (p.name != "last.ckpt", -p.stat().st_mtime))
    unreadable = []
    for path in candidates:
        try:
            checkpoint_iteration(path)
        except Exception as exc:  # noqa: BLE001 - torch.load fails in many ways on a cut file
            unreadable.append(f"{path.name} ({type(exc).__name__})")
            continue
        if unreadable:
            log.warning(f"{name}: cannot read {', '.join(unreadable)}; resuming from {path.name} instead")
        return path
    if unreadable:
        raise ResdegError(f"{name}: no checkpoint of this run can be read ({', '.join(unreadable)} in {checkpoint_dir}); "
                          "rerun with force=true to start the run afresh")
    return None


def instantiate(node, **kwargs):
    """hydra.utils.instantiate, re-raising our own errors unwrapped (one clear message)."""
    try:
        return hydra.utils.instantiate(node, **kwargs)
    except InstantiationException as exc:
        cause = exc.__cause__
        if isinstance(cause, ResdegError):
            raise cause from None
        raise


def sweep_name() -> str:
    """The experiment a job belongs to (``degradation_cifar``...), or ``single`` for a lone run."""
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        return HydraConfig.get().runtime.choices.get("experiment") or "single"
    return "single"


def process_rank() -> int:
    """This process's global rank: 0 unless it is one of the later processes of a DDP run."""
    from lightning.pytorch.utilities import rank_zero_only

    return int(getattr(rank_zero_only, "rank", 0) or 0)


def train(cfg: DictConfig) -> dict:
    """Train one run and write its record; skips a complete record, resumes an interrupted one.

    Under DDP every process runs this function; only the first (rank 0) holds the lock and
    writes the record, and it decides whether the run resumes.
    """
    import lightning.pytorch as pl

    from resdeg.launch import job_devices
    from resdeg.training.module import ClassifierModule
    from resdeg.training.recorder import RunLock, read_summary

    check_config(cfg)  # a bad value stops here, before anything is written
    identity = run_identity(cfg)
    results = Path(cfg.paths.results).absolute()
    record_dir = results / "runs" / identity["group"] / identity["run_id"]
    checkpoint_dir = Path(cfg.paths.experiments).absolute() / "checkpoints" / identity["group"] / identity["run_id"]
    first_process = process_rank() == 0

    try:
        previous = read_summary(record_dir)
    except ResdegError:
        if not cfg.force:
            raise
        previous = None  # force=true replaces an unreadable record
    if first_process:
        if previous and previous.get("status") == "complete" and not cfg.force:
            log.info(f"{identity['name']}: a complete record exists at {record_dir}; skipped (force=true reruns it)")
            return previous
        unfinished = previous is not None and previous.get("status") != "complete" and not cfg.force
        resume = readable_checkpoint(checkpoint_dir, identity["name"]) if unfinished else None
        os.environ[RESUME_ENV] = str(resume or "")
    else:
        resume = Path(os.environ[RESUME_ENV]) if os.environ.get(RESUME_ENV) else None

    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()  # missing or corrupt data stops here, before any record is written
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

    lock = RunLock(record_dir)
    if first_process:
        lock.acquire()
    try:
        with job_devices(cfg) as devices:
            return _fit_and_record(cfg, identity, record_dir, checkpoint_dir, previous, resume, datamodule, model,
                                   module, devices)
    finally:
        lock.release()


def build_loggers(cfg, identity: dict, recorder, previous: dict | None) -> list:
    """The run record first (the source of truth), then the configured logger, if any.

    A logger config with ``_partial_: true`` (logger=wandb) is called with the run's
    identity, resolved config, sweep and the W&B id of the run being resumed.
    """
    loggers = [recorder]
    if cfg.get("logger"):
        logger = instantiate(cfg.logger)
        if isinstance(logger, partial):
            logger = logger(
                identity=identity,
                config=OmegaConf.to_container(cfg, resolve=True),
                previous_id=(previous or {}).get("wandb_id") if (previous or {}).get("status") != "complete" else None,
                sweep=sweep_name(),
            )
        loggers.append(logger)
    return loggers


def _ddp_safe_argv() -> None:
    """Lightning starts the later DDP processes by re-running ``sys.argv``; in a multirun that
    would launch the whole sweep again, so they get this job's own overrides instead."""
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized() and ("--multirun" in sys.argv or "-m" in sys.argv):
        sys.argv = [sys.argv[0], *HydraConfig.get().overrides.task]


def _fit_and_record(cfg, identity, record_dir, checkpoint_dir, previous, resume: Path | None, datamodule, model, module,
                    devices) -> dict:
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import WandbLogger

    from resdeg.models import count_parameters, multiply_adds
    from resdeg.training.module import RunDiverged
    from resdeg.training.preemption import PreemptionCheckpoint, RunInterrupted
    from resdeg.training.progress import IterationProgressBar
    from resdeg.training.recorder import RunRecorder

    protocol = cfg.protocol
    experiments = Path(cfg.paths.experiments).absolute()
    last_checkpoint = checkpoint_dir / "last.ckpt"
    recorder = RunRecorder(record_dir, identity, OmegaConf.to_yaml(cfg, resolve=True))
    resume_iteration = 0
    if resume:
        resume_iteration = checkpoint_iteration(resume)
        log.info(f"{identity['name']}: resuming the {previous['status']} run at iteration {resume_iteration} from {resume}")
        recorder.continue_from(previous, resume_iteration)
        # The checkpoint of an evaluation iteration is written just before that evaluation, so
        # a run killed during it resumes owing it: redo it first (its record rows, and the
        # plateau schedule's observation on ImageNet), as the uninterrupted run had it.
        module.evaluation_owed = resume_iteration % protocol.eval_every == 0 and 0 < resume_iteration < protocol.iterations
    elif checkpoint_dir.exists() and process_rank() == 0:
        shutil.rmtree(checkpoint_dir)  # a fresh run must never resume from an older run's checkpoint
    loggers = build_loggers(cfg, identity, recorder, previous)
    wandb_id = next((lg.version for lg in loggers if isinstance(lg, WandbLogger)), None)
    recorder.start(
        parameters=count_parameters(model),
        multiply_adds=multiply_adds(model, tuple(datamodule.input_size)),
        iterations=int(protocol.iterations),
        iteration=resume_iteration,
        checkpoint_dir=str(checkpoint_dir),
        **({"wandb_id": wandb_id} if wandb_id else {}),
    )
    if "ddp" in str(cfg.trainer.get("strategy", "")):
        _ddp_safe_argv()
    trainer = instantiate(
        cfg.trainer,
        devices=devices,
        max_steps=protocol.iterations,
        max_epochs=-1,
        # evaluate every eval_every iterations, across epoch boundaries
        val_check_interval=protocol.eval_every,
        check_val_every_n_epoch=None,
        logger=loggers,
        log_every_n_steps=protocol.log_every,
        callbacks=[
            IterationProgressBar(identity["name"]),
            ModelCheckpoint(dirpath=checkpoint_dir, every_n_train_steps=protocol.checkpoint_every, save_last=True),
            PreemptionCheckpoint(last_checkpoint),
        ],
        default_root_dir=str(experiments),
    )

    started = time.monotonic()
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=resume)
        # the final test error: measured here unless the loop's last evaluation fell on the last
        # iteration; also when the run resumed from its last checkpoint, killed during that evaluation
        resumed_at_end = resume_iteration >= protocol.iterations > 0
        if trainer.global_step % protocol.eval_every or resumed_at_end:
            trainer.validate(module, datamodule=datamodule, verbose=False)  # the final test error
        if getattr(datamodule, "has_test_crops", False) and trainer.global_step >= protocol.iterations:
            trainer.test(module, datamodule=datamodule, verbose=False)  # ImageNet's 10-crop errors for the tables
    except RunDiverged as exc:
        _finish(recorder, loggers, "diverged", message=str(exc), diverged_at=exc.iteration)
        log.error(f"{identity['name']}: {exc}; record: {record_dir} (status diverged)")
        return recorder.summary
    except RunInterrupted as exc:
        _finish(recorder, loggers, "interrupted", message=str(exc), interrupted_at=exc.iteration)
        raise ResdegError(f"{identity['name']}: {exc}; run the same command again to resume it") from None
    except BaseException as exc:
        _finish(recorder, loggers, "failed", message=f"{type(exc).__name__}: {exc}")
        raise
    if trainer.global_step < protocol.iterations:  # Lightning stopped early (e.g. Ctrl-C)
        _finish(recorder, loggers, "interrupted", message=f"stopped at iteration {trainer.global_step}")
        raise ResdegError(f"{identity['name']} stopped at iteration {trainer.global_step}; record: {record_dir}")

    if cfg.get("layer_responses") and "test" in datamodule.eval_split_names:
        _record_layer_responses(recorder, trainer, module, datamodule, identity["name"])
    final = final_errors(recorder.last_metrics)
    _finish(recorder, loggers, "complete", final=final, train_seconds=round(time.monotonic() - started, 1),
            eval_seconds=round(module.eval_seconds, 1), evaluations=module.evaluations,
            processes=trainer.world_size, batch_per_process=int(protocol.batch_size) // trainer.world_size)
    if trainer.is_global_zero:
        log.info(f"{identity['name']}: complete, {final}; record: {record_dir}")
    return recorder.summary


def _record_layer_responses(recorder, trainer, module, datamodule, name: str) -> None:
    """Fig. 7's layer responses of the trained net on the test set, beside history.csv.

    An analysis after training: if it fails, the run is still recorded complete, without them.
    """
    from resdeg.training.responses import layer_response_std

    try:
        test = datamodule.val_dataloader()[datamodule.eval_split_names.index("test")]
        model = getattr(module.model, "_orig_mod", module.model)  # the eager net under torch.compile
        reduce = (lambda t: trainer.strategy.reduce(t, reduce_op="sum")) if trainer.world_size > 1 else (lambda t: t)
        rows = layer_response_std(model, test, lambda x: x.to(module.device).contiguous(memory_format=module.memory_format),
                                  reduce)
        recorder.write_layer_responses(rows)
    except Exception as exc:  # noqa: BLE001 - never lose a trained run to its analysis
        log.warning(f"{name}: layer responses (Fig. 7) not recorded: {type(exc).__name__}: {exc}")


def final_errors(last: dict[str, float]) -> dict[str, float]:
    """The errors at the last iteration, named ``<split>_<metric>``: train_error, test_error,
    val_error, val_top5_error, val_10crop_error, val_10crop_top5_error..."""
    return {f"{key.split('/')[0]}_{key.split('/')[1]}": value for key, value in sorted(last.items())
            if key.split("/")[-1].endswith("error")}


def _finish(recorder, loggers, status: str, **fields) -> None:
    """Close the record, then the W&B run of this job (one training run = one W&B run)."""
    from resdeg.tracking.wandb_logger import finish_wandb

    recorder.finish(status, **fields)
    finish_wandb(loggers, recorder.summary)


@hydra.main(version_base="1.3", config_path="../../conf", config_name="config")
def main(cfg: DictConfig) -> None:
    try:
        train(cfg)
    except ResdegError as exc:
        log.error(f"error: {exc}")
        sys.exit(2)


if __name__ == "__main__":
    main()
