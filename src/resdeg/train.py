"""Hydra entry point: one training run, or one job of a multirun sweep.

    python -m resdeg.train model.arch=plain model.depth=56 protocol=cifar_quick
    python -m resdeg.train -m experiment=degradation_cifar protocol=cifar_quick

The life of a run: check the config; find its record (resdeg.record) and decide to skip,
resume or start afresh; build data, net, module and trainer (resdeg.build); train under the
record's lock; record how it ended. The record lands under
``results/runs/<dataset>-<protocol>/<run_id>/``, checkpoints and Hydra output under ``experiments/``.
"""

from __future__ import annotations

import logging
import shutil
import sys
import time
from functools import partial
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from resdeg import ResdegError, RunStopped
from resdeg.build import build_parts, build_trainer, instantiate, run_callbacks
from resdeg.config_checks import check_config
from resdeg.console import quiet_libraries, run_ended, run_started
from resdeg.devices import training_device
from resdeg.record.decision import Decision, check_checkpoint_is_this_run, decide
from resdeg.record.identity import run_identity
from resdeg.record.layout import RunFolders, portable
from resdeg.record.lock import RunLock

log = logging.getLogger("resdeg")


def train(cfg: DictConfig) -> dict:
    """Train one run and write its record; skips a complete record, resumes an interrupted one.

    Under DDP every process runs this function; only the first (rank 0) holds the lock and
    writes the record, and it decides whether the run resumes.
    """
    import lightning.pytorch as pl

    from resdeg.launch import ddp_job, job_devices
    from resdeg.training.checkpoint_io import check_checkpoint_folder

    check_config(cfg)  # a bad value stops here, before anything is written
    identity = run_identity(cfg)
    folders = RunFolders.of(cfg, identity)
    first_process = process_rank() == 0
    decision = decide(folders, identity["name"], force=cfg.force, rank=process_rank(), log_every=cfg.protocol.log_every)
    if decision.action == "skip":
        log.info(f"{identity['name']}: a complete record exists at {folders.record}; skipped (force=true reruns it)")
        return decision.previous

    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    parts = build_parts(cfg)
    parts.module.run_id = identity["run_id"]  # written into every checkpoint: a resume checks it is this run's
    parts.datamodule.prepare_data()  # missing or corrupt data stops here, before any record is written
    if first_process:
        check_checkpoint_folder(folders.checkpoints)  # so does a checkpoint folder that refuses writes
    if decision.action == "resume":
        check_checkpoint_is_this_run(decision.checkpoint, identity["run_id"], parts.module.state_dict(),
                                     device=training_device(str(cfg.trainer.accelerator)))
    lock = RunLock(folders.record)
    if first_process:
        lock.acquire()
    try:
        if decision.action == "fresh" and first_process and folders.checkpoints.exists():
            shutil.rmtree(folders.checkpoints)  # a fresh run must never resume from an older run's checkpoint
        with job_devices(cfg) as devices, ddp_job(cfg):
            return _fit_and_record(cfg, identity, folders, decision, parts, devices)
    finally:
        lock.release()


def process_rank() -> int:
    """This process's global rank: 0 unless it is one of the later processes of a DDP run."""
    from lightning.pytorch.utilities import rank_zero_only

    return int(getattr(rank_zero_only, "rank", 0) or 0)


