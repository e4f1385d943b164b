"""How a run ends, as its record says it: the one map from what stopped a run to the record's
status and to what the sweep does next.

    complete     the loop reached protocol.iterations: RunOutcome.complete, with the final errors and costs
    diverged     RunDiverged: a NaN/inf loss, or an error stuck at chance (resdeg.training.module);
                 the sweep goes on
    interrupted  a signal (SIGTERM, SIGUSR1/2, Ctrl-C, a dead output pipe: resdeg.training.preemption),
                 its checkpoint saved; a checkpoint the disk refused (the previous one intact); a
                 second Ctrl-C, which stops at once, or one before the loop began: the sweep stops
                 (RunStopped) and the same command resumes the run
    failed       anything else, raised on; "before training" when the trainer was never built

Every status is written to the record, then to the job's W&B run, which ends with it.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager

from resdeg import RunStopped
from resdeg.training.checkpoint_io import CheckpointNotWritten
from resdeg.training.module import RunDiverged
from resdeg.training.preemption import RunInterrupted

log = logging.getLogger("resdeg")


class RunOutcome:
    """The run's ending as it is recorded; ``trainer`` and ``preemption`` are set once built."""

    def __init__(self, recorder, loggers, name: str, record_folder, checkpoints):
        self.recorder, self.loggers, self.name = recorder, loggers, name
        self.record_folder, self.checkpoints = record_folder, checkpoints
        self.trainer = None
        self.preemption = None
        self.status: str | None = None

    def finish(self, status: str, **fields) -> None:
        """Close the record, then the W&B run of this job (one training run = one W&B run)."""
        from resdeg.tracking.wandb_logger import finish_wandb

        self.status = status
        self.recorder.finish(status, **fields)
        finish_wandb(self.loggers, self.recorder.summary)

    def stop_if_short(self, trainer, iterations: int) -> None:
        """Lightning can end fit() before ``iterations`` (a stop it was asked for): interrupted."""
        if trainer.global_step < iterations:
            self.finish("interrupted", message=f"stopped at iteration {trainer.global_step}")
            raise RunStopped(f"{self.name} stopped at iteration {trainer.global_step}; record: {self.record_folder}")

    def complete(self, trainer, module, signals, pace, seconds: float, batch_size: int) -> dict[str, float]:
        """Record the run complete, with its final errors and what it cost; the final errors."""
        final = final_errors(self.recorder.last_metrics)
        self.finish(
            "complete",
            final=final,
            train_seconds=round(seconds, 1),
            eval_seconds=round(module.eval_seconds, 1),
            evaluations=module.evaluations,
            **(signals.measured() if signals is not None else {}),
            **pace.measured(trainer),
            processes=trainer.world_size,
            batch_per_process=batch_size // trainer.world_size,
        )
        return final

    def failed(self, exc: BaseException) -> None:
        before = "" if self.trainer is not None else "before training: "
        self.finish("failed", message=f"{before}{type(exc).__name__}: {exc}")


@contextmanager
def recorded_outcome(recorder, loggers, name: str, record_folder, checkpoints):
    """Around a run's training: whatever stops it is recorded (see the module docstring)."""
    outcome = RunOutcome(recorder, loggers, name, record_folder, checkpoints)
    try:
        yield outcome
    except RunDiverged as exc:
        outcome.finish("diverged", message=str(exc), diverged_at=exc.iteration)
        log.error(f"{name}: {exc}; record: {record_folder} (status diverged)")
    except RunInterrupted as exc:
        outcome.finish("interrupted", message=str(exc), interrupted_at=exc.iteration)
        handler = outcome.preemption.next_handler()
        if handler is not None:  # submitit's: it requeues the job and exits here, or raises why it will not
            log.warning(f"{name}: {exc}; {exc.signal_name} handed on to {handler.__qualname__}")
            handler(outcome.preemption.received, None)
        raise RunStopped(f"{name}: {exc}; run the same command again to resume it") from None
    except CheckpointNotWritten as exc:  # a full or read-only checkpoint disk: the last checkpoint is intact
        outcome.finish("interrupted", message=str(exc), interrupted_at=outcome.trainer.global_step)
        raise
    except RunStopped:  # recorded where it was raised
        raise
    except BaseException as exc:
        # Ctrl-C: Lightning catches the KeyboardInterrupt, marks the trainer interrupted and exits(1)
        # inside its handler (so the SystemExit's context is the KeyboardInterrupt); one that lands
        # inside a library (OmegaConf restoring a node's flags) may surface as another error whose
        # context is the Ctrl-C. Either is the user's stop, not the run's failure: the sweep stops.
        trainer = outcome.trainer
        ctrl_c = from_ctrl_c(exc)
        if not (ctrl_c or (isinstance(exc, SystemExit) and trainer is not None and trainer.interrupted)):
            outcome.failed(exc)
            raise
        # a Ctrl-C the pre-emption handler received first is a second one; before the handler is
        # installed (the trainer being built) it is the first, and no iteration has trained
        handled = outcome.preemption is not None and outcome.preemption.received is not None
        how = ("a second Ctrl-C" if handled else "Ctrl-C") if ctrl_c else f"an exit ({type(exc).__name__} {exc})"
        at = trainer.global_step if trainer is not None else int(recorder.summary.get("iteration") or 0)
        outcome.finish("interrupted", message=f"{how} at iteration {at}", interrupted_at=at)
        raise RunStopped(
            f"{name}: stopped by {how} at iteration {at}, without a checkpoint; run "
            f"the same command again to resume it {resumes_where(checkpoints, name)}"
        ) from None
    finally:
        if outcome.preemption is not None:
            outcome.preemption.restore()


def from_ctrl_c(exc: BaseException | None) -> bool:
    """Whether ``exc`` is a Ctrl-C (KeyboardInterrupt) or was raised while one was handled."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def resumes_where(checkpoints, name: str) -> str:
    """Where the same command resumes a run stopped without a checkpoint: its last one, or the start."""
    from resdeg.record.decision import checkpoint_iteration, readable_checkpoint

    try:
        checkpoint = readable_checkpoint(checkpoints, name)
        return (
            f"at iteration {checkpoint_iteration(checkpoint)} (its last checkpoint)" if checkpoint else "from the start"
        )
    except Exception:  # noqa: BLE001 - a message must never hide how the run stopped
        return "from its last checkpoint"


def final_errors(last: dict[str, float]) -> dict[str, float]:
    """The errors at the last iteration, named ``<split>_<metric>``: train_error, test_error,
    val_error, val_top5_error, val_10crop_error, val_10crop_top5_error..."""
    return {
        f"{key.split('/')[0]}_{key.split('/')[1]}": value
        for key, value in sorted(last.items())
        if key.split("/")[-1].endswith("error")
    }
