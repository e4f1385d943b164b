"""What a check measures (the full GPU check, or its CPU smoke version) and its time budget,
shared out between the sections in the order they run."""

from __future__ import annotations

import time
from dataclasses import dataclass

# The degradation sweep (conf/experiment/degradation_cifar.yaml): its 8 runs, for the projection
SWEEP = [(arch, depth) for arch in ("plain", "residual") for depth in (20, 32, 44, 56)]
PAPER_ITERATIONS, PAPER_EVAL_EVERY = 64_000, 1_000
COLUMNS = ["section", "model", "precision", "compile", "loop", "runs", "metric", "value", "unit", "note"]

# The sections in the order they run, each with its share of the budget. What matters most
# comes first: one GPU's throughput, then the runs-per-GPU table (what the sweeps' default
# uses); the compiled settings, slow to warm up, have a share of their own at the end, so
# that the eager sections can never leave them nothing. A section also gets what the
# sections before it left unused.
SECTIONS = (
    ("throughput", 0.25),
    ("concurrency", 0.25),
    ("syncs", 0.05),
    ("end_to_end", 0.15),
    ("compiled", 0.30),
    ("projection", 0.0),
)


@dataclass(frozen=True)
class Plan:
    name: str
    models: tuple[tuple[str, int], ...]
    precisions: tuple[str, ...]
    compile_modes: tuple[str, ...]
    warmup: int
    iterations: int
    compile_warmup: int  # CUDA-graph capture needs a few calls before it records
    sync_window: tuple[int, int]  # (first iteration, iterations): plain steps, no logging in it
    concurrency: tuple[int, ...]
    concurrency_iterations: int
    e2e_depth: int
    e2e_overrides: tuple[str, ...]
    budget_s: float
    batch_size: int = 128  # the paper's


FULL = Plan(
    name="full",
    models=(("residual", 20), ("residual", 56), ("plain", 56)),
    precisions=("32-true", "bf16-mixed"),
    compile_modes=("off", "reduce-overhead"),
    warmup=20,
    iterations=200,
    compile_warmup=10,
    sync_window=(10, 40),
    concurrency=(1, 2, 4, 8),
    concurrency_iterations=150,
    e2e_depth=56,
    e2e_overrides=("protocol.iterations=1000", "data.eval_batch_size=1000"),
    budget_s=300,
)
SMOKE = Plan(
    name="smoke",
    models=(("residual", 8), ("plain", 8)),
    precisions=("32-true", "bf16-mixed"),
    compile_modes=("off",),
    warmup=1,
    iterations=2,
    compile_warmup=1,
    sync_window=(1, 3),
    concurrency=(1, 2),
    concurrency_iterations=2,
    e2e_depth=8,
    e2e_overrides=(
        "protocol.iterations=6",
        "protocol.eval_every=6",
        "protocol.log_every=3",
        "protocol.checkpoint_every=6",
        "data.eval_batch_size=2500",
        "layer_responses=false",
    ),
    budget_s=300,
    batch_size=32,
)


def model_name(arch: str, depth: int) -> str:
    return f"plain-{depth}" if arch == "plain" else f"resnet-{depth}"


class Clock:
    """The check's budget: section k may run until the budget's start plus the shares of
    sections 1..k, and never past the whole budget."""

    def __init__(self, budget_s: float, sections=SECTIONS):
        self.began, self.budget_s, self.sections = time.monotonic(), budget_s, dict(sections)
        self.order = [name for name, _ in sections]
        self.section_ends = self.began + budget_s

    def start(self, section: str) -> None:
        done = self.order[: self.order.index(section) + 1]
        self.section_ends = self.began + self.budget_s * sum(self.sections[name] for name in done)

    def left(self) -> float:
        """Seconds left to the running section."""
        return min(self.section_ends, self.began + self.budget_s) - time.monotonic()
