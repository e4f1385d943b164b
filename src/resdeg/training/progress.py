"""A progress bar counted in iterations (the paper's unit), not epochs."""

from __future__ import annotations

from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.callbacks.progress.tqdm_progress import _update_n


class IterationProgressBar(TQDMProgressBar):
    """One bar from iteration 0 to max_steps across epochs, showing loss and errors."""

    def __init__(self, run_name: str, refresh_rate: int = 1):
        super().__init__(refresh_rate=refresh_rate)
        self.run_name = run_name

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
            self.train_progress_bar.set_postfix(self.get_metrics(trainer, pl_module))

    def init_validation_tqdm(self):
        # evaluations are short; their own bars would flood sweep logs
        bar = super().init_validation_tqdm()
        bar.disable = True
        return bar

    def get_metrics(self, trainer, pl_module):
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)
        return metrics
