"""Reading results/ into pandas: the report's only input.

A record that cannot be read (a torn or hand-edited file, a missing history) is skipped
and named in ``problems``; it never stops the report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from resdeg.record import HISTORY_COLUMNS, LAYER_RESPONSE_COLUMNS, REPORT_COLUMNS, SIGNAL_COLUMNS, parse_summary
from resdeg.record.schema import summary_problem

SUMMARY_COLUMNS = list(REPORT_COLUMNS)

RESPONSE_COLUMNS = ["run_id", *LAYER_RESPONSE_COLUMNS]
SIGNALS_COLUMNS = ["run_id", *SIGNAL_COLUMNS]


@dataclass
class Results:
    runs: pd.DataFrame  # one row per run: summary fields and final_<split>_<metric> errors
    history: pd.DataFrame  # run_id, iteration, split, metric, value
    problems: list[str] = field(default_factory=list)
    # run_id, layer, name, std: Fig. 7's layer responses, for the records that have them
    responses: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=RESPONSE_COLUMNS))
    # run_id, iteration, layer, name, forward_std, output_grad_norm, weight_grad_norm: Section 4.1's signals
    signals: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=SIGNALS_COLUMNS))

    def of(self, dataset: str, protocol: str) -> "Results":
        return self.where((self.runs.dataset == dataset) & (self.runs.protocol == protocol))

    def where(self, mask) -> "Results":
        """The runs selected by a boolean mask over ``runs``, with their history and responses."""
        runs = self.runs[mask]
        return Results(
            runs,
            self.history[self.history.run_id.isin(runs.run_id)],
            self.problems,
            self.responses[self.responses.run_id.isin(runs.run_id)],
            self.signals[self.signals.run_id.isin(runs.run_id)],
        )

    def curve(self, run_id: str, split: str, metric: str = "error") -> pd.DataFrame:
        h = self.history
        return h[(h.run_id == run_id) & (h.split == split) & (h.metric == metric)].sort_values("iteration")


def compared(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs of the paper's degradation comparison: plain nets (no shortcut) and ResNets with
    option A shortcuts ("we use identity shortcuts in all cases", Section 4.2; Table 2).
    Options B and C have their own tables."""
    return runs[runs.shortcut.isna() | (runs.shortcut == "A")]


def load_results(results_dir: str | Path = "results") -> Results:
    rows, histories, responses, signals, problems = [], [], [], [], []
    for folder in sorted(Path(results_dir).glob("runs/*/*/")):
        try:
            summary = parse_summary((folder / "summary.json").read_text())
            # typed, so that a run killed before its first row (an empty history) keeps the values numeric
            history = pd.read_csv(folder / "history.csv", dtype={"iteration": "int64", "value": "float64"})
            if tuple(history.columns) != HISTORY_COLUMNS:
                raise ValueError(f"unexpected columns {list(history.columns)}")
        except (OSError, ValueError, pd.errors.ParserError) as exc:
            problems.append(f"{folder}: skipped, the record cannot be read ({type(exc).__name__}: {exc})")
            continue
        problem = summary_problem(summary)
        if problem:
            problems.append(f"{folder}: skipped, the record cannot be drawn: {problem}")
            continue
        row = {key: summary.get(key) for key in SUMMARY_COLUMNS}
        final = summary.get("final") or {}
        # every final error of the record: final_train_error, final_test_error (CIFAR-10),
        # final_val_error, final_val_10crop_error, final_val_10crop_top5_error (ImageNet)
        row.update({f"final_{key}": value for key, value in final.items()})
        row.setdefault("final_train_error", None)
        row.setdefault("final_test_error", None)
        rows.append(row)
        histories.append(history.assign(run_id=summary["run_id"]))
        if (folder / "layer_responses.csv").is_file():
            try:
                responses.append(pd.read_csv(folder / "layer_responses.csv").assign(run_id=summary["run_id"]))
            except (OSError, ValueError, pd.errors.ParserError) as exc:
                problems.append(f"{folder}: layer responses skipped, they cannot be read ({type(exc).__name__}: {exc})")
        if (folder / "signals.csv").is_file():
            try:
                table = pd.read_csv(folder / "signals.csv")
                if tuple(table.columns) != SIGNAL_COLUMNS:
                    raise ValueError(f"unexpected columns {list(table.columns)}")
                signals.append(table.assign(run_id=summary["run_id"]))
            except (OSError, ValueError, pd.errors.ParserError) as exc:
                problems.append(f"{folder}: signals skipped, they cannot be read ({type(exc).__name__}: {exc})")
    finals = sorted(
        {key for row in rows for key in row if key.startswith("final_")} | {"final_train_error", "final_test_error"}
    )
    runs = pd.DataFrame(rows, columns=SUMMARY_COLUMNS + finals)
    history = (
        pd.concat(histories, ignore_index=True)
        if histories
        else pd.DataFrame(columns=["iteration", "split", "metric", "value", "run_id"])
    )
    layer_responses = (
        pd.concat(responses, ignore_index=True)[RESPONSE_COLUMNS]
        if responses
        else pd.DataFrame(columns=RESPONSE_COLUMNS)
    )
    signal_rows = (
        pd.concat(signals, ignore_index=True)[SIGNALS_COLUMNS] if signals else pd.DataFrame(columns=SIGNALS_COLUMNS)
    )
    return Results(runs, history, problems, layer_responses, signal_rows)
