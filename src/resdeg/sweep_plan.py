"""What a sweep will do, said before it launches: how many of its runs are skipped (a complete
record), resumed (an interrupted one with a checkpoint) and trained, and the expected wall time.

The jobs are the sweep's own (Hydra's basic sweeper expands the command line and the
experiment's ``hydra.sweeper.params``), each composed as its launcher will compose it, so the
counts are those the runs will decide. The time comes from the pace earlier records of the
same net measured (training images/s and seconds per evaluation, where they ran): a net no
record has measured yet is counted apart, and every run also says its own expected time after
its first iterations (resdeg.training.pace).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger("resdeg")


@dataclass
class PlannedRun:
    name: str
    dataset: str
    action: str  # skip | resume | train
    iterations_left: int
    batch_size: int
    evaluations_left: int


# the setting keys a sweep varies across its jobs (``protocol.schedule.base_lr=0.05,0.1``): its
# jobs, in this process or started from it (joblib, SLURM), name their W&B runs by setting
SWEPT_SETTINGS_ENV = "RESDEG_SWEPT_SETTINGS"


class SweepPlan(Callback):
    """A Hydra callback: one line before the sweep's first job (conf/config.yaml)."""

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        try:
            os.environ[SWEPT_SETTINGS_ENV] = ",".join(swept_setting_keys(job_overrides(config)))
            runs = planned_runs(config)
        except Exception as exc:  # noqa: BLE001 - a plan that cannot be made must never stop the sweep
            log.info(f"sweep plan not made ({type(exc).__name__}: {exc}); each run says what it does as it starts")
            return
        log.info(describe(runs, measured_pace(Path(config.paths.results)), str(config.hydra.launcher._target_)))


def job_overrides(config: DictConfig) -> list[list[str]]:
    """The override list of every job, as Hydra's basic sweeper makes them."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = config.hydra.sweeper.get("params") or {}
    command_line = list(config.hydra.overrides.task)
    given = {o.split("=", 1)[0].lstrip("+~") for o in command_line}
    arguments = [f"{key}={value}" for key, value in params.items() if key not in given] + command_line
    parsed = OverridesParser.create().parse_overrides(arguments)
    return [job for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]


def swept_setting_keys(jobs: list[list[str]]) -> list[str]:
    """The setting keys (resdeg.record.identity.is_setting_key) whose value differs across jobs."""
    from resdeg.record.identity import is_setting_key

    values: dict[str, set[str]] = {}
    for job in jobs:
        for override in job:
            key, _, value = override.partition("=")
            values.setdefault(key.lstrip("+~"), set()).add(value)
    return sorted(key for key, seen in values.items() if is_setting_key(key) and len(seen) > 1)


def planned_runs(config: DictConfig) -> list[PlannedRun]:
    from hydra.core.global_hydra import GlobalHydra

    from resdeg.record.identity import run_identity
    from resdeg.record.layout import RunFolders
    from resdeg.record.schema import read_summary

    loader = GlobalHydra.instance().config_loader()
    runs = []
    for overrides in job_overrides(config):
        cfg = loader.load_sweep_config(config, list(overrides))
        identity = run_identity(cfg)
        folders = RunFolders.of(cfg, identity)
        try:
            previous = read_summary(folders.record)
        except Exception:  # noqa: BLE001 - an unreadable record: the run itself names it
            previous = None
        iterations, eval_every = int(cfg.protocol.iterations), max(1, int(cfg.protocol.eval_every))
        done = 0
        if previous and previous.get("status") == "complete" and not cfg.force:
            action, done = "skip", iterations
        elif previous and not cfg.force and any(folders.checkpoints.glob("*.ckpt")):
            # a stopped run's checkpoint is newer than its record's last logged iteration
            action, done = "resume", int(previous.get("interrupted_at") or previous.get("iteration") or 0)
        else:
            action = "train"
        left = max(0, iterations - done)
        runs.append(
            PlannedRun(
                identity["name"],
                identity["dataset"],
                action,
                left,
                int(cfg.protocol.batch_size),
                left // eval_every + (1 if left and iterations % eval_every else 0),
            )
        )
    return runs


def measured_pace(results: Path) -> dict[tuple[str, str], tuple[float, float | None]]:
    """(dataset, net) -> (training images/s, seconds per evaluation) of the newest complete
    record that measured them."""
    from resdeg.record.schema import read_summary

    newest: dict[tuple[str, str], tuple[str, float, float | None]] = {}
    for summary_path in (results / "runs").glob("*/*/summary.json"):
        try:
            summary = read_summary(summary_path.parent)
        except Exception:  # noqa: BLE001 - the report names unreadable records; the plan only skips them
            continue
        if not summary or summary.get("status") != "complete" or not summary.get("train_images_per_s"):
            continue
        key = (summary.get("dataset"), summary.get("name"))
        when = str(summary.get("finished_at") or "")
        per_eval = (summary["eval_seconds"] / summary["evaluations"]) if summary.get("evaluations") else None
        if key not in newest or when > newest[key][0]:
            newest[key] = (when, float(summary["train_images_per_s"]), per_eval)
    return {key: (rate, per_eval) for key, (_, rate, per_eval) in newest.items()}


def describe(runs: list[PlannedRun], pace: dict, launcher: str) -> str:
    counts = {action: sum(r.action == action for r in runs) for action in ("skip", "resume", "train")}
    line = (
        f"this sweep: {len(runs)} runs: {counts['skip']} skipped (complete records), {counts['resume']} resumed, "
        f"{counts['train']} trained from the start"
    )
    to_run = [r for r in runs if r.action != "skip"]
    if not to_run:
        return line + "; nothing to train"
    seconds, unknown = 0.0, sorted({r.name for r in to_run if (r.dataset, r.name) not in pace})
    for run in to_run:
        if (run.dataset, run.name) in pace:
            rate, per_eval = pace[(run.dataset, run.name)]
            seconds += run.iterations_left * run.batch_size / rate + run.evaluations_left * (per_eval or 0.0)
    one_after_another = "BasicLauncher" in launcher
    if seconds:
        how = "one run after another" if one_after_another else "(summed over jobs run side by side)"
        line += f"; expected {_duration(seconds)} of training {how} at the pace earlier records of these nets measured"
    if unknown:
        line += (
            f"; no record has measured {', '.join(unknown)} yet "
            "(each run says its expected time after its first iterations)"
        )
    return line


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 120 else f"{minutes / 60:.1f} h"
