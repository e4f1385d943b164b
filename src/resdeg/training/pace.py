"""What a run costs, said at its start: measured training images/s and the expected wall time.

Machines differ several times over in speed, and a run takes minutes on one and a day on
another: the run says which after its first iterations, from this machine's own pace. The
training pace is timed from the start of update ``skip`` + 1 (after cuDNN's autotuning and
torch.compile's first steps) to the latest update (or the end of training), less the time
spent in evaluations, checkpoints included (they are part of what a run costs); an
evaluation's cost is measured by the first one (until then it is estimated as a forward pass
of the evaluation images at a third of the cost of a training image: backward is about twice
forward). The record keeps the measured images/s (summary ``train_images_per_s``, written
when the run says its expected wall time and at its end, so that a run still in flight has it
too).
"""

from __future__ import annotations

import logging
import time

import lightning.pytorch as pl

log = logging.getLogger("resdeg")


def evaluations_left(iteration: int, iterations: int, every: int) -> int:
    """Evaluations after ``iteration``: every ``every`` iterations, and one at the end if the
    last iteration is not one of them (resdeg.train evaluates it after the loop)."""
    if iteration >= iterations:
        return 0
    inside = iterations // every - iteration // every
    return inside + (1 if iterations % every else 0)


def expected_seconds(
    iterations_left: int, seconds_per_iteration: float, evaluations: int, seconds_per_evaluation: float
) -> float:
    return iterations_left * seconds_per_iteration + evaluations * seconds_per_evaluation


def duration_words(seconds: float) -> str:
    minutes = seconds / 60
    if minutes < 90:
        return f"{minutes:.0f} min"
    return f"{minutes / 60:.1f} h"


class Pace(pl.Callback):
    """Times training steps and evaluations; says the expected wall time once ``say_after``
    timed iterations are in, and again after the first evaluation (its cost then measured)."""

    def __init__(
        self, run_name: str, batch_size: int, eval_every: int, update_record=None, skip: int = 5, say_after: int = 20
    ):
        self.run_name, self.batch_size, self.eval_every = run_name, batch_size, eval_every
        self.update_record = update_record  # the run record's summary update, or None
        self.skip, self.say_after = skip, say_after
        self._first: int | None = None  # the iteration timing starts from
        self._started = 0.0
        self._paused = 0.0  # seconds in evaluations (and the analysis around them) since timing started
        self._eval_started: float | None = None
        self._eval_seconds: list[float] = []
        self._said: set[str] = set()
        self._resumed_at, self._ended = 0, None
        self.timed_iterations = 0

    # -- timing -------------------------------------------------------------------------
    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if self._first is None and trainer.global_step >= self._start_iteration(trainer):
            self._first, self._started, self._paused = trainer.global_step, time.monotonic(), 0.0

    def on_train_start(self, trainer, pl_module) -> None:
        self._resumed_at = trainer.global_step

    def on_train_end(self, trainer, pl_module) -> None:
        self._ended = time.monotonic()

    def _start_iteration(self, trainer) -> int:
        return self._resumed_at + self.skip

    def on_validation_start(self, trainer, pl_module) -> None:
        self._eval_started = time.monotonic()

    def on_validation_end(self, trainer, pl_module) -> None:
        if self._eval_started is None:
            return
        spent = time.monotonic() - self._eval_started
        self._eval_seconds.append(spent)
        if self._first is not None and self._ended is None:  # not the evaluations after training
            self._paused += spent
        self._eval_started = None
        if trainer.state.fn == "fit" and len(self._eval_seconds) == 1:
            self._say(trainer, "after the first evaluation")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if self._first is not None and trainer.global_step - self._first >= self.say_after:
            self._say(trainer, "from the first iterations")

    # -- what it tells -------------------------------------------------------------------
    def seconds_per_iteration(self, trainer) -> float | None:
        if self._first is None or trainer.global_step <= self._first:
            return None
        self.timed_iterations = trainer.global_step - self._first
        now = self._ended if self._ended is not None else time.monotonic()
        return (now - self._started - self._paused) / self.timed_iterations

    def _say(self, trainer, when: str) -> None:
        per_iteration = self.seconds_per_iteration(trainer)
        if when in self._said or per_iteration is None or not trainer.is_global_zero:
            return
        self._said.add(when)
        images_per_s = self.batch_size / per_iteration
        eval_images = trainer.datamodule.eval_image_count  # every evaluation set, on this process
        iteration, iterations = trainer.global_step, trainer.max_steps
        evaluations = evaluations_left(iteration, iterations, self.eval_every)
        if self._eval_seconds:
            per_evaluation, how = self._eval_seconds[0], f"{self._eval_seconds[0]:.0f} s each, measured"
        else:
            per_evaluation = eval_images / (3 * images_per_s)
            how = f"about {per_evaluation:.0f} s each, estimated until the first is measured"
        left = expected_seconds(iterations - iteration, per_iteration, evaluations, per_evaluation)
        if self.update_record is not None:
            self.update_record(**self.measured(trainer))
        log.info(
            f"{self.run_name}: {images_per_s:.0f} training images/s on this machine; "
            f"expected {duration_words(left)} more ({iterations - iteration} iterations, "
            f"{evaluations} evaluations of {eval_images} images, {how})"
        )

    def measured(self, trainer) -> dict:
        """The record's fields: the training pace over every timed iteration of this process."""
        per_iteration = self.seconds_per_iteration(trainer)
        if per_iteration is None:
            return {}
        return {
            "train_images_per_s": round(self.batch_size / per_iteration, 1),
            "timed_iterations": self.timed_iterations,
        }
