"""The LightningModule: SGD on cross-entropy with the paper's iteration-based schedule.

Errors are in percent, as in the paper. Every ``log_every`` iterations the module logs the
training error and loss averaged over the minibatches of that interval (the dashed curves
of Fig. 6), and every evaluation logs the error on the test set (the bold curves) and on
the held-out validation split when there is one. All are keyed by the iteration.
"""

from __future__ import annotations

import math

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import nn

from resdeg.training.schedule import StepSchedule


# 10 classes: a net that has learnt nothing errs on 90% of images
CHANCE_ERROR = 89.0


class RunDiverged(RuntimeError):
    """The training loss became NaN/inf, or the error is stuck at chance past a set iteration."""

    def __init__(self, iteration: int, what: str):
        super().__init__(f"{what} at iteration {iteration}: the run diverged")
        self.iteration = iteration


class ClassifierModule(pl.LightningModule):
    def __init__(
        self,
        model: nn.Module,
        schedule: StepSchedule,
        optimizer_factory,
        log_every: int = 100,
        eval_split_names: tuple[str, ...] = ("test",),
        channels_last: bool = False,
        give_up_at_chance_after: int | None = None,
    ):
        super().__init__()
        self.model = model
        self.schedule = schedule
        self.optimizer_factory = optimizer_factory
        self.log_every = log_every
        self.eval_split_names = list(eval_split_names)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.give_up_at_chance_after = give_up_at_chance_after
        self.warmup_done_at: int | None = None
        self._reset_train_sums()

    # -- training -----------------------------------------------------------------
    def configure_optimizers(self):
        return self.optimizer_factory(self.model.parameters(), lr=self.schedule.lr(0, warmup_done=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.contiguous(memory_format=self.memory_format))

    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        iteration = self.global_step  # completed optimizer steps, the paper's "iterations"
        if iteration % self.log_every == 0 and self._seen:
            # The interval ending at `iteration` is closed here, before the next update, not
            # in on_train_batch_end: checkpoint callbacks run before the module's batch-end
            # hook, so a checkpoint at `iteration` holds the open sums and a resumed run
            # closes the interval exactly as the uninterrupted one does.
            self._close_interval(iteration)
        lr = self.schedule.lr(iteration, warmup_done=self.warmup_done_at is not None)
        for group in self.trainer.optimizers[0].param_groups:
            group["lr"] = lr

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        images, labels = batch
        logits = self(images)
        loss = F.cross_entropy(logits, labels)
        with torch.no_grad():
            # summed on the device; read back once per interval, not every step
            self._loss_sum += loss.detach() * len(labels)
            self._wrong += (logits.argmax(dim=1) != labels).sum()
            self._seen += len(labels)
        self.log("loss", loss, prog_bar=True, logger=False)
        return loss

    def on_train_end(self) -> None:
        if self._seen:
            self._close_interval(self.global_step, in_loop=False)

    def _close_interval(self, iteration: int, in_loop: bool = True) -> None:
        """Log the training error, loss and lr of the interval ending at ``iteration``."""
        seen = self._seen
        train_error = 100.0 * self._wrong.item() / seen
        train_loss = self._loss_sum.item() / seen
        lr = self.trainer.optimizers[0].param_groups[0]["lr"]
        self._reset_train_sums()
        if not math.isfinite(train_loss):
            raise RunDiverged(iteration, f"the training loss is {train_loss}")
        self.emit({"train/error": train_error, "train/loss": train_loss, "train/lr": lr}, iteration)
        if in_loop:  # Lightning allows self.log only inside the loop; this one feeds the progress bar
            self.log("train_err", train_error, prog_bar=True, logger=False)
        if self.give_up_at_chance_after is not None and iteration >= self.give_up_at_chance_after and train_error >= CHANCE_ERROR:
            raise RunDiverged(iteration, f"the training error is still {train_error:.1f}% (chance)")
        if self.warmup_done_at is None and self.schedule.warmup_ends(train_error):
            self.warmup_done_at = iteration

    def _reset_train_sums(self) -> None:
        self._loss_sum = torch.zeros((), device=self.device)
        self._wrong = torch.zeros((), dtype=torch.long, device=self.device)
        self._seen = 0

    def on_train_start(self) -> None:
        # to the training device, keeping sums restored from a mid-interval checkpoint
        self._loss_sum = self._loss_sum.to(self.device)
        self._wrong = self._wrong.to(self.device)

    # -- evaluation -----------------------------------------------------------------
    def on_validation_epoch_start(self) -> None:
        self._eval_sums = {name: [0.0, 0, 0] for name in self.eval_split_names}

    def validation_step(self, batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        images, labels = batch
        logits = self(images)
        sums = self._eval_sums[self.eval_split_names[dataloader_idx]]
        sums[0] += F.cross_entropy(logits, labels, reduction="sum").item()
        sums[1] += (logits.argmax(dim=1) != labels).sum().item()
        sums[2] += len(labels)

    def on_validation_epoch_end(self) -> None:
        metrics = {}
        for name, (loss_sum, wrong, seen) in self._eval_sums.items():
            if seen:
                metrics[f"{name}/error"] = 100.0 * wrong / seen
                metrics[f"{name}/loss"] = loss_sum / seen
        if metrics and not self.trainer.sanity_checking:
            self.emit(metrics, self.global_step)
            if "test/error" in metrics:
                self.log("test_err", metrics["test/error"], prog_bar=True, logger=False)

    # -- logging ----------------------------------------------------------------------
    def emit(self, metrics: dict[str, float], iteration: int) -> None:
        """Send metrics to every logger (run record, W&B, ...) keyed by the iteration."""
        for logger in self.loggers:
            logger.log_metrics(metrics, step=iteration)

    # -- checkpoint state beyond model and optimizer ------------------------------------
    # Model, optimizer, iteration and data position are Lightning's and the stream's; these
    # complete the state so that a resumed run continues exactly as the uninterrupted one.
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["resdeg"] = {
            "warmup_done_at": self.warmup_done_at,
            "train_sums": (self._loss_sum.item(), self._wrong.item(), self._seen),
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint.get("resdeg", {})
        self.warmup_done_at = state.get("warmup_done_at")
        if "train_sums" in state:
            loss_sum, wrong, self._seen = state["train_sums"]
            self._loss_sum = torch.tensor(loss_sum, dtype=torch.float32)
            self._wrong = torch.tensor(wrong, dtype=torch.long)
