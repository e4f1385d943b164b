"""Pre-emption: SIGTERM (a scheduler ending the job) or SIGUSR1 (SLURM's advance warning,
``#SBATCH --signal=USR1@90``) finish the current iteration, save ``last.ckpt`` and stop
the run; re-launching the same command resumes it from there."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import lightning.pytorch as pl

SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class RunInterrupted(RuntimeError):
    def __init__(self, iteration: int, signal_name: str, checkpoint: Path):
        super().__init__(f"{signal_name} received: stopped at iteration {iteration}, checkpoint saved to {checkpoint}")
        self.iteration, self.signal_name, self.checkpoint = iteration, signal_name, checkpoint


class PreemptionCheckpoint(pl.Callback):
    def __init__(self, checkpoint_path: str | Path):
        self.checkpoint_path = Path(checkpoint_path)
        self.received: signal.Signals | None = None
        self._previous: dict = {}

    def _handler(self, signum, frame) -> None:
        self.received = signal.Signals(signum)  # acted on at the end of the current iteration

    def on_train_start(self, trainer, pl_module) -> None:
        # Registered here, after Lightning installed its own SIGTERM handler at the start of
        # fit, and replacing it: Lightning would otherwise stop the run at its next check
        # (a SystemExit with status 0) without a checkpoint, racing with this callback.
        if threading.current_thread() is threading.main_thread():  # signals can only be set there
            for sig in SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handler)

    def teardown(self, trainer, pl_module, stage: str) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if self.received is not None:
            trainer.save_checkpoint(self.checkpoint_path)
            raise RunInterrupted(trainer.global_step, self.received.name, self.checkpoint_path)
