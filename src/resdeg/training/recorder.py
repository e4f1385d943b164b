"""The run record as a Lightning logger: the module logs once, and the record, W&B and any
other logger receive the same numbers at the same iteration.

A thin adapter: the record itself (its files, schema and writing) is resdeg.record. Only the
first process of a DDP run writes it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lightning.pytorch.loggers.logger import Logger, rank_zero_experiment
from lightning.pytorch.utilities import rank_zero_only

from resdeg.record.writer import RunRecord


class RunRecorder(Logger):
    """Writes one run's record under ``folder`` (see resdeg.record)."""

    def __init__(self, folder: str | Path, identity: dict[str, Any], config_yaml: str):
        super().__init__()
        self.record = RunRecord(folder, identity, config_yaml)

    # -- Lightning logger interface -------------------------------------------------
    @property
    def name(self) -> str:
        return "run_record"

    @property
    def version(self) -> str:
        return self.record.identity.get("run_id", "")

    @property
    def save_dir(self) -> str:
        return str(self.record.folder)

    @property
    @rank_zero_experiment
    def experiment(self) -> RunRecord:
        return self.record

    @rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass  # the whole resolved config is written by start()

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        if step is not None:
            self.record.add(metrics, step)

    # -- the record's lifecycle, on the first process only ---------------------------
    @property
    def last_metrics(self) -> dict[str, float]:
        return self.record.last_metrics

    @property
    def summary(self) -> dict[str, Any]:
        return self.record.summary

    def continue_from(self, previous: dict[str, Any], iteration: int) -> None:
        self.record.continue_from(previous, iteration)

    @rank_zero_only
    def start(self, **fields: Any) -> None:
        self.record.start(**fields)

    @rank_zero_only
    def update(self, **fields: Any) -> None:
        self.record.update(**fields)

    @rank_zero_only
    def finish(self, status: str, **fields: Any) -> None:
        self.record.finish(status, **fields)

    @rank_zero_only
    def write_layer_responses(self, rows: list[dict]) -> None:
        self.record.write_layer_responses(rows)

    @rank_zero_only
    def write_signals(self, iteration: int, rows: list[dict]) -> None:
        self.record.add_signals(iteration, rows)
