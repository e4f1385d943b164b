"""The run record's files and their schema: written once, here, for training (which writes
records), the report and the W&B importer (which read or rebuild them).

    results/runs/<group>/<run_id>/
        summary.json          status and identity of the run, errors, parameters, wall time
        config.yaml           the fully resolved Hydra config
        history.csv           long format: iteration, split, metric, value
        layer_responses.csv   CIFAR-10, complete runs: layer, name, std (Fig. 7)
        signals.csv           long format: iteration, layer, name, forward_std, output_grad_norm,
                              weight_grad_norm (Section 4.1's forward and backward signals)

The fields are documented in results/README.md. A summary names its schema version
(``schema``): this resdeg reads version 2 only, and names a record of another version as one
it cannot read.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from resdeg import ResdegError

SCHEMA_VERSION = 2
# 10 classes: a net that has learnt nothing errs on 90% of images. A run that ends with a
# training error at or above this did not train: the report marks it "did not train" instead of
# counting it as a depth result, and +protocol.give_up_at_chance_after stops a run still there.
CHANCE_ERROR = 89.0
STATUSES = ("running", "complete", "failed", "diverged", "interrupted")
HISTORY_COLUMNS = ("iteration", "split", "metric", "value")
LAYER_RESPONSE_COLUMNS = ("layer", "name", "std")
SIGNAL_COLUMNS = ("iteration", "layer", "name", "forward_std", "output_grad_norm", "weight_grad_norm")

# What a run is (resdeg.record.identity writes these into every summary)...
IDENTITY_FIELDS = (
    "run_id",
    "name",
    "group",
    "dataset",
    "arch",
    "depth",
    "shortcut",
    "protocol",
    "protocol_family",
    "seed",
    "config_hash",
    "protocol_hash",
)
# ...and the summary fields the report reads, one row per run (eval_seconds is the wall time
# the run spent in evaluations, inside train_seconds)
# the numbers a run measured, which the report reads
MEASURED_FIELDS = (
    "iteration",
    "iterations",
    "parameters",
    "wall_time_s",
    "train_seconds",
    "eval_seconds",
    "evaluations",
    "signals_seconds",
    "signal_measurements",
    "train_images_per_s",
)
REPORT_COLUMNS = (*IDENTITY_FIELDS, "status", *MEASURED_FIELDS)


# Every key a summary.json may hold, declared once: results/README.md documents each (a test
# holds its table and every committed record to this), and summary_json refuses any other.
SUMMARY_KEYS = (
    "schema",
    *IDENTITY_FIELDS,
    "status",
    "message",
    "started_at",
    "updated_at",
    "finished_at",
    "last",
    "final",
    "multiply_adds",
    "wall_time_before_s",
    "timed_iterations",
    "processes",
    "batch_per_process",
    "versions",
    "code",
    "host",
    "checkpoint_dir",
    "resumed_at_iterations",
    "interrupted_at",
    "diverged_at",
    "wandb_id",
    "imported_from",
    *MEASURED_FIELDS,
)

# what the report needs of every record to place it in a figure, and the fields that are numbers
DRAWN_FIELDS = ("name", "dataset", "arch", "depth", "protocol", "protocol_family", "protocol_hash", "seed")
NUMBER_FIELDS = ("depth", "seed", *MEASURED_FIELDS)


def summary_problem(summary: dict) -> str | None:
    """Why a record's summary cannot be drawn (a field missing, a string where a number belongs),
    or None: the report skips such a record and names it, and never raises on it."""
    missing = [key for key in DRAWN_FIELDS if summary.get(key) is None]
    if missing:
        return f"it has no {', '.join(missing)}"
    numbers = [(key, summary[key]) for key in NUMBER_FIELDS if summary.get(key) is not None]
    numbers += [(f"final.{key}", value) for key, value in (summary.get("final") or {}).items()]
    wrong = [
        f"{key}={value!r}" for key, value in numbers if isinstance(value, bool) or not isinstance(value, (int, float))
    ]
    if wrong:
        return f"{', '.join(wrong)} {'is not a number' if len(wrong) == 1 else 'are not numbers'}"
    if summary.get("final") is not None and not isinstance(summary["final"], dict):
        return f"final={summary['final']!r} is not a table of errors"
    return None


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# -- summary.json ---------------------------------------------------------------------
def is_record(summary) -> bool:
    """Whether parsed summary.json content is a run record (valid JSON such as null, [] or {} is not)."""
    return isinstance(summary, dict) and isinstance(summary.get("run_id"), str) and summary.get("status") in STATUSES


def parse_summary(text: str) -> dict:
    """summary.json's content as a record of the current schema; ValueError when it is not one."""
    summary = json.loads(text)
    if not is_record(summary):
        raise ValueError(f"it holds {type(summary).__name__} {str(summary)[:40]!r}, not a run record")
    version = summary.get("schema")
    if version != SCHEMA_VERSION:
        fix = "update resdeg" if isinstance(version, int) and version > SCHEMA_VERSION else "train it again"
        raise ValueError(f"its schema version is {version}, this resdeg reads version {SCHEMA_VERSION}: {fix}")
    return summary


