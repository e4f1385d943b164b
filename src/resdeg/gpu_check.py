"""`make gpu-check`: the GPU path of the harness measured by one command, within 9 minutes.

On whatever GPU is present it measures, and writes to ``results/bench/gpu_<device>.csv``
(one row per measured value, format in results/README.md) and ``gpu_<device>.md``:

1. throughput: training images/s of ResNet-20, ResNet-56 and plain-56 at batch 128 for the
   harness (what a sweep runs: resdeg.build, Lightning, the run record) and a bare PyTorch
   loop (resdeg.bench), each in fp32 (TF32 convolutions, cuDNN's default) and bf16-mixed,
   eager and compiled (``compile=reduce-overhead``: inductor and CUDA-graph capture); the
   warm-up time (compilation) and the peak GPU memory of each;
2. syncs: host-device synchronisations per training step of the harness, counted three
   ways over a window of plain steps: CUDA synchronisation calls in a profiler trace,
   ``torch.cuda.set_sync_debug_mode`` warnings, and host reads of tensor values
   (resdeg.training.host_reads, the count the CPU test checks);
3. concurrency: aggregate images/s of 1, 2, 4 and 8 harness runs of ResNet-56 side by side
   on one GPU (separate processes, timed together);
4. end to end: a 2,000-iteration paper-protocol run of ResNet-56 through the CLI
   (``python -m resdeg.train``, records in a temporary folder): start-up, training and
   evaluation time;
5. projection: the wall time of one 64k-iteration run and of the 8-run degradation sweep
   for each launcher setting (one after another; side by side with 1, 2, 4, 8 runs per GPU
   on this machine's GPUs), and the runs per GPU that finish the sweep soonest, which
   ``launch.runs_per_gpu=auto`` (the sweeps' default) then uses on this GPU model.

Without a GPU the same command runs a smoke version (tiny nets, a few iterations) in about
a minute and writes to ``experiments/gpu_check/`` instead, so that nothing measured on a
CPU is mistaken for a GPU figure; the test suite runs it so it never rots. Sections run in
the order above, each within what is left of the time budget (``--budget-s``); what does
not fit, or fails, is a row saying so, never a silent gap, and the files are rewritten
after every section so that a check cut short keeps what it measured.

    python -m resdeg.gpu_check [--smoke] [--budget-s 540] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import lightning.pytorch as pl
import pandas as pd
import torch

from resdeg.bench import REPO, compose_cfg, time_bare, time_harness
from resdeg import devices
from resdeg.devices import device_name, device_slug

# The degradation sweep (conf/experiment/degradation_cifar.yaml): its 8 runs, for the projection
SWEEP = [(arch, depth) for arch in ("plain", "residual") for depth in (20, 32, 44, 56)]
PAPER_ITERATIONS, PAPER_EVAL_EVERY = 64_000, 1_000
COLUMNS = ["section", "model", "precision", "compile", "loop", "runs", "metric", "value", "unit", "note"]


@dataclass(frozen=True)
class Plan:
    """What one check measures: the full GPU check, or the CPU smoke version of it."""

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
    name="full", models=(("residual", 20), ("residual", 56), ("plain", 56)),
    precisions=("32-true", "bf16-mixed"), compile_modes=("off", "reduce-overhead"),
    warmup=20, iterations=200, compile_warmup=10, sync_window=(10, 40),
    concurrency=(1, 2, 4, 8), concurrency_iterations=150,
    e2e_depth=56, e2e_overrides=("protocol.iterations=2000", "data.eval_batch_size=1000"), budget_s=540,
)
SMOKE = Plan(
    name="smoke", models=(("residual", 8), ("plain", 8)),
    precisions=("32-true", "bf16-mixed"), compile_modes=("off",),
    warmup=1, iterations=2, compile_warmup=1, sync_window=(1, 3),
    concurrency=(1, 2), concurrency_iterations=2,
    e2e_depth=8, e2e_overrides=("protocol.iterations=6", "protocol.eval_every=6", "protocol.log_every=3",
                                "protocol.checkpoint_every=6", "data.eval_batch_size=2500", "layer_responses=false"),
    budget_s=300, batch_size=32,
)


def model_name(arch: str, depth: int) -> str:
    return f"plain-{depth}" if arch == "plain" else f"resnet-{depth}"


class Clock:
    def __init__(self, budget_s: float):
        self.deadline = time.monotonic() + budget_s

    def left(self) -> float:
        return self.deadline - time.monotonic()


class Check:
    """The rows measured so far, written out after every section."""

    def __init__(self, plan: Plan, out: Path, cifar_root: str):
        self.plan, self.out, self.cifar_root = plan, out, cifar_root
        self.rows: list[dict] = []
        self.device = device_name()
        slug = device_slug()
        self.stem = f"gpu_{slug}" if plan.name == "full" else f"gpu_smoke_{slug}"

    def add(self, section: str, metric: str, value, unit: str = "", note: str = "", **keys) -> None:
        row = {column: keys.get(column, "") for column in COLUMNS}
        row.update(section=section, metric=metric, value=value, unit=unit, note=note)
        self.rows.append(row)
        shown = " ".join(str(keys[k]) for k in ("model", "precision", "compile", "loop", "runs") if keys.get(k) not in (None, ""))
        print(f"[gpu-check] {section}: {shown} {metric} = {value} {unit} {note}".replace("  ", " "), flush=True)

    def overrides(self, *more: str) -> list[str]:
        return ["protocol=cifar_paper", f"data.root={self.cifar_root}", f"protocol.batch_size={self.plan.batch_size}", *more]

    def table(self) -> pd.DataFrame:
        table = pd.DataFrame(self.rows, columns=COLUMNS)
        return table.assign(device=self.device, torch=torch.__version__, check=self.plan.name)

    def write(self) -> tuple[Path, Path]:
        self.out.mkdir(parents=True, exist_ok=True)
        csv_path, md_path = self.out / f"{self.stem}.csv", self.out / f"{self.stem}.md"
        table = self.table()
        table.to_csv(csv_path, index=False)
        md_path.write_text(markdown(table, self.plan.batch_size))
        return csv_path, md_path


# -- 1. throughput --------------------------------------------------------------------------
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
                if clock.left() < (90 if compiled else 10):
                    check.add("throughput", "skipped", "", note="out of the time budget (--budget-s)", **keys)
                    continue
                overrides = check.overrides(f"trainer.precision={precision}", f"compile={'false' if mode == 'off' else mode}")
                warmup = plan.compile_warmup if compiled else plan.warmup
                try:
                    if compiled:  # in a process of its own, stopped if compiling outlasts the budget
                        result = run_worker(dict(arch=arch, depth=depth, overrides=overrides, warmup=warmup,
                                                 iterations=plan.iterations, loops=["harness", "bare"]),
                                            timeout=clock.left() - 15)
                        timings = {loop: result[loop] for loop in ("harness", "bare")}
                    else:
                        cfg = compose_cfg(arch, depth, overrides)
                        timings = {"harness": vars(time_harness(cfg, warmup, plan.iterations)),
                                   "bare": vars(time_bare(cfg, warmup, plan.iterations))}
                except Exception as exc:  # noqa: BLE001 - one failed setting is a row, not the end of the check
                    check.add("throughput", "error", "", note=f"{type(exc).__name__}: {exc}"[:300], **keys)
                    continue
                for loop, timing in timings.items():
                    check.add("throughput", "images_per_s", round(timing["images_per_s"], 1), "img/s", loop=loop, **keys)
                    check.add("throughput", "warmup_s", round(timing["warmup_s"], 2), "s",
                              note=f"{warmup} untimed iterations" + (" incl. compilation" if compiled else ""), loop=loop, **keys)
                    if timing["peak_memory_mib"] is not None:
                        check.add("throughput", "peak_memory_mib", timing["peak_memory_mib"], "MiB", loop=loop, **keys)
                ratio = timings["harness"]["images_per_s"] / timings["bare"]["images_per_s"]
                check.add("throughput", "harness_over_bare", round(ratio, 3), "", note="target >= 0.9", loop="ratio", **keys)


# -- 2. syncs ------------------------------------------------------------------------------
class SyncWindow(pl.Callback):
    """Counts, over iterations start+1 .. start+length of the harness, CUDA synchronisation
    calls in a profiler trace and torch.cuda.set_sync_debug_mode warnings (on a GPU)."""

    SYNC_CALLS = ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize", "cudaMemcpy")

    def __init__(self, start: int, length: int):
        self.start, self.length = start, length
        self.profiler_syncs: int | None = None
        self.debug_warnings: int | None = None

    def on_train_batch_start(self, trainer, *_):
        if trainer.global_step == self.start and torch.cuda.is_available():
            torch.cuda.synchronize()
            self._profiler = torch.profiler.profile(
                activities=[torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA])
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
            torch.cuda.synchronize()
            self._profiler.__exit__(None, None, None)
            self.profiler_syncs = sum(event.name in self.SYNC_CALLS for event in self._profiler.events())


def syncs(check: Check, clock: Clock) -> None:
    from resdeg.training.host_reads import HostReadsPerIteration

    plan = check.plan
    arch, depth = max(plan.models, key=lambda m: (m[0] == "residual", m[1]))
    start, length = plan.sync_window
    keys = dict(model=model_name(arch, depth), precision="32-true", compile="off", loop="harness")
    if clock.left() < 20:
        check.add("syncs", "skipped", "", note="out of the time budget (--budget-s)", **keys)
        return
    window, reads = SyncWindow(start, length), HostReadsPerIteration()
    cfg = compose_cfg(arch, depth, check.overrides())
    time_harness(cfg, start, length + 1, callbacks=(window, reads))
    counted = [k for k in range(start + 1, start + length + 1)]
    host_reads = sum(sum(reads.per_iteration[k].values()) for k in counted)
    where = sorted({place for k in counted for place in reads.per_iteration[k]})
    check.add("syncs", "host_reads_per_step", round(host_reads / length, 3), "reads/step",
              note=f"iterations {start + 1}-{start + length}" + (f"; at {'; '.join(where)}"[:250] if where else ""), **keys)
    if window.profiler_syncs is not None:
        check.add("syncs", "cuda_syncs_per_step", round(window.profiler_syncs / length, 3), "syncs/step",
                  note=f"profiler: {', '.join(SyncWindow.SYNC_CALLS)}", **keys)
        check.add("syncs", "sync_debug_warnings_per_step", round(window.debug_warnings / length, 3), "warnings/step",
                  note="torch.cuda.set_sync_debug_mode('warn')", **keys)
    else:
        check.add("syncs", "cuda_syncs_per_step", "", note="no GPU: only host reads are counted", **keys)


# -- 3. concurrency --------------------------------------------------------------------------
def concurrency(check: Check, clock: Clock) -> None:
    plan = check.plan
    arch, depth = max(plan.models, key=lambda m: (m[0] == "residual", m[1]))
    keys = dict(model=model_name(arch, depth), precision="32-true", compile="off", loop="harness")
    for runs in plan.concurrency:
        if clock.left() < 30 + 5 * runs:
            check.add("concurrency", "skipped", "", note="out of the time budget (--budget-s)", runs=runs, **keys)
            continue
        workers = []
        try:
            with tempfile.TemporaryDirectory() as barrier:
                spec = dict(arch=arch, depth=depth, overrides=check.overrides(), warmup=plan.warmup,
                            iterations=plan.concurrency_iterations, loops=["harness"], barrier=barrier, runs=runs)
                threads = max(1, (os.cpu_count() or 1) // runs)
                workers = [start_worker({**spec, "index": i}, threads) for i in range(runs)]
                results = [finish_worker(w, timeout=clock.left() - 10) for w in workers]
        except Exception as exc:  # noqa: BLE001
            check.add("concurrency", "error", "", note=f"{type(exc).__name__}: {exc}"[:300], runs=runs, **keys)
            continue
        finally:
            for worker in workers:  # none outlives its measurement (one failed or ran out of time)
                if worker.poll() is None:
                    worker.kill()
                    worker.communicate()
        began = min(r["harness"]["timed_from"] for r in results)
        ended = max(r["harness"]["timed_until"] for r in results)
        images = runs * plan.concurrency_iterations * plan.batch_size
        aggregate = images / (ended - began)
        check.add("concurrency", "aggregate_images_per_s", round(aggregate, 1), "img/s",
                  note="all runs' timed images / (last end - first start)", runs=runs, **keys)
        check.add("concurrency", "per_run_images_per_s", round(aggregate / runs, 1), "img/s", runs=runs, **keys)


# -- 4. end to end ---------------------------------------------------------------------------
def end_to_end(check: Check, clock: Clock) -> None:
    plan = check.plan
    keys = dict(model=model_name("residual", plan.e2e_depth), precision="32-true", compile="off", loop="cli")
    if clock.left() < 60:
        check.add("end_to_end", "skipped", "", note="out of the time budget (--budget-s)", **keys)
        return
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "resdeg.train", f"model.depth={plan.e2e_depth}",
                   *check.overrides(*plan.e2e_overrides), f"paths.results={tmp}/results",
                   f"paths.experiments={tmp}/experiments", "logger=none"]
        began = time.monotonic()
        try:
            done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=max(1.0, clock.left() - 10))
        except subprocess.TimeoutExpired:
            check.add("end_to_end", "error", "", note="the run outlasted the time budget", **keys)
            return
        total = time.monotonic() - began
        summaries = list(Path(tmp, "results").glob("runs/*/*/summary.json"))
        if done.returncode or not summaries:
            check.add("end_to_end", "error", "", note=f"exit {done.returncode}: {(done.stderr or done.stdout)[-250:]}", **keys)
            return
        summary = json.loads(summaries[0].read_text())
    iterations, train_s, eval_s = summary["iteration"], summary["train_seconds"], summary["eval_seconds"]
    evaluations = max(1, summary["evaluations"])
    note = f"python -m resdeg.train model.depth={plan.e2e_depth} protocol=cifar_paper {' '.join(plan.e2e_overrides)}"
    for metric, value, unit in (
        ("total_s", total, "s"), ("startup_and_teardown_s", total - train_s, "s"), ("train_s", train_s - eval_s, "s"),
        ("eval_s", eval_s, "s"), ("evaluations", evaluations, ""), ("iterations", iterations, ""),
        ("s_per_iteration", (train_s - eval_s) / iterations, "s"), ("s_per_evaluation", eval_s / evaluations, "s"),
    ):
        check.add("end_to_end", metric, round(value, 4), unit, note=note if metric == "total_s" else "", **keys)


# -- 5. projection ---------------------------------------------------------------------------
def value(table: pd.DataFrame, **where):
    rows = table
    for key, wanted in where.items():
        rows = rows[rows[key].astype(str) == str(wanted)]
    numbers = pd.to_numeric(rows["value"], errors="coerce").dropna()
    return float(numbers.iloc[0]) if len(numbers) else None


def projection(check: Check) -> None:
    """64k-iteration run times and sweep times from the measured figures (no new measurement)."""
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
        return value(table, section="throughput", metric="images_per_s", loop="harness", compile="off",
                     precision="32-true", model=model_name(arch, depth))

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
        return overhead + PAPER_ITERATIONS * seconds_per_iteration(arch, depth) + \
            (PAPER_ITERATIONS // PAPER_EVAL_EVERY) * per_eval * scale

    sweep_depths = (20, 32, 44, 56) if plan.name == "full" else (shallow, deep)
    sweep = [(arch, depth) for arch in ("plain", "residual") for depth in sweep_depths]
    for arch, depth in ((a, d) for a, d in plan.models):
        check.add("projection", "run_64k_min", round(run_seconds(arch, depth) / 60, 1), "min",
                  note="start-up + 64k iterations + 64 evaluations, from the end-to-end run", model=model_name(arch, depth))
    runs_1 = [run_seconds(a, d) for a, d in sweep]
    note = "interpolated in depth between measured nets" if plan.name == "full" else "smoke: the smoke's nets"
    check.add("projection", "sweep_min", round(sum(runs_1) / 60, 1), "min", note=f"local launcher, one run after another; {note}",
              loop="local", runs=1)
    gpus = max(1, torch.cuda.device_count())
    single = value(table, section="concurrency", metric="aggregate_images_per_s", runs=1)
    best = (math.inf, 1)
    for runs in plan.concurrency:
        aggregate = value(table, section="concurrency", metric="aggregate_images_per_s", runs=runs)
        if aggregate is None or single is None:
            continue
        slowdown = runs * single / aggregate  # each run's time beside runs-1 others, relative to alone
        minutes = list_schedule([t * slowdown for t in runs_1], slots=gpus * runs) / 60
        check.add("projection", "sweep_min", round(minutes, 1), "min",
                  note=f"parallel launcher, {gpus} GPU(s) x {runs} run(s) per GPU; each run takes x{slowdown:.2f} its time alone",
                  loop="parallel", runs=runs)
        best = min(best, (minutes * 1.05 if runs > 1 else minutes, runs))  # another run per GPU must gain > 5%
    check.add("projection", "recommended_runs_per_gpu", best[1], "", note="launch.runs_per_gpu=auto uses this on this GPU model")


def list_schedule(durations: list[float], slots: int) -> float:
    """When the last of ``durations`` ends, started longest first on ``slots`` parallel slots."""
    ends = [0.0] * slots
    for duration in sorted(durations, reverse=True):
        i = ends.index(min(ends))
        ends[i] += duration
    return max(ends)


# -- the worker: one measurement in a process of its own ------------------------------------
def start_worker(spec: dict, threads: int | None = None) -> subprocess.Popen:
    env = {**os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {})}
    return subprocess.Popen([sys.executable, "-m", "resdeg.gpu_check", "--worker", json.dumps(spec)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish_worker(process: subprocess.Popen, timeout: float) -> dict:
    try:
        out, err = process.communicate(timeout=max(1.0, timeout))
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise TimeoutError("the measurement outlasted the time budget") from None
    results = [line[len("RESULT "):] for line in out.splitlines() if line.startswith("RESULT ")]
    if process.returncode or not results:
        raise RuntimeError(f"worker exit {process.returncode}: {err.strip()[-250:]}")
    return json.loads(results[-1])


def run_worker(spec: dict, timeout: float) -> dict:
    return finish_worker(start_worker(spec), timeout)


class Barrier(pl.Callback):
    """Holds a worker after its warm-up until all ``runs`` workers are warm, so they are timed together."""

    def __init__(self, folder: str, index: int, runs: int, warmup: int):
        self.folder, self.index, self.runs, self.warmup = Path(folder), index, runs, warmup

    def on_train_batch_start(self, trainer, *_):
        if trainer.global_step == self.warmup:
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            (self.folder / f"ready-{self.index}").touch()
            while len(list(self.folder.glob("ready-*"))) < self.runs:
                time.sleep(0.01)


def worker(spec: dict) -> dict:
    from resdeg.bench import Timing

    cfg = compose_cfg(spec["arch"], spec["depth"], spec["overrides"])
    result = {}
    for loop in spec["loops"]:
        if loop == "harness":
            callbacks = ()
            if spec.get("barrier"):
                callbacks = (Barrier(spec["barrier"], spec["index"], spec["runs"], spec["warmup"]),)
            timing: Timing = time_harness(cfg, spec["warmup"], spec["iterations"], callbacks=callbacks)
        else:
            timing = time_bare(cfg, spec["warmup"], spec["iterations"])
        result[loop] = vars(timing)
    return result


# -- report ----------------------------------------------------------------------------------
def markdown(table: pd.DataFrame, batch: int) -> str:
    device, check = (table[c].iloc[0] if len(table) else "" for c in ("device", "check"))
    lines = [f"# make gpu-check: {device}", "",
             f"Check: {check}; torch {table['torch'].iloc[0] if len(table) else torch.__version__}. "
             "Every value from `python -m resdeg.gpu_check`; format in results/README.md.", ""]
    shown = table[table.metric.isin(["skipped", "error"])]
    numbers = table.assign(value=pd.to_numeric(table["value"], errors="coerce"))
    throughput_rows = numbers[(numbers.section == "throughput") & numbers.metric.isin(
        ["images_per_s", "warmup_s", "peak_memory_mib", "harness_over_bare"])]
    if len(throughput_rows):
        pivot = throughput_rows.pivot_table(index=["model", "precision", "compile"], columns=["loop", "metric"],
                                            values="value", aggfunc="first")
        pivot.columns = [f"{loop} {metric}" for loop, metric in pivot.columns]
        lines += [f"## Training throughput, batch {batch}", "", pivot.reset_index().to_markdown(index=False), ""]
    for section, title in (("syncs", "Host-device synchronisations per training step"),
                           ("concurrency", "Runs side by side on one GPU"),
                           ("end_to_end", "A paper-protocol run end to end"),
                           ("projection", "Projected wall times")):
        rows = table[(table.section == section) & ~table.metric.isin(["skipped", "error"])]
        if len(rows):
            columns = [c for c in ("model", "loop", "runs", "metric", "value", "unit", "note") if rows[c].astype(str).ne("").any()]
            lines += [f"## {title}", "", rows[columns].to_markdown(index=False), ""]
    if len(shown):
        lines += ["## Not measured", "", shown[["section", "model", "precision", "compile", "runs", "metric", "note"]]
                  .to_markdown(index=False), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="the tiny version (the default without a GPU)")
    parser.add_argument("--budget-s", type=float, help="time budget in seconds (full: 540, smoke: 300)")
    parser.add_argument("--out", help="folder for gpu_<device>.csv/.md (full: results/bench, smoke: experiments/gpu_check)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print("RESULT " + json.dumps(worker(json.loads(args.worker))), flush=True)
        return 0

    from resdeg.console import quiet_libraries

    quiet_libraries()
    gpu = torch.cuda.is_available()
    plan = SMOKE if args.smoke or not gpu else FULL
    unusable = None if gpu or args.smoke else devices.unusable_gpu()
    if unusable:  # a GPU is here but this torch cannot use it: measuring the CPU would say nothing of it
        print(f"[gpu-check] error: {unusable} (--smoke runs the CPU smoke check on purpose)", file=sys.stderr, flush=True)
        return 2
    if not gpu:
        print("[gpu-check] no GPU found: running the smoke version (tiny nets, a few iterations); "
              "its files go to experiments/gpu_check/, never to results/", flush=True)
    cifar_root = os.environ.get("RESDEG_CIFAR_ROOT") or str(REPO / "experiments" / "data")
    out = Path(args.out) if args.out else (REPO / "results" / "bench" if plan.name == "full" else REPO / "experiments" / "gpu_check")
    check, clock = Check(plan, out, cifar_root), Clock(args.budget_s or plan.budget_s)
    started = time.monotonic()
    for section in (lambda: throughput(check, clock, compiled=False), lambda: syncs(check, clock),
                    lambda: end_to_end(check, clock), lambda: concurrency(check, clock),
                    lambda: throughput(check, clock, compiled=True), lambda: projection(check)):
        try:
            section()
        except Exception as exc:  # noqa: BLE001 - the next sections still run; the failure is a row
            check.add("check", "error", "", note=f"{type(exc).__name__}: {exc}"[:300])
        csv_path, md_path = check.write()
    print(f"[gpu-check] done in {time.monotonic() - started:.0f} s on {check.device}: {csv_path} and {md_path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
