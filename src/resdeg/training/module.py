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


class RunDiverged(RuntimeError):
    """The training loss became NaN or infinite."""

    def __init__(self, iteration: int, loss: float):
        super().__init__(f"training loss is {loss} at iteration {iteration}: the run diverged")
        self.iteration, self.loss = iteration, loss


class ClassifierModule(pl.LightningModule):
    def __init__(
        self,
        model: nn.Module,
        schedule: StepSchedule,
        optimizer_factory,
        log_every: int = 100,
        eval_split_names: tuple[str, ...] = ("test",),
        channels_last: bool = False,
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
        self.warmup_done_at: int | None = None
        self._reset_train_sums()

    # -- training -----------------------------------------------------------------
    def configure_optimizers(self):
        return self.optimizer_factory(self.model.parameters(), lr=self.schedule.lr(0, warmup_done=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.contiguous(memory_format=self.memory_format))

    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        lr = self.schedule.lr(self.global_step, warmup_done=self.warmup_done_at is not None)
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

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        iteration = self.global_step  # completed optimizer steps, the paper's "iterations"
        if iteration % self.log_every:
            return
        seen = self._seen
        train_error = 100.0 * self._wrong.item() / seen
        train_loss = self._loss_sum.item() / seen
        lr = self.trainer.optimizers[0].param_groups[0]["lr"]
        self._reset_train_sums()
        if not math.isfinite(train_loss):
            raise RunDiverged(iteration, train_loss)
        self.emit({"train/error": train_error, "train/loss": train_loss, "train/lr": lr}, iteration)
        self.log("train_err", train_error, prog_bar=True, logger=False)
        if self.warmup_done_at is None and self.schedule.warmup_ends(train_error):
            self.warmup_done_at = iteration

    def _reset_train_sums(self) -> None:
        self._loss_sum = torch.zeros((), device=self.device)
        self._wrong = torch.zeros((), dtype=torch.long, device=self.device)
        self._seen = 0

    def on_train_start(self) -> None:
        self._reset_train_sums()  # now on the training device

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
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["resdeg"] = {"warmup_done_at": self.warmup_done_at}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.warmup_done_at = checkpoint.get("resdeg", {}).get("warmup_done_at")
