"""One W&B run per training run, named, grouped and tagged from its config.

- name: ``plain-56-seed0``, ``resnet-34-B-seed1``: the run's name and seed (``-rerun`` and the
  tag ``forced-rerun`` for a run started afresh with force=true);
- group: the network under one protocol setting (``<dataset>-<protocol>-<net>``, e.g.
  ``cifar10-quick-1000-resnet-56-A``): W&B draws a group as one line (the mean) with a band
  (the spread), so a sweep's workspace shows one line per network, seeds grouped, as Fig. 6;
- job type: the sweep (``degradation_cifar``, ``budget_cifar``..., ``single`` for one run);
- tags: dataset, kind (plain/residual), depth, shortcut option, protocol;
- config: the resolved Hydra config flattened to dotted keys (``protocol.schedule.base_lr``),
  plus the identity fields, so runs filter and group by any value;
- id: kept in the run record, so a resumed run continues its W&B run instead of starting another.

Every curve's x-axis is the iteration (``define_metric``: ``trainer/global_step``), so a
line plot of ``train/error`` and ``test/error`` is Fig. 6; their summaries are the last and
the best (minimum) value; system metrics (CPU, GPU utilisation and memory) are on. A resumed
run continues its W&B run and does not log again what W&B already has (the iterations
between its checkpoint and the kill, which it recomputes identically), so its W&B history
equals its record's: no step twice, none going backwards. Each job of a Hydra multirun calls
``finish_wandb`` at its end, so no two jobs share a W&B run (wandb#1314, lightning#5212).
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

from lightning.pytorch.loggers import WandbLogger

from resdeg.tracking.wandb_mode import choose_mode

log = logging.getLogger("resdeg")


def flatten(config: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def run_tags(identity: dict) -> list[str]:
    tags = [identity["dataset"], identity["arch"], f"depth-{identity['depth']}", f"protocol-{identity['protocol']}"]
    if identity["arch"] == "residual":
        tags.append(f"option-{identity['shortcut']}")
    return tags


# the paper's curves: their W&B summary is the last value and the best (lowest)
ERROR_CURVES = ("train/error", "test/error", "val/error", "val/top5_error")
STEP = "trainer/global_step"


class RunWandbLogger(WandbLogger):
    """Lightning's WandbLogger with the x-axis and summaries defined, and a resumed run's
    already-logged (iteration, metric) pairs left out."""

    def __init__(self, *args, already_logged: set[tuple[int, str]] = frozenset(), mode: str = "online", **kwargs):
        super().__init__(*args, mode=mode, **kwargs)
        self.mode = mode  # online | offline | disabled, as the run's first line says
        # Lightning always passes anonymous= (None here), which W&B answers with a deprecation warning
        self._wandb_init.pop("anonymous", None)
        self._already_logged = set(already_logged)
        self._defined = False

    @property
    def experiment(self):
        run = super().experiment
        if not self._defined and hasattr(run, "define_metric"):
            self._defined = True
            for name in ERROR_CURVES:
                run.define_metric(name, step_metric=STEP, summary="last,min")
        return run

    def log_metrics(self, metrics, step=None) -> None:
        if step is not None and self._already_logged:
            metrics = {key: value for key, value in metrics.items() if (int(step), key) not in self._already_logged}
            if not metrics:
                return
        super().log_metrics(metrics, step)


def wandb_logger(
    identity: dict,
    config: dict,
    previous_id: str | None,
    sweep: str,
    already_logged: set[tuple[int, str]] = frozenset(),
    forced: bool = False,
    setting_overridden: bool = False,
    mode: str = "auto",
    project: str = "resdeg",
    entity: str | None = None,
    group: str | None = None,
    save_dir: str = "experiments/wandb",
) -> WandbLogger:
    """The Lightning WandbLogger of one run (see the module docstring). ``previous_id`` resumes a W&B run."""
    mode = choose_mode(mode)
    save_dir = Path(save_dir).absolute()
    save_dir.mkdir(parents=True, exist_ok=True)
    if mode == "offline":
        log.info(
            f"W&B offline (no credentials found, or WANDB_MODE/logger.mode say so): upload later with "
            f"`wandb sync {save_dir}/wandb/offline-run-*`"
        )
    elif mode == "online":
        log.info(
            f"W&B online: project {entity + '/' if entity else ''}{project}, group {group or network_group(identity)}; "
            f"files in {save_dir}/wandb"
        )
    run_id = previous_id or f"{identity['run_id']}-{uuid.uuid4().hex[:6]}".replace("_", "-")
    return RunWandbLogger(
        # a run whose setting was changed on the command line (another lr...) says so in its name
        name=(
            f"{identity['name']}-seed{identity['seed']}"
            f"{'-setting-' + identity['protocol_hash'] if setting_overridden else ''}{'-rerun' if forced else ''}"
        ),
        id=run_id,
        project=project,
        entity=entity,
        group=group or network_group(identity),
        job_type=sweep,
        tags=run_tags(identity) + (["forced-rerun"] if forced else []),
        already_logged=already_logged,
        config={**flatten(config), **{f"run.{k}": v for k, v in identity.items()}},
        save_dir=str(save_dir),
        mode=mode,
        # a re-launched run continues its W&B run (the id is kept in the run record)
        resume="allow",
        # W&B neither takes over the process's stdout nor prints its banners and run summary
        # (about 30 lines a run): the run's own lines say the mode and where the files are
        settings={"console": "off", "quiet": True, "silent": True} if mode != "disabled" else None,
    )


def setting_overrides() -> list[str]:
    """The job's command-line overrides that set its protocol setting apart (a learning rate,
    the data's split, the precision): all of them for a lone run; in a sweep, those the sweep
    varies across its jobs (resdeg.sweep_plan), since a setting all its jobs share is the sweep's."""
    import os

    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from resdeg.record.identity import is_setting_key
    from resdeg.sweep_plan import SWEPT_SETTINGS_ENV

    if not HydraConfig.initialized():
        return []
    keys = [o.split("=", 1)[0].lstrip("+~") for o in HydraConfig.get().overrides.task]
    keys = [key for key in keys if is_setting_key(key)]
    if HydraConfig.get().mode == RunMode.MULTIRUN:
        keys = [key for key in keys if key in os.environ.get(SWEPT_SETTINGS_ENV, "").split(",")]
    return keys


