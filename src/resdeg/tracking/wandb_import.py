"""Bring W&B runs back into results/ format, so a team can regenerate figures and tables
from runs made elsewhere (another machine's offline runs, or runs copied from a cluster).

    python -m resdeg.tracking.wandb_import experiments/wandb [--results results]

Reads the offline run files (``offline-run-*/run-*.wandb``) under the folder given, decodes
what W&B received (resdeg.tracking.wandb_files) and writes each resdeg run as a record:
summary.json (identity, status, final errors, parameters), config.yaml (the config W&B
holds, un-flattened) and history.csv (every logged metric at its iteration). A run that
already has a complete record is left alone; a W&B run that is not a resdeg run is named
and skipped. The record says where it came from (``imported_from``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from resdeg.record import SCHEMA_VERSION, history_csv, read_summary, summary_json, write_atomic
from resdeg.tracking.wandb_files import OfflineRun, offline_runs

STEP_KEY = "trainer/global_step"


def unflatten(flat: dict) -> dict:
    nested: dict = {}
    for key, value in flat.items():
        node = nested
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return nested


def history_rows(run: OfflineRun) -> list[tuple[int, str, str, float]]:
    """(iteration, split, metric, value), one per key: a value logged again at the same
    iteration (by a resumed run) replaces the first, as in the run record."""
    rows = {}
    for row in run.history:
        if STEP_KEY not in row:
            continue
        for key, value in row.items():
            if "/" in key and not key.startswith("_") and key != STEP_KEY and isinstance(value, (int, float)):
                split, _, metric = key.rpartition("/")
                rows[(int(row[STEP_KEY]), split, metric)] = float(value)
    return [(*key, value) for key, value in sorted(rows.items())]


def import_run(run: OfflineRun, results: Path) -> Path | None:
    """Write ``run`` as a record under ``results``; None when it is not a resdeg run."""
    nested = unflatten(run.config)
    identity = nested.pop("run", None)
    if not identity or "run_id" not in identity:
        return None
    folder = results / "runs" / identity["group"] / identity["run_id"]
    existing = read_summary(folder)
    if existing and existing.get("status") == "complete":
        return folder
    record = {key.removeprefix("record/"): value for key, value in run.summary.items() if key.startswith("record/")}
    summary = {
        "schema": record.pop("schema", None),
        **identity,
        "status": record.pop("status", "complete" if run.exit_code == 0 else "failed"),
        **record,
        "final": {key.removeprefix("final/"): value for key, value in run.summary.items() if key.startswith("final/")},
        "wandb_id": run.id,
        "imported_from": f"wandb:{run.path}",
    }
    if summary["schema"] != SCHEMA_VERSION:  # logged by a resdeg older than the record's schema
        raise ValueError(
            f"{run.name}: its record schema is {summary['schema']}, this resdeg imports version "
            f"{SCHEMA_VERSION}: train it again"
        )
    folder.mkdir(parents=True, exist_ok=True)
    write_atomic(folder / "history.csv", history_csv(sorted(history_rows(run))))
    write_atomic(folder / "config.yaml", yaml.safe_dump(nested, sort_keys=False))
    write_atomic(folder / "summary.json", summary_json(summary))
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("wandb_dir", help="a folder holding offline-run-*/ folders (searched recursively)")
    parser.add_argument("--results", default="results")
    args = parser.parse_args(argv)
    runs = offline_runs(args.wandb_dir)
    if not runs:
        print(f"no W&B offline runs (offline-run-*/run-*.wandb) under {args.wandb_dir}", file=sys.stderr)
        return 1
    refused = 0
    for run in runs:
        try:
            folder = import_run(run, Path(args.results))
        except ValueError as exc:
            print(f"{exc}; skipped", file=sys.stderr)
            refused += 1
            continue
        print(f"{run.name}: {'-> ' + str(folder) if folder else 'not a resdeg run, skipped'}")
    return 1 if refused else 0


if __name__ == "__main__":
    sys.exit(main())