def _fit_and_record(cfg: DictConfig, identity: dict, folders: RunFolders, decision: Decision, parts, devices) -> dict:
    from lightning.pytorch.loggers import WandbLogger

    from resdeg.models import count_parameters, multiply_adds
    from resdeg.training.checkpoint_io import CheckpointNotWritten
    from resdeg.training.module import RunDiverged
    from resdeg.training.preemption import PreemptionCheckpoint, RunInterrupted
    from resdeg.training.recorder import RunRecorder
    from resdeg.training.pace import Pace
    from resdeg.training.signals import GradientSignals

    protocol, module, datamodule = cfg.protocol, parts.module, parts.datamodule
    recorder = RunRecorder(folders.record, identity, OmegaConf.to_yaml(cfg, resolve=True))
    if decision.action == "resume":
        recorder.continue_from(decision.previous, decision.iteration)
        # The checkpoint of an evaluation iteration is written just before that evaluation, so
        # a run killed during it resumes owing it: redo it first (its record rows, and the
        # plateau schedule's observation on ImageNet), as the uninterrupted run had it.
        module.evaluation_owed = decision.iteration % protocol.eval_every == 0 and 0 < decision.iteration < protocol.iterations
    loggers = build_loggers(cfg, identity, recorder, decision)
    wandb = next((lg for lg in loggers if isinstance(lg, WandbLogger)), None)
    wandb_id = wandb.version if wandb else None
    recorder.start(
        parameters=count_parameters(parts.model),
        multiply_adds=multiply_adds(parts.model, tuple(datamodule.input_size)),
        iterations=int(protocol.iterations),
        iteration=decision.iteration,
        checkpoint_dir=portable(folders.checkpoints),
        **({"wandb_id": wandb_id} if wandb_id else {}),
    )
    if process_rank() == 0:
        run_started(identity, portable(folders.record), decision.action, decision.iteration,
                    wandb._wandb_init.get("mode", "on") if wandb else "off")
    try:  # the record says running from here: a failure before training marks it, never leaves it running
        callbacks = run_callbacks(cfg, identity["name"], folders.checkpoints, recorder=recorder)
        trainer = build_trainer(cfg, devices=devices, logger=loggers, callbacks=callbacks,
                                default_root_dir=str(Path(cfg.paths.experiments).absolute()))
    except BaseException as exc:
        _finish(recorder, loggers, "failed", message=f"before training: {type(exc).__name__}: {exc}")
        raise
    preemption = next(c for c in callbacks if isinstance(c, PreemptionCheckpoint))
    signals = next((c for c in callbacks if isinstance(c, GradientSignals)), None)
    pace = next(c for c in callbacks if isinstance(c, Pace))

    started = time.monotonic()
    preemption.install()  # SIGTERM/SIGUSR1/SIGUSR2 stop the run cleanly from here to the end of the record
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=decision.checkpoint)
        preemption.stop_if_received(trainer)  # e.g. during the loop's last evaluation
        # what the end of training records, also when resumed at the last iteration (no batch trained)
        module.close_last_interval()
        if signals is not None:
            signals.measure(trainer, module)
        # the final test error: measured here unless the loop's last evaluation fell on the last
        # iteration; also when the run resumed from its last checkpoint, killed during that evaluation
        resumed_at_end = decision.iteration >= protocol.iterations > 0
        if trainer.global_step % protocol.eval_every or resumed_at_end:
            trainer.validate(module, datamodule=datamodule, verbose=False)
            preemption.stop_if_received(trainer)
        if getattr(datamodule, "has_test_crops", False) and trainer.global_step >= protocol.iterations:
            trainer.test(module, datamodule=datamodule, verbose=False)  # ImageNet's 10-crop errors for the tables
            preemption.stop_if_received(trainer)
        if cfg.get("layer_responses") and "test" in datamodule.eval_split_names and trainer.global_step >= protocol.iterations:
            _record_layer_responses(recorder, trainer, module, datamodule, identity["name"])
            preemption.stop_if_received(trainer)
    except RunDiverged as exc:
        _finish(recorder, loggers, "diverged", message=str(exc), diverged_at=exc.iteration)
        log.error(f"{identity['name']}: {exc}; record: {folders.record} (status diverged)")
        return recorder.summary
    except RunInterrupted as exc:
        _finish(recorder, loggers, "interrupted", message=str(exc), interrupted_at=exc.iteration)
        handler = preemption.next_handler()
        if handler is not None:  # submitit's: it requeues the job and exits here, or raises why it will not
            log.warning(f"{identity['name']}: {exc}; {exc.signal_name} handed on to {handler.__qualname__}")
            handler(preemption.received, None)
        raise RunStopped(f"{identity['name']}: {exc}; run the same command again to resume it") from None
    except CheckpointNotWritten as exc:  # a full or read-only checkpoint disk: the last checkpoint is intact
        _finish(recorder, loggers, "interrupted", message=str(exc), interrupted_at=trainer.global_step)
        raise
    except (KeyboardInterrupt, SystemExit) as exc:
        # Ctrl-C: Lightning catches the KeyboardInterrupt, marks the trainer interrupted and exits(1)
        # inside its handler (so the SystemExit's context is the KeyboardInterrupt)
        ctrl_c = isinstance(exc, KeyboardInterrupt) or isinstance(exc.__context__, KeyboardInterrupt)
        if not (ctrl_c or trainer.interrupted):
            _finish(recorder, loggers, "failed", message=f"{type(exc).__name__}: {exc}")
            raise
        how = "a second Ctrl-C" if ctrl_c else f"an exit ({type(exc).__name__} {exc})"
        _finish(recorder, loggers, "interrupted", message=f"{how} at iteration {trainer.global_step}",
                interrupted_at=trainer.global_step)
        raise RunStopped(f"{identity['name']}: stopped by {how} at iteration {trainer.global_step}, without a "
                         f"checkpoint; run the same command again to resume it {_resumes_where(folders, identity)}") from None
    except BaseException as exc:
        _finish(recorder, loggers, "failed", message=f"{type(exc).__name__}: {exc}")
        raise
    finally:
        preemption.restore()
    if trainer.global_step < protocol.iterations:  # Lightning stopped early (e.g. Ctrl-C)
        _finish(recorder, loggers, "interrupted", message=f"stopped at iteration {trainer.global_step}")
        raise RunStopped(f"{identity['name']} stopped at iteration {trainer.global_step}; record: {folders.record}")

    final = final_errors(recorder.last_metrics)
    _finish(recorder, loggers, "complete", final=final, train_seconds=round(time.monotonic() - started, 1),
            eval_seconds=round(module.eval_seconds, 1), evaluations=module.evaluations,
            **({"signals_seconds": round(signals.seconds, 2), "signal_measurements": signals.measurements}
               if signals is not None else {}),
            **pace.measured(trainer),
            processes=trainer.world_size, batch_per_process=int(protocol.batch_size) // trainer.world_size)
    if trainer.is_global_zero:
        if folders.checkpoints_tracked:  # the record is the result; the tracked tree stays light
            shutil.rmtree(folders.checkpoints, ignore_errors=True)
            log.info(f"{identity['name']}: complete; its checkpoints in the results tree ({portable(folders.checkpoints)}) "
                     "are removed")
        run_ended(identity, "complete", final, time.monotonic() - started, portable(folders.record))
    return recorder.summary


def _resumes_where(folders: RunFolders, identity: dict) -> str:
    """Where the same command resumes a run stopped without a checkpoint: its last one, or the start."""
    from resdeg.record.decision import checkpoint_iteration, readable_checkpoint

    try:
        checkpoint = readable_checkpoint(folders.checkpoints, identity["name"])
        return f"at iteration {checkpoint_iteration(checkpoint)} (its last checkpoint)" if checkpoint else "from the start"
    except Exception:  # noqa: BLE001 - a message must never hide how the run stopped
        return "from its last checkpoint"


def build_loggers(cfg: DictConfig, identity: dict, recorder, decision: Decision) -> list:
    """The run record first (the source of truth), then the configured logger, if any.

    A logger config with ``_partial_: true`` (logger=wandb) is called with the run's
    identity, resolved config, sweep and the W&B id of the run being resumed.
    """
    loggers = [recorder]
    if cfg.get("logger"):
        logger = instantiate(cfg.logger)
        if isinstance(logger, partial):
            from resdeg.tracking.wandb_logger import setting_overrides

            previous = decision.previous if decision.action == "resume" else None
            logger = logger(
                identity=identity,
                config=OmegaConf.to_container(cfg, resolve=True),
                previous_id=(previous or {}).get("wandb_id"),
                sweep=sweep_name(),
                # what the W&B run being resumed already holds: the record's rows before the kill
                already_logged=_logged_before(recorder) if previous else frozenset(),
                forced=bool(cfg.force),
                setting_overridden=bool(setting_overrides()),
            )
        loggers.append(logger)
    return loggers


def _logged_before(recorder) -> set[tuple[int, str]]:
    from resdeg.record import read_history

    history = recorder.record.folder / "history.csv"
    rows = read_history(history) if history.is_file() else []
    return {(iteration, f"{split}/{metric}") for iteration, split, metric, _ in rows}


def sweep_name() -> str:
    """The experiment a job belongs to (``degradation_cifar``...), or ``single`` for a lone run."""
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        return HydraConfig.get().runtime.choices.get("experiment") or "single"
    return "single"


def _record_layer_responses(recorder, trainer, module, datamodule, name: str) -> None:
    """Fig. 7's layer responses of the trained net on the test set, beside history.csv.

    An analysis after training: if it fails, the run is still recorded complete, without them.
    """
    from resdeg.models import eager
    from resdeg.training.responses import layer_response_std

    try:
        test = datamodule.val_dataloader()[datamodule.eval_split_names.index("test")]
        reduce = (lambda t: trainer.strategy.reduce(t, reduce_op="sum")) if trainer.world_size > 1 else (lambda t: t)
        with eager(module.model) as model:  # forward hooks on the eager net, also under compile
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


# the configs ship inside the package (src/resdeg/conf; conf/ at the repository root points there),
# so an installed wheel and the resdeg-train script find them wherever they are launched
@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> None:
    from resdeg.launch import note_job_not_complete

    quiet_libraries()
    try:
        train(cfg)
    except ResdegError as exc:
        log.error(f"error: {exc}")
        # one job of a sweep that cannot run (locked, data missing...) lets the others go on, and
        # the sweep exits 2 at its end (resdeg.launch.SweepOutcome); a stopped run stops the sweep
        if isinstance(exc, RunStopped) or not note_job_not_complete(exc, write=process_rank() == 0):
            sys.exit(2)


if __name__ == "__main__":
    main()
