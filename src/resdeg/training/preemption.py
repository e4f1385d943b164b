"""Pre-emption: SIGTERM (a scheduler ending or requeueing the job), SIGUSR2 (submitit's advance
warning before a SLURM time limit, ``#SBATCH --signal=USR2@120``; ``SUBMITIT_PREEMPT_SIGNAL``
names another) or SIGUSR1 (a warning a job script asks for) stop the run with ``last.ckpt``
saved at the current iteration and the record marked ``interrupted``; re-launching the same
command resumes it from there.

Where someone else also wanted the signal (submitit, which requeues the job on its warning
signal), it is handed on once the checkpoint is saved (``next_handler``): under submitit the job is
requeued and resumes exactly, instead of being requeued mid-iteration with no checkpoint.

The signal is honoured wherever it lands in a run's life: during training (at the end of the
current iteration), during an evaluation inside the loop (at the end of that evaluation), or
after the loop, during the final evaluation, the 10-crop test or the layer responses (when
that step ends).

The same callback writes ``last.ckpt`` every ``checkpoint_minutes`` of training, whatever the
iteration: a kill no signal announces (SIGKILL, power loss, a session's end) then costs at most
that many minutes, where 100 iterations can take half an hour (ResNet-1202 on a 2-core CPU).

Under DDP the signal may reach one process only (SLURM signals the batch step, a user one
pid), and every process must stop at the same iteration, or the checkpoint save (a
collective) deadlocks; the wall-clock checkpoint too must be written by all at once. So the
processes agree every ``agree_every`` iterations, in one all-reduce of two flags (a signal
received anywhere; the first process's clock says a checkpoint is due), and on the other
iterations make no collective at all: a collective each step would cost every step a
rendezvous of the processes. A signal is honoured at most ``agree_every - 1`` iterations late
(SLURM warns 120 s ahead). A single-device run reads its own flag and clock every iteration:
no collective, no device read.
"""

from __future__ import annotations

import os
import select
import signal
import threading
import time
from pathlib import Path

import lightning.pytorch as pl
import torch

# under DDP: iterations between the processes' agreements (see the module docstring)
AGREE_EVERY = 10


def preemption_signals(env=os.environ) -> tuple[signal.Signals, ...]:
    """The signals that stop a run cleanly: SIGTERM, SIGUSR1, SIGUSR2, the one submitit was told
    to use for its warning (``SUBMITIT_PREEMPT_SIGNAL``, without ``SIG``), if another; Ctrl-C
    (SIGINT: a second one stops at once, without a checkpoint); and SIGPIPE when the reader of
    the run's output is gone (``make sweep-degradation | tee log`` with tee killed)."""
    names = ["SIGTERM", "SIGUSR1", "SIGUSR2", "SIG" + env.get("SUBMITIT_PREEMPT_SIGNAL", "USR2"), "SIGINT", "SIGPIPE"]
    return tuple(dict.fromkeys(getattr(signal, name) for name in names if hasattr(signal, name)))


def described(sig: signal.Signals) -> str:
    return {signal.SIGINT: "Ctrl-C", signal.SIGPIPE: "the end of the output's reader (SIGPIPE)"}.get(sig, sig.name)


def output_reader_gone() -> bool:
    """Whether stdout or stderr is a pipe whose reader has gone (a SIGPIPE from anywhere else,
    a closed socket say, is not a reason to stop: its error surfaces where it happened)."""
    poll = select.poll()
    for fd in (1, 2):
        poll.register(fd, select.POLLOUT)
    return any(events & select.POLLERR for _, events in poll.poll(0))


class RunInterrupted(RuntimeError):
    def __init__(self, iteration: int, signal_name: str, checkpoint: Path):
        super().__init__(f"{signal_name} received: stopped at iteration {iteration}, checkpoint saved to {checkpoint}")
        self.iteration, self.signal_name, self.checkpoint = iteration, signal_name, checkpoint