def network_group(identity: dict) -> str:
    """One W&B group per network and protocol setting: its seeds are drawn as one line with a band.

    The setting (``protocol_hash``, as the report keys its sets: resdeg.report.sets) is in the
    name, so a run of another setting under the same protocol name (another learning rate, a
    debug budget) never joins the sweep's line and is never averaged into it."""
    return f"{identity['dataset']}-{identity['protocol']}-{identity['name']}-setting-{identity['protocol_hash']}"


# the run record's summary keys copied into the W&B run's summary as record/<key>
# (resdeg.tracking.wandb_import reads them back into a record)
RECORD_KEYS_IN_WANDB_SUMMARY = (
    "schema",
    "status",
    "iteration",
    "iterations",
    "parameters",
    "multiply_adds",
    "train_seconds",
    "message",
)


def finish_wandb(loggers, record_summary: dict) -> None:
    """End this job's W&B run, so the next job of a multirun starts its own."""
    for logger in loggers:
        if isinstance(logger, WandbLogger) and logger._experiment is not None:
            run = logger.experiment
            for key in RECORD_KEYS_IN_WANDB_SUMMARY:
                if record_summary.get(key) is not None:
                    run.summary[f"record/{key}"] = record_summary[key]
            for key, value in (record_summary.get("final") or {}).items():
                run.summary[f"final/{key}"] = value
            run.finish(exit_code=0 if record_summary.get("status") == "complete" else 1)
