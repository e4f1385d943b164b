"""Iteration-based learning-rate schedules.

The paper counts iterations, not epochs (Section 4.2): "We start with a learning rate of
0.1, divide it by 10 at 32k and 48k iterations, and terminate training at 64k iterations".

A *rule* (StepSchedule for CIFAR-10, PlateauSchedule for ImageNet, configured under
``protocol.schedule``) says what the rate is; ``IterationLR``, a torch LRScheduler stepped
once per iteration, applies it to the optimizer and holds the schedule's state (when the
warm-up ended, the plateau rule's drops) in its ``state_dict``, so a checkpoint carries it
and a resumed run gets exactly the rate the uninterrupted run had.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch.optim.lr_scheduler import LRScheduler

from resdeg import ResdegError

WARMUPS = ("none", "linear", "until_error")


@dataclass
class StepSchedule:
    """lr = base_lr * gamma^(number of milestones passed), after an optional warm-up.

    warmup:
      - ``none``: base_lr from the first iteration (the paper, depth <= 56);
      - ``until_error``: warmup_lr until the training error falls below
        ``warmup_error_below`` percent, then base_lr (the paper's ResNet-110: "we use 0.01
        to warm up the training until the training error is below 80% (about 400
        iterations), and then go back to 0.1");
      - ``linear``: base_lr * t / warmup_iterations for the first warmup_iterations
        (a gentle start for short CPU protocols; not in the paper).
    """

    base_lr: float
    milestones: list[int] = field(default_factory=list)
    gamma: float = 0.1
    warmup: str = "none"
    warmup_iterations: int = 0
    warmup_lr: float = 0.01
    warmup_error_below: float = 80.0
    # until_error: the training error is averaged over this many iterations and checked at the
    # end of each such window; its own cadence, so that changing log_every changes no training.
    # The paper reports its training error every 100 iterations (the "about 400 iterations").
    warmup_check_every: int = 100

    def __post_init__(self):
        if self.warmup not in WARMUPS:
            raise ResdegError(f"unknown protocol.schedule.warmup {self.warmup!r}: choose one of {', '.join(WARMUPS)}")
        if int(self.warmup_check_every) < 1:
            raise ResdegError(f"protocol.schedule.warmup_check_every={self.warmup_check_every} must be at least 1")
        self.milestones = sorted(int(m) for m in self.milestones)

    def lr(self, iteration: int, warmup_done: bool = True) -> float:
        """The rate for the update that follows ``iteration`` completed iterations."""
        if self.warmup == "until_error" and not warmup_done:
            return self.warmup_lr
        if self.warmup == "linear" and iteration < self.warmup_iterations:
            return self.base_lr * (iteration + 1) / self.warmup_iterations
        passed = sum(iteration >= m for m in self.milestones)
        return self.base_lr * self.gamma**passed

    def warmup_ends(self, train_error_percent: float) -> bool:
        """Whether a measured training error ends the ``until_error`` warm-up."""
        return self.warmup == "until_error" and train_error_percent < self.warmup_error_below

    @property
    def watches_training_error(self) -> bool:
        return self.warmup == "until_error"


@dataclass
class PlateauSchedule:
    """lr = base_lr * gamma^(number of drops); a drop each time the error plateaus.

    The paper's ImageNet protocol (Section 3.4): "The learning rate starts from 0.1 and is
    divided by 10 when the error plateaus". The watched error is the validation error
    (``val/error``, centre crop), measured every ``protocol.eval_every`` iterations: when it
    has not improved by at least ``threshold`` points over ``patience`` evaluations, the lr
    is divided by 10 (at most ``max_drops`` times). Its state (best error, evaluations
    since, drops) is in the checkpoint, so a resumed run continues the same schedule.
    """

    base_lr: float
    gamma: float = 0.1
    patience: int = 3
    threshold: float = 0.1
    max_drops: int = 3
    warmup: str = "none"
    # state, not configuration: saved in and restored from the checkpoint
    best: float = field(default=float("inf"), init=False)
    evaluations_since_best: int = field(default=0, init=False)
    drops: int = field(default=0, init=False)

    def __post_init__(self):
        if self.warmup != "none":
            raise ResdegError("the plateau schedule has no warm-up: set protocol.schedule.warmup=none")

    def lr(self, iteration: int, warmup_done: bool = True) -> float:
        return self.base_lr * self.gamma**self.drops

    def observe(self, error_percent: float) -> None:
        """Take one validation error; drop the lr when it has plateaued."""
        if error_percent < self.best - self.threshold:
            self.best, self.evaluations_since_best = error_percent, 0
            return
        self.evaluations_since_best += 1
        if self.evaluations_since_best >= self.patience and self.drops < self.max_drops:
            self.drops += 1
            self.evaluations_since_best = 0
            self.best = min(self.best, error_percent)

    def warmup_ends(self, train_error_percent: float) -> bool:
        return False

    watches_training_error = False

    def state_dict(self) -> dict:
        return {"best": self.best, "evaluations_since_best": self.evaluations_since_best, "drops": self.drops}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.evaluations_since_best, self.drops = (
            state["best"],
            state["evaluations_since_best"],
            state["drops"],
        )


class IterationLR(LRScheduler):
    """The learning rate of every update, from a schedule rule, stepped once per iteration.

    ``last_epoch`` counts completed iterations: the update that follows iteration ``t`` uses
    ``rule.lr(t, warmup_done)``. The warm-up's end and the plateau rule's state are this
    scheduler's state (``state_dict``), saved in every checkpoint by Lightning.
    """

    def __init__(self, optimizer, rule: StepSchedule | PlateauSchedule):
        self.rule = rule
        self.warmup_done_at: int | None = None
        super().__init__(optimizer)

    def get_lr(self) -> list[float]:
        lr = self.rule.lr(self.last_epoch, warmup_done=self.warmup_done_at is not None)
        return [lr for _ in self.optimizer.param_groups]

    def align(self, iteration: int) -> None:
        """Set the rate for the update that follows ``iteration``. Lightning saves a checkpoint
        at the end of a batch, before it steps the scheduler, so a resumed run's scheduler is
        one iteration behind its step count: the module aligns it before every update."""
        if self.last_epoch != iteration:
            self.last_epoch = iteration
            self._apply()

    def training_error(self, error_percent: float, iteration: int) -> None:
        """A training error measured over the window ending at ``iteration`` (until_error warm-up)."""
        if self.warmup_done_at is None and self.rule.warmup_ends(error_percent):
            self.warmup_done_at = iteration
            self._apply()

    def validation_error(self, error_percent: float) -> None:
        """A validation error (the plateau rule watches it: "divided by 10 when the error plateaus")."""
        if hasattr(self.rule, "observe"):
            self.rule.observe(error_percent)
            self._apply()

    def _apply(self) -> None:
        for group, lr in zip(self.optimizer.param_groups, self.get_lr()):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self) -> dict:
        return {
            "last_epoch": self.last_epoch,
            "warmup_done_at": self.warmup_done_at,
            "rule": self.rule.state_dict() if hasattr(self.rule, "state_dict") else None,
            "_last_lr": getattr(self, "_last_lr", None),
        }

    def load_state_dict(self, state: dict) -> None:
        self.last_epoch, self.warmup_done_at = state["last_epoch"], state.get("warmup_done_at")
        if state.get("rule") is not None:
            self.rule.load_state_dict(state["rule"])
        self._apply()
