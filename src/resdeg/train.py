"""Hydra entry point: one training run, or one job of a multirun sweep.

    python -m resdeg.train model.arch=plain model.depth=56 protocol=cifar_quick
    python -m resdeg.train -m experiment=degradation_cifar protocol=cifar_quick

The life of a run: check the config; find its record (resdeg.record) and decide to skip,
resume or start afresh; build data, net, module and trainer (resdeg.build); train under the
record's lock; measure what the end of training records (resdeg.training.end_of_training);
record how it ended (resdeg.training.outcome). The record lands under
``results/runs/<dataset>-<protocol>/<run_id>/``, checkpoints and Hydra output under
``experiments/``. What a resume restores: docs/resilience.md.
"""

from __future__ import annotations

import logging
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from resdeg import ResdegError, RunStopped
from resdeg.build import build_parts, build_trainer, run_callbacks
from resdeg.config_checks import check_config
from resdeg.console import quiet_libraries, run_ended, run_started
from resdeg.devices import process_rank, training_device
from resdeg.record.decision import Decision, check_checkpoint_is_this_run, decide
from resdeg.record.identity import run_identity
from resdeg.record.layout import RunFolders, portable
from resdeg.record.lock import RunLock
from resdeg.resolvers import register_resolvers

log = logging.getLogger("resdeg")

# Hydra resolves the configs in this process and in every worker of a sweep (joblib, submitit),
# each of which imports this module to run its job
register_resolvers()


def train(cfg: DictConfig) -> dict:
    """Train one run and write its record; skips a complete record, resumes an interrupted one.

    Under DDP every process runs this function; only the first (rank 0) holds the lock and
    writes the record, and it decides whether the run resumes.
    """
    check_config(cfg)  # a bad value stops here, before anything is written (and before Lightning is imported)

    import lightning.pytorch as pl

    from resdeg.launch.ddp import ddp_job
    from resdeg.launch.gpu_slots import job_devices
    from resdeg.training.checkpoint_io import check_checkpoint_folder

    identity = run_identity(cfg)
    folders = RunFolders.of(cfg, identity)
    first_process = process_rank() == 0
    decision = decide(folders, identity["name"], force=cfg.force, rank=process_rank(), log_every=cfg.protocol.log_every)
    if decision.action == "skip":
        log.info(f"{identity['name']}: a complete record exists at {folders.record}; skipped (force=true reruns it)")
        return decision.previous

    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    parts = build_parts(
        cfg,
        run_id=identity["run_id"],
        evaluation_owed=decision.owes_evaluation(cfg.protocol.eval_every, cfg.protocol.iterations),
    )
    parts.datamodule.prepare_data()  # missing or corrupt data stops here, before any record is written
    if first_process:
        check_checkpoint_folder(folders.checkpoints)  # so does a checkpoint folder that refuses writes
    if decision.action == "resume":
        device = training_device(str(cfg.trainer.accelerator))
        check_checkpoint_is_this_run(decision.checkpoint, identity["run_id"], parts.module.state_dict(), device)
    with RunLock(folders.record) if first_process else nullcontext():  # under DDP the first process holds it
        if decision.action == "fresh" and first_process:
            folders.clear_checkpoints()
        with job_devices(cfg) as devices, ddp_job(cfg):
            return _fit_and_record(cfg, identity, folders, decision, parts, devices)


def _fit_and_record(cfg: DictConfig, identity: dict, folders: RunFolders, decision: Decision, parts, devices) -> dict:
    from resdeg.tracking.loggers import build_loggers, wandb_id, wandb_mode
    from resdeg.training.end_of_training import measure_at_the_end
    from resdeg.training.outcome import recorded_outcome
    from resdeg.training.recorder import RunRecorder

    protocol, module, datamodule, name = cfg.protocol, parts.module, parts.datamodule, identity["name"]
    previous = decision.previous if decision.action == "resume" else None
    recorder = RunRecorder(folders.record, identity, OmegaConf.to_yaml(cfg, resolve=True))
    if previous:
        recorder.continue_from(previous, decision.iteration)
    loggers = build_loggers(cfg, identity, recorder, previous)
    wandb_run = {"wandb_id": wandb_id(loggers)} if wandb_id(loggers) else {}
    recorder.start(
        **parts.sizes(),
        **wandb_run,
        iterations=int(protocol.iterations),
        iteration=decision.iteration,
        checkpoint_dir=portable(folders.checkpoints),
    )
    # the record says running from here: whatever stops the run is recorded, it is never left running
    # (a Ctrl-C as soon as the run says it started included)
    with recorded_outcome(recorder, loggers, name, folders.record, folders.checkpoints) as outcome:
        if process_rank() == 0:
            run_started(identity, portable(folders.record), decision.action, decision.iteration, wandb_mode(loggers))
        callbacks = run_callbacks(cfg, name, folders.checkpoints, recorder=recorder)
        trainer = outcome.trainer = build_trainer(
            cfg,
            devices=devices,
            logger=loggers,
            callbacks=callbacks.all,
            default_root_dir=str(Path(cfg.paths.experiments).absolute()),
        )
        preemption = outcome.preemption = callbacks.preemption
        started = time.monotonic()
        preemption.install()  # SIGTERM/SIGUSR1/SIGUSR2/Ctrl-C stop the run cleanly from here to its record's end
        trainer.fit(module, datamodule=datamodule, ckpt_path=decision.checkpoint)
        preemption.stop_if_received(trainer)  # e.g. during the loop's last evaluation
        signals = callbacks.signals
        measure_at_the_end(cfg, trainer, module, datamodule, recorder, preemption, signals, decision.iteration, name)
        outcome.stop_if_short(trainer, int(protocol.iterations))
        seconds = time.monotonic() - started
        final = outcome.complete(trainer, module, signals, callbacks.pace, seconds, int(protocol.batch_size))
    if outcome.status == "complete" and trainer.is_global_zero:
        folders.remove_tracked_checkpoints()
        run_ended(identity, "complete", final, time.monotonic() - started, portable(folders.record))
    return recorder.summary


# the configs ship inside the package (src/resdeg/conf; conf/ at the repository root points there),
# so an installed wheel and the resdeg-train script find them wherever they are launched
@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> None:
    from resdeg.launch.sweep_outcome import note_job_not_complete

    quiet_libraries()
    try:
        train(cfg)
    except ResdegError as exc:
        log.error(f"error: {exc}")
        # one job of a sweep that cannot run (locked, data missing...) lets the others go on, and
        # the sweep exits 2 at its end (resdeg.launch.sweep_outcome); a stopped run stops the sweep
        if isinstance(exc, RunStopped) or not note_job_not_complete(exc, lambda: process_rank() == 0):
            sys.exit(2)


if __name__ == "__main__":
    main()
