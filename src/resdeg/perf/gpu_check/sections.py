"""The measuring sections of `make gpu-check`, each writing its rows to the Check; one that does
not fit its share of the budget, or fails, is a row saying so, never a silent gap."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import lightning.pytorch as pl
import torch

from resdeg.perf.gpu_check.plan import Clock, model_name
from resdeg.perf.gpu_check.table import Check
from resdeg.perf.gpu_check.workers import finish_workers, run_worker, start_worker
from resdeg.perf.timing import OWN_SYNC, REPO, compose_cfg, time_bare, time_harness


# -- throughput: eager here, compiled in a section of its own ------------------------------
def throughput(check: Check, clock: Clock, compiled: bool) -> None:
    plan = check.plan
    modes = [m for m in plan.compile_modes if (m != "off") == compiled]
    # the deepest ResNet first (ResNet-56: the 64k-run target), in case the budget runs out
    deepest = ("residual", max(d for _, d in plan.models))
    models = sorted(plan.models, key=lambda m: m != deepest)
    for mode in modes:
        for arch, depth in models:
            for precision in plan.precisions:
                keys = dict(model=model_name(arch, depth), precision=precision, compile=mode)
                if clock.left() < (60 if compiled else 10):
                    check.add("throughput", "skipped", "", note="out of the time budget (--budget-s)", **keys)
                    continue
                overrides = check.overrides(
                    f"trainer.precision={precision}", f"compile={'false' if mode == 'off' else mode}"
                )
                warmup = plan.compile_warmup if compiled else plan.warmup
                try:
                    if compiled:  # in a process of its own, stopped if compiling outlasts the budget
                        with tempfile.TemporaryDirectory() as logs:
                            result = run_worker(
                                dict(
                                    arch=arch,
                                    depth=depth,
                                    overrides=overrides,
                                    warmup=warmup,
                                    iterations=plan.iterations,
                                    loops=["harness", "bare"],
                                ),
                                Path(logs),
                                timeout=clock.left() - 15,
                            )
                        timings = {loop: result[loop] for loop in ("harness", "bare")}
                    else:
                        cfg = compose_cfg(arch, depth, overrides)
                        timings = {
                            "harness": vars(time_harness(cfg, warmup, plan.iterations)),
                            "bare": vars(time_bare(cfg, warmup, plan.iterations)),
                        }
                except Exception as exc:  # noqa: BLE001 - one failed setting is a row, not the end of the check
                    check.add("throughput", "error", "", note=f"{type(exc).__name__}: {exc}"[:300], **keys)
                    continue
                for loop, timing in timings.items():
                    check.add(
                        "throughput", "images_per_s", round(timing["images_per_s"], 1), "img/s", loop=loop, **keys
                    )
                    check.add(
                        "throughput",
                        "warmup_s",
                        round(timing["warmup_s"], 2),
                        "s",
                        note=f"{warmup} untimed iterations" + (" incl. compilation" if compiled else ""),
                        loop=loop,
                        **keys,
                    )
                    if timing["peak_memory_mib"] is not None:
                        check.add("throughput", "peak_memory_mib", timing["peak_memory_mib"], "MiB", loop=loop, **keys)
                ratio = timings["harness"]["images_per_s"] / timings["bare"]["images_per_s"]
                check.add(
                    "throughput", "harness_over_bare", round(ratio, 3), "", note="target >= 0.9", loop="ratio", **keys
                )


# -- syncs ----------------------------------------------------------------------------------
SYNC_CALLS = ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize", "cudaMemcpy")


def training_syncs(events) -> int:
    """The synchronisation calls of a profiler trace that the training steps made: those inside
    a timer's own marked synchronisation (resdeg.perf.timing.own_sync) are not the steps'."""
    own = [(e.time_range.start, e.time_range.end) for e in events if e.name == OWN_SYNC]
    return sum(
        1 for e in events if e.name in SYNC_CALLS and not any(start <= e.time_range.start <= end for start, end in own)
    )


class SyncWindow(pl.Callback):
    """Counts, over iterations start+1 .. start+length of the harness, CUDA synchronisation
    calls in a profiler trace and torch.cuda.set_sync_debug_mode warnings (on a GPU)."""

    def __init__(self, start: int, length: int):
        self.start, self.length = start, length
        self.profiler_syncs: int | None = None
        self.debug_warnings: int | None = None

    def on_train_batch_start(self, trainer, *_):
        if trainer.global_step == self.start and torch.cuda.is_available():
            torch.cuda.synchronize()  # before the window: not counted
            self._profiler = torch.profiler.profile(
                activities=[torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]
            )
            self._profiler.__enter__()
            self._catch = warnings.catch_warnings(record=True)
            self._caught = self._catch.__enter__()
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")

    def on_train_batch_end(self, trainer, *_):
        if trainer.global_step == self.start + self.length and torch.cuda.is_available():
            torch.cuda.set_sync_debug_mode("default")
            self._catch.__exit__(None, None, None)
            self.debug_warnings = sum("synchroniz" in str(w.message) for w in self._caught)
            with torch.profiler.record_function(OWN_SYNC):  # the window's own: not counted
                torch.cuda.synchronize()
            self._profiler.__exit__(None, None, None)
            self.profiler_syncs = training_syncs(self._profiler.events())


def syncs(check: Check, clock: Clock) -> None:
    from resdeg.training.host_reads import HostReadsPerIteration

    plan = check.plan
    arch, depth = max(plan.models, key=lambda m: (m[0] == "residual", m[1]))
    start, length = plan.sync_window
    keys = dict(model=model_name(arch, depth), precision="32-true", compile="off", loop="harness")
    if clock.left() < 10:
        check.add("syncs", "skipped", "", note="out of the time budget (--budget-s)", **keys)
        return
    window, reads = SyncWindow(start, length), HostReadsPerIteration()
    cfg = compose_cfg(arch, depth, check.overrides())
    time_harness(cfg, start, length + 1, callbacks=(window, reads))
    counted = list(range(start + 1, start + length + 1))
    host_reads = sum(sum(reads.per_iteration[k].values()) for k in counted)
    where = sorted({place for k in counted for place in reads.per_iteration[k]})
    check.add(
        "syncs",
        "host_reads_per_step",
        round(host_reads / length, 3),
        "reads/step",
        note=f"iterations {start + 1}-{start + length}" + (f"; at {'; '.join(where)}"[:250] if where else ""),
        **keys,
    )
    if window.profiler_syncs is not None:
        check.add(
            "syncs",
            "cuda_syncs_per_step",
            round(window.profiler_syncs / length, 3),
            "syncs/step",
            note=f"profiler: {', '.join(SYNC_CALLS)}; the timers' own left out",
            **keys,
        )
        check.add(
            "syncs",
            "sync_debug_warnings_per_step",
            round(window.debug_warnings / length, 3),
            "warnings/step",
            note="torch.cuda.set_sync_debug_mode('warn')",
            **keys,
        )
    else:
        check.add("syncs", "cuda_syncs_per_step", "", note="no GPU: only host reads are counted", **keys)


# -- concurrency: several runs side by side on one GPU ---------------------------------------
def concurrency(check: Check, clock: Clock) -> None:
    plan = check.plan
    arch, depth = max(plan.models, key=lambda m: (m[0] == "residual", m[1]))
    keys = dict(model=model_name(arch, depth), precision="32-true", compile="off", loop="harness")
    for runs in plan.concurrency:
        if clock.left() < 15 + 5 * runs:
            check.add("concurrency", "skipped", "", note="out of the time budget (--budget-s)", runs=runs, **keys)
            continue
        try:
            with tempfile.TemporaryDirectory() as barrier:
                spec = dict(
                    arch=arch,
                    depth=depth,
                    overrides=check.overrides(),
                    warmup=plan.warmup,
                    iterations=plan.concurrency_iterations,
                    loops=["harness"],
                    barrier=barrier,
                    runs=runs,
                )
                threads = max(1, (os.cpu_count() or 1) // runs)
                logs = Path(barrier) / "logs"
                workers = [start_worker({**spec, "index": i}, logs, threads) for i in range(runs)]
                results = finish_workers(workers, timeout=clock.left() - 5, barrier=Path(barrier))
        except Exception as exc:  # noqa: BLE001 - a failed measurement is a row
            check.add("concurrency", "error", "", note=f"{type(exc).__name__}: {exc}"[:300], runs=runs, **keys)
            continue
        began = min(r["harness"]["timed_from"] for r in results)
        ended = max(r["harness"]["timed_until"] for r in results)
        images = runs * plan.concurrency_iterations * plan.batch_size
        aggregate = images / (ended - began)
        check.add(
            "concurrency",
            "aggregate_images_per_s",
            round(aggregate, 1),
            "img/s",
            note="all runs' timed images / (last end - first start)",
            runs=runs,
            **keys,
        )
        check.add("concurrency", "per_run_images_per_s", round(aggregate / runs, 1), "img/s", runs=runs, **keys)


# -- end to end: one paper-protocol run through the CLI --------------------------------------
def end_to_end(check: Check, clock: Clock) -> None:
    plan = check.plan
    keys = dict(model=model_name("residual", plan.e2e_depth), precision="32-true", compile="off", loop="cli")
    if clock.left() < 20:
        check.add("end_to_end", "skipped", "", note="out of the time budget (--budget-s)", **keys)
        return
    with tempfile.TemporaryDirectory() as tmp:
        command = [
            sys.executable,
            "-m",
            "resdeg.train",
            f"model.depth={plan.e2e_depth}",
            *check.overrides(*plan.e2e_overrides),
            f"paths.results={tmp}/results",
            f"paths.experiments={tmp}/experiments",
            "logger=none",
        ]
        began = time.monotonic()
        try:
            done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=max(1.0, clock.left() - 5))
        except subprocess.TimeoutExpired:
            check.add("end_to_end", "error", "", note="the run outlasted the time budget", **keys)
            return
        total = time.monotonic() - began
        summaries = list(Path(tmp, "results").glob("runs/*/*/summary.json"))
        if done.returncode or not summaries:
            check.add(
                "end_to_end", "error", "", note=f"exit {done.returncode}: {(done.stderr or done.stdout)[-250:]}", **keys
            )
            return
        summary = json.loads(summaries[0].read_text())
    iterations, train_s, eval_s = summary["iteration"], summary["train_seconds"], summary["eval_seconds"]
    evaluations = max(1, summary["evaluations"])
    rate = summary.get("train_images_per_s")
    # a step's time as the run measured it (resdeg.training.pace: set-up, warm-up and evaluations
    # left out); the loop's wall time per iteration only where the run was too short to measure it
    if rate:
        per_iteration, how = plan.batch_size / rate, f"from the run's {rate} training images/s"
    else:
        per_iteration, how = (
            (train_s - eval_s) / iterations,
            "wall time per iteration: the run was too short to time its steps",
        )
    note = f"python -m resdeg.train model.depth={plan.e2e_depth} protocol=cifar_paper {' '.join(plan.e2e_overrides)}"
    for metric, value, unit, why in (
        ("total_s", total, "s", note),
        (
            "startup_and_teardown_s",
            total - iterations * per_iteration - eval_s,
            "s",
            "all but the steps and the evaluations: start-up, data, warm-up, checkpoints, the end",
        ),
        ("train_s", train_s - eval_s, "s", "the training loop's wall time, evaluations excluded"),
        ("eval_s", eval_s, "s", ""),
        ("evaluations", evaluations, "", ""),
        ("iterations", iterations, "", ""),
        ("s_per_iteration", per_iteration, "s", how),
        ("s_per_evaluation", eval_s / evaluations, "s", ""),
    ):
        # 4 significant digits, not decimals: a GPU's few milliseconds per iteration keep their
        # precision, and the projection that reads them back does not inherit a rounding
        kept = value if isinstance(value, int) else float(f"{value:.4g}")
        check.add("end_to_end", metric, kept, unit, note=why, **keys)