def summary_json(summary: dict) -> str:
    """summary.json's text; ValueError for a key SUMMARY_KEYS does not declare (a new key is
    declared there and documented in results/README.md first)."""
    undeclared = sorted(set(summary) - set(SUMMARY_KEYS))
    if undeclared:
        raise ValueError(f"summary keys {undeclared} are not declared in resdeg.record.schema.SUMMARY_KEYS")
    return json.dumps(summary, indent=2) + "\n"


def read_summary(folder: Path) -> dict | None:
    """A record's summary, or None when there is none yet; ResdegError when the file is not a record."""
    path = Path(folder) / "summary.json"
    if not path.is_file():
        return None
    try:
        return parse_summary(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:  # json.JSONDecodeError is a ValueError
        raise ResdegError(
            f"the run record {path} is unreadable ({exc}): it was cut or edited by hand. Move the folder "
            "away to keep it, or rerun with force=true to replace it"
        ) from None


# -- history.csv, layer_responses.csv and signals.csv ------------------------------------------------
def history_csv(rows) -> str:
    """history.csv's text from (iteration, split, metric, value) rows, in the order given."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(HISTORY_COLUMNS)
    writer.writerows((int(it), split, metric, f"{float(value):.6g}") for it, split, metric, value in rows)
    return buffer.getvalue()


def read_history(path: Path) -> list[tuple[int, str, str, float]]:
    """history.csv's rows as (iteration, split, metric, value); ValueError when its columns are not the schema's."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if tuple(reader.fieldnames or ()) != HISTORY_COLUMNS:
            raise ValueError(f"unexpected columns {reader.fieldnames} in {path}")
        return [(int(r["iteration"]), r["split"], r["metric"], float(r["value"])) for r in reader]


def layer_responses_csv(rows: list[dict]) -> str:
    """layer_responses.csv's text from rows with layer, name and std (see training/responses.py)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(LAYER_RESPONSE_COLUMNS)
    writer.writerows((row["layer"], row["name"], f"{row['std']:.6g}") for row in rows)
    return buffer.getvalue()


def signals_csv(rows) -> str:
    """signals.csv's text from rows with the keys of SIGNAL_COLUMNS (see training/signals.py),
    ordered by iteration, then layer."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(SIGNAL_COLUMNS)
    for row in sorted(rows, key=lambda r: (int(r["iteration"]), int(r["layer"]))):
        writer.writerow(
            (
                int(row["iteration"]),
                int(row["layer"]),
                row["name"],
                *(f"{float(row[key]):.6g}" for key in SIGNAL_COLUMNS[3:]),
            )
        )
    return buffer.getvalue()


def read_signals(path: Path) -> list[dict]:
    """signals.csv's rows as dicts; ValueError when its columns are not the schema's."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if tuple(reader.fieldnames or ()) != SIGNAL_COLUMNS:
            raise ValueError(f"unexpected columns {reader.fieldnames} in {path}")
        return [
            {
                "iteration": int(r["iteration"]),
                "layer": int(r["layer"]),
                "name": r["name"],
                **{key: float(r[key]) for key in SIGNAL_COLUMNS[3:]},
            }
            for r in reader
        ]


# -- writing a file of the record ------------------------------------------------------
def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` in one rename: readers see the old or the new file, never a torn one.

    The file gets the ordinary mode (0666 less the umask), so colleagues sharing a results
    folder can read it; temporary files left by a writer killed mid-write are removed.
    """
    for leftover in path.parent.glob(f".{path.name}.*.tmp"):
        leftover.unlink(missing_ok=True)  # one writer per record (run.lock): any other is a dead one's
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp creates 0600
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def did_not_train(final_train_errors) -> bool:
    """Whether runs of one net ended at chance (their mean final training error, %)."""
    import math

    errors = [float(e) for e in final_train_errors if e is not None and not math.isnan(float(e))]
    return bool(errors) and sum(errors) / len(errors) >= CHANCE_ERROR
