"""The run record's schema and files, shared by training (which writes records), the report
and the W&B importer (which read or rebuild them); it imports nothing from either.

    results/runs/<group>/<run_id>/
        summary.json          status and identity of the run, errors, parameters, wall time
        config.yaml           the fully resolved Hydra config
        history.csv           long format: iteration, split, metric, value
        layer_responses.csv   CIFAR-10, complete runs: layer, name, std (Fig. 7)

The schema is documented in results/README.md.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from resdeg import ResdegError

SCHEMA_VERSION = 1
HISTORY_COLUMNS = ("iteration", "split", "metric", "value")
LAYER_RESPONSE_COLUMNS = ("layer", "name", "std")
STATUSES = ("running", "complete", "failed", "diverged", "interrupted")


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


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def read_summary(folder: Path) -> dict | None:
    """A record's summary, or None when there is none yet; ResdegError when the file is not a record."""
    path = Path(folder) / "summary.json"
    if not path.is_file():
        return None
    try:
        summary = json.loads(path.read_text())
        problem = None if is_record(summary) else f"it holds {type(summary).__name__} {str(summary)[:40]!r}, not a run record"
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        problem = str(exc)
    if problem:
        raise ResdegError(
            f"the run record {path} is unreadable ({problem}): it was cut or edited by hand. Move the folder "
            "away to keep it, or rerun with force=true to replace it"
        )
    return summary


def is_record(summary) -> bool:
    """Whether parsed summary.json content is a run record (valid JSON such as null, [] or {} is not)."""
    return isinstance(summary, dict) and isinstance(summary.get("run_id"), str) and summary.get("status") in STATUSES