class PreemptionCheckpoint(pl.Callback):
    """Receives the pre-emption signals for the whole run (``install()`` ... ``restore()``)
    and stops it, all processes together, with a checkpoint (``stop_if_received``); writes
    ``last.ckpt`` every ``checkpoint_minutes`` of training (None: never by the clock)."""

    def __init__(
        self, checkpoint_path: str | Path, checkpoint_minutes: float | None = None, agree_every: int = AGREE_EVERY
    ):
        self.checkpoint_path = Path(checkpoint_path)
        self.checkpoint_s = None if checkpoint_minutes is None else float(checkpoint_minutes) * 60
        self.agree_every = int(agree_every)
        self.received: signal.Signals | None = None
        self._previous: dict = {}
        self._saved_at = time.monotonic()

    def _handler(self, signum, frame) -> None:
        sig = signal.Signals(signum)
        if sig == signal.SIGPIPE and not output_reader_gone():
            return
        if sig == signal.SIGINT:
            signal.signal(signal.SIGINT, signal.default_int_handler)  # a second Ctrl-C stops at once
            try:
                os.write(
                    2,
                    b"\nCtrl-C: stopping at the end of this step with a checkpoint (Ctrl-C again: at once, "
                    b"without one)\n",
                )
            except OSError:  # stderr gone too: the stop must not fail for want of a message
                pass
        if self.received is None:
            self.received = sig  # acted on where the run can stop cleanly

    def _register(self) -> None:
        if threading.current_thread() is threading.main_thread():  # signals can only be set there
            for sig in preemption_signals():
                if sig == signal.SIGINT and self.received is not None:
                    continue  # after a first Ctrl-C, the second stops at once (Python's handler)
                previous = signal.signal(sig, self._handler)
                self._previous.setdefault(sig, previous)

    def install(self) -> None:
        """From now until ``restore()``: resdeg.train calls it before training and restores after
        the final evaluation, so a signal is never the default (the process killed, the record
        left ``running``)."""
        self._register()

    def next_handler(self):
        """The handler the received signal had before this run's, to hand it on to once the
        checkpoint is saved (submitit's, which requeues the job and exits, or says why it will
        not); None where that was Python's default (not callable) or Lightning's own."""
        previous = self._previous.get(self.received) if self.received is not None else None
        owner = getattr(previous, "__module__", "") or ""
        if previous is signal.default_int_handler:  # Python's Ctrl-C: the run has stopped already
            return None
        return previous if callable(previous) and not owner.startswith("lightning") else None

    def restore(self) -> None:
        if threading.current_thread() is threading.main_thread():
            for sig, previous in self._previous.items():
                signal.signal(sig, previous)
        self._previous.clear()

    # Lightning installs its own SIGTERM handler at the start of every fit, validate and test:
    # it would stop this process alone (a SIGTERMException at its next batch) while the other
    # processes wait in a collective. Ours replaces it as each starts.
    def on_train_start(self, trainer, pl_module) -> None:
        self._register()
        self._saved_at = time.monotonic()
        # Lightning (2.6) broadcasts its own SIGTERM flag at every step under DDP, a collective and
        # a device read per step; its handler is replaced by this one, so that flag is always 0
        epoch_loop = trainer.fit_loop.epoch_loop
        if trainer.world_size > 1 and hasattr(epoch_loop, "_broadcast_sigterm_tensor"):
            epoch_loop._broadcast_sigterm_tensor = lambda: None

    def on_validation_start(self, trainer, pl_module) -> None:
        self._register()

    def on_test_start(self, trainer, pl_module) -> None:
        self._register()

    def agree(self, trainer) -> tuple[bool, bool]:
        """(a signal received by any process, the wall-clock checkpoint due): the same answer on
        every process; one all-reduce under DDP, none on a single device."""
        received = self.received is not None
        due = (
            self.checkpoint_s is not None
            and trainer.is_global_zero
            and time.monotonic() - self._saved_at >= self.checkpoint_s
        )
        if trainer.world_size > 1:
            flags = torch.tensor([float(received), float(due)], device=trainer.strategy.root_device)
            # one all-reduce (Lightning's strategy.reduce adds a barrier before it: two collectives)
            torch.distributed.all_reduce(flags, op=torch.distributed.ReduceOp.SUM)
            received, due = (value > 0 for value in flags.tolist())
        return received, due

    def stop_if_received(self, trainer) -> None:
        """Save last.ckpt and raise RunInterrupted on every process if any received a signal.
        Called by every process at the same points: after each step of the run that follows the
        loop (and, through on_train_batch_end, at the iterations the processes agree)."""
        if self.agree(trainer)[0]:
            self._stop(trainer)

    def _stop(self, trainer) -> None:
        if self.received == signal.SIGPIPE:
            from resdeg.console import output_to_stderr

            output_to_stderr()  # the run's last lines (where it stopped, how to resume) still reach the user
        trainer.save_checkpoint(self.checkpoint_path, weights_only=False)  # (None logs a line saying so)
        name = described(self.received) if self.received is not None else "a signal to another process"
        raise RunInterrupted(trainer.global_step, name, self.checkpoint_path)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if trainer.world_size > 1 and trainer.global_step % self.agree_every:
            return  # not an iteration the processes agree at: no collective
        received, due = self.agree(trainer)
        if received:
            self._stop(trainer)
        if due:
            trainer.save_checkpoint(self.checkpoint_path, weights_only=False)
            self._saved_at = time.monotonic()
