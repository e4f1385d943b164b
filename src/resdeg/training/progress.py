"""Progress counted in iterations (the paper's unit), not epochs: a bar on a terminal,
compact lines in a log file."""

from __future__ import annotations

import logging
import sys
import time

from lightning.pytorch.callbacks import ProgressBar, TQDMProgressBar
from lightning.pytorch.callbacks.progress.tqdm_progress import Tqdm, _update_n

log = logging.getLogger("resdeg")

# the order of a progress line's values: the training interval's, then the last evaluation's
SHOWN_FIRST = ("loss", "train_err", "test_err")


class IterationProgressBar(TQDMProgressBar):
    """One bar from iteration 0 to max_steps across epochs, showing loss and errors.

    The count moves every iteration; the loss and errors (values the module logged, which
    Lightning holds as tensors on the training device) are read only once per ``every``
    iterations, just after the module has closed an interval (``interval_just_closed``):
    reading them every iteration would make the host wait for the GPU at every step."""

    def __init__(self, run_name: str, every: int = 1, refresh_rate: int = 1, eval_every: int = 0):
        super().__init__(refresh_rate=refresh_rate)
        self.run_name, self.every, self.eval_every = run_name, max(1, int(every)), int(eval_every)

    def on_train_epoch_start(self, trainer, *_) -> None:
        if trainer.current_epoch == 0 or self.train_progress_bar.total != trainer.max_steps:
            self.train_progress_bar.reset(total=trainer.max_steps)
            self.train_progress_bar.initial = trainer.global_step
            _update_n(self.train_progress_bar, trainer.global_step)
        self.train_progress_bar.set_description(f"{self.run_name} it")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        n = trainer.global_step
        if self._should_update(n, self.train_progress_bar.total):
            _update_n(self.train_progress_bar, n)
            if interval_just_closed(n, self.every):
                self.train_progress_bar.set_postfix(self.get_metrics(trainer, pl_module))

    def on_train_end(self, trainer, pl_module) -> None:
        # The last interval closes after the loop's last update (the module's on_train_end runs
        # after this one): closed here, so that the bar ends on the training error and loss the
        # run's closing line gives, not those of `every` iterations before. A test error is
        # shown only where the loop's last evaluation was at the last iteration; otherwise it
        # is measured after the loop, and the closing line gives it.
        if self.train_progress_bar is not None and trainer.global_step == trainer.max_steps:
            pl_module.close_last_interval()
            metrics = {**self.get_metrics(trainer, pl_module), **getattr(pl_module, "last_interval", {})}
            if not self.eval_every or trainer.global_step % self.eval_every:
                metrics.pop("test_err", None)
            self.train_progress_bar.set_postfix(metrics)
        super().on_train_end(trainer, pl_module)

    def init_validation_tqdm(self):
        # evaluations are short, and their bars would flood sweep logs: disabled when made, since a
        # bar made enabled draws an empty "Validation: 0/?" line at once that stays under the run's bar
        return Tqdm(disable=True)

    def init_test_tqdm(self):
        return Tqdm(disable=True)

    def get_metrics(self, trainer, pl_module):
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)
        return metrics


def interval_just_closed(iteration: int, every: int) -> bool:
    """Whether the update that made ``iteration`` is the first after a logging interval closed.

    The module closes the interval ending at iteration k at the start of update k + 1 (so that a
    checkpoint at k holds the open sums: ClassifierModule.on_train_batch_start), and the test
    error of an evaluation at k is known after it, so the loss and errors *of* iteration k can
    be shown from the end of update k + 1 on; read at the end of update k they would be those
    of iteration k - every."""
    return iteration > 1 and (iteration - 1) % every == 0


class IterationProgressLines(ProgressBar):
    """For output that is not a terminal (SLURM logs, jobs of a parallel sweep, ``nohup``):
    one compact line every ``every`` iterations instead of a bar redrawn in place, so
    parallel jobs never interleave half-drawn bars. The metrics are read only then, one
    update after the iteration they belong to (``interval_just_closed``); the line of the
    last iteration shows the count alone (its interval closes after the loop, and the run's
    closing line gives its errors)."""

    def __init__(self, run_name: str, every: int):
        super().__init__()
        self.run_name, self.every = run_name, max(1, int(every))
        self._enabled = True

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def on_train_start(self, trainer, pl_module) -> None:
        self._started, self._start_step = time.monotonic(), trainer.global_step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        n = trainer.global_step
        if not (self._enabled and trainer.is_global_zero):
            return
        rate = (n - self._start_step) / max(time.monotonic() - self._started, 1e-9)
        if interval_just_closed(n, self.every):
            metrics = {k: v for k, v in self.get_metrics(trainer, pl_module).items() if k != "v_num"}
            metrics = dict(
                sorted(metrics.items(), key=lambda kv: SHOWN_FIRST.index(kv[0]) if kv[0] in SHOWN_FIRST else 9)
            )
            shown = ", ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items())
            log.info(f"{self.run_name} it {n - 1}/{trainer.max_steps} ({rate:.2f} it/s){': ' + shown if shown else ''}")
        if n == trainer.max_steps:
            log.info(f"{self.run_name} it {n}/{trainer.max_steps} ({rate:.2f} it/s)")


def progress_callback(run_name: str, every: int, stream=None, parallel: bool = False, eval_every: int = 0):
    """A redrawn bar on a terminal, compact lines anywhere else (see IterationProgressLines),
    and in a job of a parallel sweep, whose workers share the launching terminal: several
    bars redrawn on one terminal would overwrite each other."""
    stream = stream or sys.stderr
    if stream.isatty() and not parallel:
        return IterationProgressBar(run_name, every, eval_every=eval_every)
    return IterationProgressLines(run_name, every)
