"""The LightningModule: SGD on cross-entropy with the paper's iteration-based schedule.

Errors are in percent, as in the paper. Every ``log_every`` iterations the module logs the
training error and loss averaged over the minibatches of that interval (the dashed curves
of Fig. 6), and every evaluation logs the error on the test set (the bold curves) and on
the held-out validation split when there is one. All are keyed by the iteration.
"""

from __future__ import annotations

import math
import time

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import nn

from resdeg.record.schema import CHANCE_ERROR
from resdeg.training.schedule import IterationLR, PlateauSchedule, StepSchedule


class RunDiverged(RuntimeError):
    """The training loss became NaN/inf, or the error is stuck at chance past a set iteration."""

    def __init__(self, iteration: int, what: str):
        super().__init__(f"{what} at iteration {iteration}: the run diverged")
        self.iteration = iteration


class ClassifierModule(pl.LightningModule):
    def __init__(
        self,
        model: nn.Module,
        schedule: StepSchedule | PlateauSchedule,
        optimizer_factory,
        log_every: int = 100,
        eval_split_names: tuple[str, ...] = ("test",),
        channels_last: bool = False,
        give_up_at_chance_after: int | None = None,
        top5: bool = False,
        run_id: str | None = None,
        evaluation_owed: bool = False,
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
        # wall time spent in evaluations by this process, and how many it ran
        self.eval_seconds, self.evaluations = 0.0, 0
        # a resumed run owes the evaluation of its checkpoint's iteration when it was killed during
        # it (resdeg.record.decision.Decision.owes_evaluation): made first, as the uninterrupted run had it
        self.evaluation_owed = evaluation_owed
        # ImageNet's tables give top-1 and top-5 error
        self.top5 = top5
        # the run this module trains, written into its checkpoints
        self.run_id = run_id
        # the training loss and error of the latest interval closed, as the progress bar shows them
        self.last_interval: dict[str, float] = {}
        self._reset_train_sums()
        self._reset_warmup_sums()

    # -- training -----------------------------------------------------------------
    def configure_optimizers(self):
        optimizer = self.optimizer_factory(self.model.parameters(), lr=self.schedule.lr(0, warmup_done=False))
        # stepped by Lightning after every update; its state (warm-up, plateau drops) is in every checkpoint
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": IterationLR(optimizer, self.schedule), "interval": "step"},
        }

    @property
    def scheduler(self) -> IterationLR | None:
        """The run's IterationLR while Lightning fits (None in a bare validate or test)."""
        configs = self.trainer.lr_scheduler_configs if self._trainer is not None else []
        return configs[0].scheduler if configs else None

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
        scheduler = self.scheduler
        if self._warmup_seen and iteration % self.schedule.warmup_check_every == 0:
            wrong, seen = self._all_processes(self._warmup_wrong, self._warmup_seen)
            scheduler.training_error(100.0 * wrong / seen, iteration)
            self._reset_warmup_sums()
        scheduler.align(iteration)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        images, labels = batch
        logits = self(images)
        loss = F.cross_entropy(logits, labels)
        with torch.no_grad():
            # summed on the device; read back once per interval, not every step
            self._loss_sum += loss.detach() * len(labels)
            self._wrong += (logits.argmax(dim=1) != labels).sum()
            self._seen += len(labels)
            if self.schedule.watches_training_error and self.scheduler.warmup_done_at is None:
                # the until_error warm-up's own window (protocol.schedule.warmup_check_every)
                self._warmup_wrong += (logits.argmax(dim=1) != labels).sum()
                self._warmup_seen += len(labels)
        # nothing here reads a device value: the progress bar gets the interval's loss and error
        # when the interval closes (a per-step self.log(loss, prog_bar=True) made the host wait
        # for the GPU every iteration); tests/integration/test_train.py counts the reads
        return loss

    def on_train_end(self) -> None:
        self.close_last_interval()

    def close_last_interval(self) -> None:
        """Log the interval that ends at the last iteration, if it is still open. Called at the
        end of training, and by resdeg.train after the fit: a run resumed from the checkpoint
        of its last iteration (killed during the final evaluation) trains no batch, and
        Lightning then calls no on_train_end; the checkpoint holds the interval's sums."""
        if self._seen:
            self._close_interval(self.global_step, in_loop=False)

    def _close_interval(self, iteration: int, in_loop: bool = True) -> None:
        """Log the training error, loss and lr of the interval ending at ``iteration``."""
        loss_sum, wrong, seen = self._all_processes(self._loss_sum, self._wrong, self._seen)
        train_error = 100.0 * wrong / seen
        train_loss = loss_sum / seen
        lr = self.trainer.optimizers[0].param_groups[0]["lr"]
        self._reset_train_sums()
        if not math.isfinite(train_loss):
            raise RunDiverged(iteration, f"the training loss is {train_loss}")
        self.emit({"train/error": train_error, "train/loss": train_loss, "train/lr": lr}, iteration)
        self.last_interval = {"loss": train_loss, "train_err": train_error}  # what the progress bar shows
        if in_loop:  # Lightning allows self.log only inside the loop; this one feeds the progress bar
            self.log_dict({"loss": train_loss, "train_err": train_error}, prog_bar=True, logger=False)
        if (
            self.give_up_at_chance_after is not None
            and iteration >= self.give_up_at_chance_after
            and train_error >= CHANCE_ERROR
        ):
            raise RunDiverged(iteration, f"the training error is still {train_error:.1f}% (chance)")

    def _all_processes(self, *sums) -> list[float]:
        """The sums added up over the DDP processes (as they are on a single device)."""
        values = torch.stack([torch.as_tensor(v, device=self.device).to(self._sum_dtype) for v in sums])
        if self._trainer is not None and self.trainer.world_size > 1:
            values = self.trainer.strategy.reduce(values, reduce_op="sum")
        return values.tolist()  # the one host read of an evaluation's sums

    @property
    def _sum_dtype(self) -> torch.dtype:
        return torch.float32 if self.device.type == "mps" else torch.float64  # MPS has no float64

    def _zero_sums(self) -> list:
        """[loss sum, top-1 wrong, seen, top-5 wrong] of an evaluation, kept on the device (no
        host read per batch: on a GPU each would make Python wait for it)."""
        zero = torch.zeros((), dtype=self._sum_dtype, device=self.device)
        return [zero, zero.clone(), 0, zero.clone()]

    def _reset_train_sums(self) -> None:
        self._loss_sum = torch.zeros((), device=self.device)
        self._wrong = torch.zeros((), dtype=torch.long, device=self.device)
        self._seen = 0

    def _reset_warmup_sums(self) -> None:
        self._warmup_wrong = torch.zeros((), dtype=torch.long, device=self.device)
        self._warmup_seen = 0

    def on_train_start(self) -> None:
        # to the training device, keeping sums restored from a mid-interval checkpoint
        self._loss_sum = self._loss_sum.to(self.device)
        self._wrong = self._wrong.to(self.device)
        self._warmup_wrong = self._warmup_wrong.to(self.device)
        if self.evaluation_owed:
            self._evaluate_now()
            self.evaluation_owed = False

    @torch.no_grad()
    def _evaluate_now(self) -> None:
        """The evaluation of the current iteration, outside Lightning's validation loop: a run
        resumed from the checkpoint of an evaluation iteration, killed during that evaluation,
        owes it (see resdeg.train). Same batches, sums and logging as validation, and the same
        arithmetic: inside the precision's context, as Lightning's loop runs validation_step
        (under bf16-mixed: autocast), so the rows equal the uninterrupted run's."""
        self.model.eval()
        try:
            self.on_validation_epoch_start()
            for index, batches in enumerate(self.trainer.datamodule.val_dataloader()):
                for images, labels in batches:
                    with self.trainer.precision_plugin.val_step_context():
                        self.validation_step((images.to(self.device), labels.to(self.device)), 0, index)
            self.on_validation_epoch_end(feed_progress_bar=False)
        finally:
            self.model.train()

    # -- evaluation -----------------------------------------------------------------
    def on_validation_epoch_start(self) -> None:
        self._eval_sums = {name: self._zero_sums() for name in self.eval_split_names}
        self._eval_started = time.monotonic()

    def validation_step(self, batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        images, labels = batch
        logits = self(images)
        self._add_to_sums(self._eval_sums[self.eval_split_names[dataloader_idx]], logits, labels)

    def _add_to_sums(
        self, sums: list, logits: torch.Tensor, labels: torch.Tensor, loss_sum: torch.Tensor | None = None
    ) -> None:
        """sums = [loss sum, top-1 wrong, seen, top-5 wrong] (_zero_sums), added on the device."""
        loss = F.cross_entropy(logits, labels, reduction="sum") if loss_sum is None else loss_sum
        sums[0] += loss.detach().to(sums[0].dtype)
        sums[1] += (logits.argmax(dim=1) != labels).sum()
        sums[2] += len(labels)
        if self.top5:
            top5 = logits.topk(min(5, logits.shape[1]), dim=1).indices
            sums[3] += (~(top5 == labels.view(-1, 1)).any(dim=1)).sum()

    def _eval_metrics(self, sums_by_split: dict) -> dict[str, float]:
        metrics = {}
        for name, sums in sums_by_split.items():
            loss_sum, wrong, seen, wrong5 = self._all_processes(*sums)
            if seen:
                metrics[f"{name}/error"] = 100.0 * wrong / seen
                metrics[f"{name}/loss"] = loss_sum / seen
                if self.top5:
                    metrics[f"{name}/top5_error"] = 100.0 * wrong5 / seen
        return metrics

    def on_validation_epoch_end(self, feed_progress_bar: bool = True) -> None:
        metrics = self._eval_metrics(self._eval_sums)
        # what the dense test curves cost, written into the record (summary eval_seconds)
        self.eval_seconds += time.monotonic() - self._eval_started
        self.evaluations += 1
        if metrics and not self.trainer.sanity_checking:
            self.emit(metrics, self.global_step)
            if "test/error" in metrics and feed_progress_bar:  # self.log only inside Lightning's loops
                self.log("test_err", metrics["test/error"], prog_bar=True, logger=False)
            # a schedule that divides the lr "when the error plateaus" (ImageNet) watches val/error
            if "val/error" in metrics and self.scheduler is not None:
                self.scheduler.validation_error(metrics["val/error"])

    # The paper's tables use "the standard 10-crop testing": the softmax scores of the four
    # corner crops, the centre crop and their flips are averaged. The test loader yields
    # batches of shape (batch, 10, C, H, W); the split is named ``val_10crop``.
    def on_test_epoch_start(self) -> None:
        self._test_sums = {"val_10crop": self._zero_sums()}

    def test_step(self, batch, batch_idx: int) -> None:
        images, labels = batch
        n, crops = images.shape[:2]
        probabilities = self(images.flatten(0, 1)).softmax(dim=1).view(n, crops, -1).mean(dim=1)
        loss_sum = F.nll_loss(probabilities.clamp_min(1e-12).log(), labels, reduction="sum")
        self._add_to_sums(self._test_sums["val_10crop"], probabilities, labels, loss_sum)

    def test_metrics(self) -> dict[str, float]:
        """The 10-crop errors of the test loop so far: val_10crop/error, val_10crop/top5_error, val_10crop/loss."""
        return self._eval_metrics(self._test_sums)

    def on_test_epoch_end(self) -> None:
        self.emit(self.test_metrics(), self.global_step)

    # -- logging ----------------------------------------------------------------------
    def emit(self, metrics: dict[str, float], iteration: int) -> None:
        """Send metrics to every logger (run record, W&B, ...) keyed by the iteration."""
        for logger in self.loggers:
            logger.log_metrics(metrics, step=iteration)

    # -- checkpoint state beyond model and optimizer ------------------------------------
    # Model, optimizer, iteration and data position are Lightning's and the stream's; these
    # complete the state so that a resumed run continues exactly as the uninterrupted one.
    # (the schedule's state is the scheduler's, in Lightning's "lr_schedulers" entry)
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["resdeg"] = {
            "run_id": self.run_id,  # whose checkpoint it is (resdeg.record.decision.check_checkpoint_is_this_run)
            "device": self.device.type,  # and where: its random stream and arithmetic are that device's
            "train_sums": (self._loss_sum.item(), self._wrong.item(), self._seen),
            "warmup_sums": (self._warmup_wrong.item(), self._warmup_seen),
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint.get("resdeg", {})
        if "warmup_sums" in state:
            wrong, self._warmup_seen = state["warmup_sums"]
            self._warmup_wrong = torch.tensor(wrong, dtype=torch.long)
        if "train_sums" in state:
            loss_sum, wrong, self._seen = state["train_sums"]
            self._loss_sum = torch.tensor(loss_sum, dtype=torch.float32)
            self._wrong = torch.tensor(wrong, dtype=torch.long)
