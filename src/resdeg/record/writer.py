"""Writing one run's record as the run goes (the layout is in resdeg.record.schema).

Every write is atomic (a temporary file in the same folder, then a rename), so a reader
never sees a half-written file, even if the run is killed mid-write. The Lightning logger
that feeds it (resdeg.training.recorder.RunRecorder) is a thin adapter over this class.
"""

from __future__ import annotations

import platform
import time
from pathlib import Path
from typing import Any

from resdeg.record.lock import unwritable
from resdeg.record.provenance import code_version, software_versions
from resdeg.record.schema import (
    SCHEMA_VERSION,
    STATUSES,
    history_csv,
    layer_responses_csv,
    now_iso,
    read_history,
    read_signals,
    signals_csv,
    summary_json,
    write_atomic,
)


class RunRecord:
    def __init__(self, folder: str | Path, identity: dict[str, Any], config_yaml: str):
        self.folder = Path(folder)
        self.identity = dict(identity)
        self._config_yaml = config_yaml
        # (iteration, split, metric) -> value: a value logged again at the same iteration (a
        # resumed run re-closing the interval its checkpoint held open) replaces the first
        self._rows: dict[tuple[int, str, str], float] = {}
        # (iteration, layer) -> a row of signals.csv; a measurement taken again replaces the first
        self._signals: dict[tuple[int, int], dict] = {}
        self._last: dict[str, float] = {}
        self._summary: dict[str, Any] = {}
        self._resumed: dict[str, Any] = {}
        self._t0 = time.monotonic()

    @property
    def last_metrics(self) -> dict[str, float]:
        """The latest value of each metric, keyed like ``test/error``."""
        return dict(self._last)

    @property
    def summary(self) -> dict[str, Any]:
        return dict(self._summary)

    def continue_from(self, previous: dict[str, Any], iteration: int) -> None:
        """Continue an interrupted record from a checkpoint at ``iteration``.

        History after the checkpoint is dropped: the resumed run logs it again, identically.
        """
        history = self.folder / "history.csv"
        if history.is_file():
            self._rows = {
                (it, split, metric): value for it, split, metric, value in read_history(history) if it <= iteration
            }
            self._last = {f"{split}/{metric}": value for (_, split, metric), value in self._rows.items()}
        signals = self.folder / "signals.csv"
        if signals.is_file():
            self._signals = {
                (row["iteration"], row["layer"]): row for row in read_signals(signals) if row["iteration"] <= iteration
            }
        self._resumed = {
            "started_at": previous.get("started_at"),
            "wall_time_before_s": previous.get("wall_time_s", 0.0),
            "resumed_at_iterations": [*previous.get("resumed_at_iterations", []), iteration],
        }

    def start(self, **fields: Any) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise unwritable(self.folder, exc) from None
        self._write("config.yaml", self._config_yaml)
        self._summary = {
            "schema": SCHEMA_VERSION,
            **self.identity,
            "status": "running",
            "started_at": now_iso(),
            "last": dict(self._last),
            "versions": software_versions(),
            "code": code_version(),
            "host": platform.node(),
            **fields,
            **self._resumed,
        }
        self._write_history()
        self._write_summary()

    def add(self, metrics: dict[str, float], iteration: int) -> None:
        """Metrics named ``split/metric`` (e.g. ``test/error``) at ``iteration``; others go under split ``train``."""
        for key, value in metrics.items():
            split, _, metric = key.rpartition("/")
            self._rows[(int(iteration), split or "train", metric)] = float(value)
            self._last[key] = float(value)
        self.update(iteration=int(iteration), last=dict(self._last))
        self._write_history()

    def update(self, **fields: Any) -> None:
        self._summary.update(fields)
        self._write_summary()

    def finish(self, status: str, **fields: Any) -> None:
        assert status in STATUSES, status
        self._summary.update(fields, status=status, finished_at=now_iso())
        self._write_history()
        self._write_summary()

    def write_layer_responses(self, rows: list[dict]) -> None:
        """layer_responses.csv: the std of each 3x3 layer's response (Fig. 7), see training/responses.py."""
        self._write("layer_responses.csv", layer_responses_csv(rows))

    def add_signals(self, iteration: int, rows: list[dict]) -> None:
        """signals.csv: one measurement of the forward and backward signals (training/signals.py)."""
        for row in rows:
            self._signals[(int(iteration), int(row["layer"]))] = {**row, "iteration": int(iteration)}
        self._write("signals.csv", signals_csv(self._signals.values()))

    def _write_summary(self) -> None:
        if not self._summary:
            return
        self._summary["updated_at"] = now_iso()
        self._summary["wall_time_s"] = round(
            self._summary.get("wall_time_before_s", 0.0) + time.monotonic() - self._t0, 1
        )
        self._write("summary.json", summary_json(self._summary))

    def _write_history(self) -> None:
        self._write("history.csv", history_csv((*key, value) for key, value in self._rows.items()))

    def _write(self, name: str, text: str) -> None:
        """One file of the record, atomically; a full or read-only disk is one message, the
        previous version of the file stays as it was."""
        try:
            write_atomic(self.folder / name, text)
        except OSError as exc:
            raise unwritable(self.folder, exc) from None
