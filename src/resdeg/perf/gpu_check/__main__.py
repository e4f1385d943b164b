"""python -m resdeg.perf.gpu_check: see the package's docstring."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

from resdeg import devices
from resdeg.paths import experiments_root, results_root
from resdeg.perf import gpu_check
from resdeg.perf.gpu_check.plan import FULL, SECTIONS, SMOKE, Clock
from resdeg.perf.gpu_check.projection import projection
from resdeg.perf.gpu_check.sections import concurrency, end_to_end, syncs, throughput
from resdeg.perf.gpu_check.table import Check
from resdeg.perf.gpu_check.workers import worker


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=gpu_check.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--smoke", action="store_true", help="the tiny version (the default without a GPU)")
    parser.add_argument("--budget-s", type=float, help="time budget in seconds (full and smoke: 300)")
    parser.add_argument(
        "--out",
        help="folder for gpu_<device>.csv/.md (full: $RESDEG_RESULTS/bench, smoke: $RESDEG_EXPERIMENTS/gpu_check;"
        " else results/bench, experiments/gpu_check)",
    )
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
        print(
            f"[gpu-check] error: {unusable} (--smoke runs the CPU smoke check on purpose)", file=sys.stderr, flush=True
        )
        return 2
    if not gpu:
        print(
            "[gpu-check] no GPU found: running the smoke version (tiny nets, a few iterations); "
            "its files go to experiments/gpu_check/, never to results/",
            flush=True,
        )
    cifar_root = os.environ.get("RESDEG_CIFAR_ROOT") or str(experiments_root() / "data")  # as conf/data/cifar10.yaml
    out = (
        Path(args.out)
        if args.out
        else (results_root() / "bench" if plan.name == "full" else experiments_root() / "gpu_check")
    )
    check, clock = Check(plan, out, cifar_root), Clock(args.budget_s or plan.budget_s)
    run = {
        "throughput": lambda: throughput(check, clock, compiled=False),
        "concurrency": lambda: concurrency(check, clock),
        "syncs": lambda: syncs(check, clock),
        "end_to_end": lambda: end_to_end(check, clock),
        "compiled": lambda: throughput(check, clock, compiled=True),
        "projection": lambda: projection(check),
    }
    started = time.monotonic()
    for section, _ in SECTIONS:
        clock.start(section)
        try:
            run[section]()
        except KeyboardInterrupt:  # Ctrl-C: one line, not a traceback; each section's rows are written as it ends
            print(f"\n[gpu-check] stopped by Ctrl-C in {section}: the sections before it are in {out}", flush=True)
            return 130
        except Exception as exc:  # noqa: BLE001 - the next sections still run; the failure is a row
            check.add(section, "error", "", note=f"{type(exc).__name__}: {exc}"[:300])
        csv_path, md_path = check.write()
    print(
        f"[gpu-check] done in {time.monotonic() - started:.0f} s on {check.device}: {csv_path} and {md_path}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
