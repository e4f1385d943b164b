"""The wall time of one 64k-iteration run and of the 8-run degradation sweep for each launcher
setting, from the figures the check measured (no new measurement): a step's time as the
end-to-end run timed its steps, scaled to each net by its measured throughput; and the runs per
GPU that finish the sweep soonest, which ``launch.runs_per_gpu=auto`` then uses on this GPU model."""

from __future__ import annotations

import math

import pandas as pd
import torch

from resdeg.perf.gpu_check.plan import PAPER_EVAL_EVERY, PAPER_ITERATIONS, model_name
from resdeg.perf.gpu_check.table import Check


def value(table: pd.DataFrame, **where):
    rows = table
    for key, wanted in where.items():
        rows = rows[rows[key].astype(str) == str(wanted)]
    numbers = pd.to_numeric(rows["value"], errors="coerce").dropna()
    return float(numbers.iloc[0]) if len(numbers) else None


def projection(check: Check) -> None:
    plan, table = check.plan, check.table()
    e2e = plan.e2e_depth
    per_iteration = value(table, section="end_to_end", metric="s_per_iteration")
    per_eval = value(table, section="end_to_end", metric="s_per_evaluation")
    overhead = value(table, section="end_to_end", metric="startup_and_teardown_s")
    if per_iteration is None:
        check.add("projection", "skipped", "", note="needs the end-to-end run")
        return
    shallow, deep = min(d for _, d in plan.models), max(d for _, d in plan.models)

    def rate(arch: str, depth: int) -> float | None:
        return value(
            table,
            section="throughput",
            metric="images_per_s",
            loop="harness",
            compile="off",
            precision="32-true",
            model=model_name(arch, depth),
        )

    base = rate("residual", e2e)

    def seconds_per_iteration(arch: str, depth: int) -> float:
        # measured nets scale by their harness rate; other depths linearly between the measured ones
        measured = {d: rate("residual", d) for d in (shallow, deep)}
        if base is None or None in measured.values():
            return per_iteration
        cost = {d: per_iteration * base / r for d, r in measured.items()}
        t = cost[shallow] + (cost[deep] - cost[shallow]) * (depth - shallow) / max(1, deep - shallow)
        plain = rate("plain", deep)
        return t * (base / plain if arch == "plain" and plain else 1.0)

    def run_seconds(arch: str, depth: int) -> float:
        scale = seconds_per_iteration(arch, depth) / per_iteration
        return (
            overhead
            + PAPER_ITERATIONS * seconds_per_iteration(arch, depth)
            + (PAPER_ITERATIONS // PAPER_EVAL_EVERY) * per_eval * scale
        )

    sweep_depths = (20, 32, 44, 56) if plan.name == "full" else (shallow, deep)
    sweep = [(arch, depth) for arch in ("plain", "residual") for depth in sweep_depths]
    for arch, depth in plan.models:
        check.add(
            "projection",
            "run_64k_min",
            round(run_seconds(arch, depth) / 60, 1),
            "min",
            note="start-up + 64k steps at the end-to-end run's step time + 64 evaluations",
            model=model_name(arch, depth),
        )
    runs_1 = [run_seconds(a, d) for a, d in sweep]
    note = "interpolated in depth between measured nets" if plan.name == "full" else "smoke: the smoke's nets"
    check.add(
        "projection",
        "sweep_min",
        round(sum(runs_1) / 60, 1),
        "min",
        note=f"local launcher, one run after another; {note}",
        loop="local",
        runs=1,
    )
    gpus = max(1, torch.cuda.device_count())
    single = value(table, section="concurrency", metric="aggregate_images_per_s", runs=1)
    best = (math.inf, 1)
    for runs in plan.concurrency:
        aggregate = value(table, section="concurrency", metric="aggregate_images_per_s", runs=runs)
        if aggregate is None or single is None:
            continue
        slowdown = runs * single / aggregate  # each run's time beside runs-1 others, relative to alone
        minutes = list_schedule([t * slowdown for t in runs_1], slots=gpus * runs) / 60
        check.add(
            "projection",
            "sweep_min",
            round(minutes, 1),
            "min",
            note=f"parallel launcher, {gpus} GPU(s) x {runs} run(s) per GPU; "
            f"each run takes x{slowdown:.2f} its time alone",
            loop="parallel",
            runs=runs,
        )
        best = min(best, (minutes * 1.05 if runs > 1 else minutes, runs))  # another run per GPU must gain > 5%
    check.add(
        "projection",
        "recommended_runs_per_gpu",
        best[1],
        "",
        note="launch.runs_per_gpu=auto uses this on this GPU model",
    )


def list_schedule(durations: list[float], slots: int) -> float:
    """When the last of ``durations`` ends, started longest first on ``slots`` parallel slots."""
    ends = [0.0] * slots
    for duration in sorted(durations, reverse=True):
        i = ends.index(min(ends))
        ends[i] += duration
    return max(ends)
