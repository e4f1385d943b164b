"""Iteration-based learning-rate schedules.

The paper counts iterations, not epochs (Section 4.2): "We start with a learning rate of
0.1, divide it by 10 at 32k and 48k iterations, and terminate training at 64k iterations".
The rate is a pure function of (iteration, when the warm-up ended), so a resumed run
gets exactly the rate the uninterrupted run had.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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

    def __post_init__(self):
        if self.warmup not in WARMUPS:
            raise ResdegError(f"unknown protocol.schedule.warmup {self.warmup!r}: choose one of {', '.join(WARMUPS)}")
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

    def state_dict(self) -> dict:
        return {"best": self.best, "evaluations_since_best": self.evaluations_since_best, "drops": self.drops}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.evaluations_since_best, self.drops = state["best"], state["evaluations_since_best"], state["drops"]
