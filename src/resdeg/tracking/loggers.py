"""A run's Lightning loggers: the run record first (the source of truth), then the configured
one, if any (``logger=wandb``: resdeg.tracking.wandb_logger; ``logger=none``: the record only).
"""

from __future__ import annotations

from functools import partial

from omegaconf import DictConfig, OmegaConf


def build_loggers(cfg: DictConfig, identity: dict, recorder, previous: dict | None) -> list:
    """The record ``recorder``, then the configured logger. A logger config with
    ``_partial_: true`` (logger=wandb) is called with the run's identity, resolved config,
    sweep and, for a resumed run (``previous``: its record), the W&B id it continues and the
    rows that W&B run already holds."""
    from resdeg.build import instantiate

    loggers = [recorder]
    if cfg.get("logger"):
        logger = instantiate(cfg.logger)
        if isinstance(logger, partial):
            from resdeg.tracking.wandb_logger import setting_overrides

            logger = logger(
                identity=identity,
                config=OmegaConf.to_container(cfg, resolve=True),
                previous_id=(previous or {}).get("wandb_id"),
                sweep=sweep_name(),
                already_logged=logged_before(recorder) if previous else frozenset(),
                forced=bool(cfg.force),
                setting_overridden=bool(setting_overrides()),
            )
        loggers.append(logger)
    return loggers


def logged_before(recorder) -> set[tuple[int, str]]:
    """The (iteration, metric) pairs of the record's rows before the kill: what the W&B run
    being resumed already holds."""
    from resdeg.record import read_history

    history = recorder.record.folder / "history.csv"
    rows = read_history(history) if history.is_file() else []
    return {(iteration, f"{split}/{metric}") for iteration, split, metric, _ in rows}


def sweep_name() -> str:
    """The experiment a job belongs to (``degradation_cifar``...), or ``single`` for a lone run."""
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        return HydraConfig.get().runtime.choices.get("experiment") or "single"
    return "single"


def wandb_mode(loggers: list) -> str:
    """online, offline or disabled for the run's W&B logger; off without one."""
    return next((logger.mode for logger in loggers if hasattr(logger, "mode")), "off")


def wandb_id(loggers: list) -> str | None:
    """The id of the run's W&B run, kept in the record so that a resume continues it."""
    return next((logger.version for logger in loggers if hasattr(logger, "mode")), None)
