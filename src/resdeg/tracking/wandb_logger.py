"""One W&B run per training run, named, grouped and tagged from its config.

- name: ``plain-56-seed0``, ``resnet-34-B-seed1``: the run's name and seed;
- group: the sweep (``<dataset>-<experiment>-<protocol>``, e.g. ``cifar10-degradation_cifar-quick-1000``),
  so a sweep's runs are one group on the dashboard;
- tags: dataset, kind (plain/residual), depth, shortcut option, protocol;
- config: the resolved Hydra config flattened to dotted keys (``protocol.schedule.base_lr``),
  plus the identity fields, so runs filter and group by any value;
- id: kept in the run record, so a resumed run continues its W&B run instead of starting another.

Curves are logged against the iteration (W&B's x-axis ``trainer/global_step``), so a line
plot of ``train/error`` and ``test/error`` is Fig. 6. Each job of a Hydra multirun calls
``finish_wandb`` at its end, so no two jobs share a W&B run (wandb#1314, lightning#5212).
"""

from __future__ import annotations

import logging
import netrc
import os
import uuid
from pathlib import Path
from urllib.parse import urlparse

from lightning.pytorch.loggers import WandbLogger

from resdeg import ResdegError

log = logging.getLogger("resdeg")

MODES = ("auto", "online", "offline", "disabled")


def has_credentials() -> bool:
    """An API key in the environment, or a ~/.netrc entry for the W&B host (what `wandb login` writes)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    try:
        return netrc.netrc().authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def choose_mode(configured: str) -> str:
    """The config value wins, then WANDB_MODE, then online where credentials exist, else offline.

    Never prompts: a sweep on a cluster node must not wait for a login.
    """
    if configured not in MODES:
        raise ResdegError(f"unknown logger.mode {configured!r}: choose one of {', '.join(MODES)}")
    if configured != "auto":
        return configured
    env = os.environ.get("WANDB_MODE", "").strip().lower()
    if env:
        return {"dryrun": "offline", "run": "online", "disable": "disabled"}.get(env, env)
    return "online" if has_credentials() else "offline"


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


def wandb_logger(
    identity: dict,
    config: dict,
    previous_id: str | None,
    sweep: str,
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
        log.info(f"W&B offline (no credentials found, or WANDB_MODE/logger.mode say so): upload later with "
                 f"`wandb sync {save_dir}/wandb/offline-run-*`")
    run_id = previous_id or f"{identity['run_id']}-{uuid.uuid4().hex[:6]}".replace("_", "-")
    return WandbLogger(
        name=f"{identity['name']}-seed{identity['seed']}",
        id=run_id,
        project=project,
        entity=entity,
        group=group or f"{identity['dataset']}-{sweep}-{identity['protocol']}",
        tags=run_tags(identity),
        config={**flatten(config), **{f"run.{k}": v for k, v in identity.items()}},
        save_dir=str(save_dir),
        mode=mode,
        # a re-launched run continues its W&B run (the id is kept in the run record)
        resume="allow",
        # W&B does not take over the process's signals or stdout more than it must
        settings={"console": "off", "x_disable_stats": True} if mode != "disabled" else None,
    )


# summary fields of the run record copied to the W&B summary (resdeg.tracking.wandb_import reads them back)
SUMMARY_FIELDS = ("schema", "status", "iteration", "iterations", "parameters", "multiply_adds", "train_seconds", "message")


def finish_wandb(loggers, record_summary: dict) -> None:
    """End this job's W&B run, so the next job of a multirun starts its own."""
    for logger in loggers:
        if isinstance(logger, WandbLogger) and logger._experiment is not None:
            run = logger.experiment
            for key in SUMMARY_FIELDS:
                if record_summary.get(key) is not None:
                    run.summary[f"record/{key}"] = record_summary[key]
            for key, value in (record_summary.get("final") or {}).items():
                run.summary[f"final/{key}"] = value
            run.finish(exit_code=0 if record_summary.get("status") == "complete" else 1)
