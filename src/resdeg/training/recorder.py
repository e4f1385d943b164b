"""The run record: a self-contained folder per run under results/, written as the run goes.

    results/runs/<group>/<run_id>/
        summary.json   status (running | complete | failed | diverged | interrupted), what
                       was trained, parameter count, multiply-adds, last and final errors,
                       wall time, versions
        config.yaml    the fully resolved Hydra config of the run
        history.csv    long format: iteration, split, metric, value
        layer_responses.csv   CIFAR-10, complete runs: layer, name, std of each 3x3 layer's
                       response on the test set (Fig. 7)

Every write is atomic (write a temporary file in the same folder, then rename), so a
reader never sees a half-written file, even if the run is killed mid-write. The report
reads only these files. The schema is documented in results/README.md.

``RunRecorder`` is a Lightning logger, so the module logs once and the record, W&B and any
other logger receive the same numbers at the same iteration.
"""

from __future__ import annotations

import csv
import errno
import io
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers.logger import Logger, rank_zero_experiment
from lightning.pytorch.utilities import rank_zero_only

from resdeg import ResdegError
from resdeg.record import (  # noqa: F401 - the record's schema and files, re-exported for the training side
    HISTORY_COLUMNS, LAYER_RESPONSE_COLUMNS, SCHEMA_VERSION, STATUSES, now_iso, read_summary, write_atomic,
)

class RunLock:
    """One process per run record: a second launch of a run that is training now is refused.

    The lock file holds host and pid; a lock left by a process that no longer exists on
    this host (killed with SIGKILL, say) is stale and taken over.
    """

    def __init__(self, folder: Path):
        self.path = Path(folder) / "run.lock"
        self.held = False

    def acquire(self) -> None:
        """Take the lock, or raise ResdegError naming who holds it.

        The lock file appears complete or not at all: host and pid are written to a temporary
        file first, which is then hard-linked to ``run.lock`` (atomic, and refused when the
        lock exists). A write that fails (a full disk) leaves no lock behind; a lock that is
        empty or unreadable (left by an older version) or whose process is gone is taken over.
        """
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".run.lock.", suffix=".tmp")
        except OSError as exc:
            raise _unwritable(self.path.parent, exc) from None
        try:
            try:
                with os.fdopen(fd, "w") as f:
                    f.write(f"{platform.node()} {os.getpid()}\n")
                    f.flush()
                    os.fsync(f.fileno())
            except OSError as exc:
                raise _unwritable(self.path.parent, exc) from None
            while True:
                try:
                    os.link(tmp, self.path)
                    self.held = True
                    return
                except FileExistsError:
                    host, pid = self._owner()
                    if host is None or (host == platform.node() and not _alive(pid)):
                        self.path.unlink(missing_ok=True)  # stale: empty, unreadable, or its process is gone
                        continue
                    raise ResdegError(
                        f"this run is being trained right now by process {pid} on {host} (lock {self.path}); "
                        "wait for it, or delete the lock if that process is gone"
                    ) from None
                except OSError as exc:
                    raise _unwritable(self.path.parent, exc) from None
        finally:
            Path(tmp).unlink(missing_ok=True)

    def _owner(self) -> tuple[str | None, int]:
        """(host, pid) written in the lock; (None, 0) when it is empty or unreadable."""
        try:
            host, pid = self.path.read_text().split()
            return host, int(pid)
        except (OSError, ValueError):
            return None, 0

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False


def _unwritable(folder: Path, exc: OSError) -> ResdegError:
    if exc.errno == errno.ENOSPC:
        return ResdegError(f"the disk holding {folder} is full ({exc.strerror}): free space there (old checkpoints "
                           "under experiments/checkpoints are the largest files) and run the same command again")
    return ResdegError(f"cannot write the run record in {folder} ({exc.strerror}); make the folder writable "
                       "or choose another with paths.results=...")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return pid > 0


def software_versions() -> dict[str, str]:
    import lightning
    import torch

    import resdeg

    return {
        "resdeg": resdeg.__version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "lightning": lightning.__version__,
    }


class RunRecorder(Logger):
    """Writes one run's record under ``folder``; see the module docstring for the layout."""

    def __init__(self, folder: str | Path, identity: dict[str, Any], config_yaml: str):
        super().__init__()
        self.folder = Path(folder)
        self.identity = dict(identity)
        self._config_yaml = config_yaml
        # (iteration, split, metric) -> value: a value logged again at the same iteration (a
        # resumed run re-closing the interval its checkpoint held open) replaces the first
        self._rows: dict[tuple[int, str, str], float] = {}
        self._last: dict[str, float] = {}
        self._summary: dict[str, Any] = {}
        self._resumed: dict[str, Any] = {}
        self._t0 = time.monotonic()

    # -- Lightning logger interface -------------------------------------------------
    @property
    def name(self) -> str:
        return "run_record"

    @property
    def version(self) -> str:
        return self.identity.get("run_id", "")

    @property
    def save_dir(self) -> str:
        return str(self.folder)

    @property
    @rank_zero_experiment
    def experiment(self) -> "RunRecorder":
        return self

    @rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass  # the whole resolved config is written by start()

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        """Metrics named ``split/metric`` (e.g. ``test/error``); others go under split ``train``."""
        if step is None:
            return
        for key, value in metrics.items():
            split, _, metric = key.rpartition("/")
            self._rows[(int(step), split or "train", metric)] = float(value)
            self._last[key] = float(value)
        self.update(iteration=int(step), last=dict(self._last))
        self._write_history()

    @property
    def last_metrics(self) -> dict[str, float]:
        """The latest value of each metric, keyed like ``test/error``."""
        return dict(self._last)

    @property
    def summary(self) -> dict[str, Any]:
        return dict(self._summary)

    # -- the record's lifecycle -----------------------------------------------------
    def continue_from(self, previous: dict[str, Any], iteration: int) -> None:
        """Continue an interrupted record from a checkpoint at ``iteration``.

        History after the checkpoint is dropped: the resumed run logs it again, identically.
        """
        history = self.folder / "history.csv"
        if history.is_file():
            with open(history, newline="") as f:
                rows = [(int(r["iteration"]), r["split"], r["metric"], float(r["value"])) for r in csv.DictReader(f)]
            self._rows = {(it, split, metric): value for it, split, metric, value in rows if it <= iteration}
            self._last = {f"{split}/{metric}": value for (_, split, metric), value in self._rows.items()}
        self._resumed = {
            "started_at": previous.get("started_at"),
            "wall_time_before_s": previous.get("wall_time_s", 0.0),
            "resumed_at_iterations": [*previous.get("resumed_at_iterations", []), iteration],
        }

    @rank_zero_only
    def start(self, **fields: Any) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _unwritable(self.folder, exc) from None
        self._write("config.yaml", self._config_yaml)
        self._summary = {
            "schema": SCHEMA_VERSION,
            **self.identity,
            "status": "running",
            "started_at": now_iso(),
            "last": dict(self._last),
            "versions": software_versions(),
            "host": platform.node(),
            **fields,
            **self._resumed,
        }
        self._write_history()
        self._write_summary()

    @rank_zero_only
    def update(self, **fields: Any) -> None:
        self._summary.update(fields)
        self._write_summary()

    @rank_zero_only
    def finish(self, status: str, **fields: Any) -> None:
        assert status in STATUSES, status
        self._summary.update(fields, status=status, finished_at=now_iso())
        self._write_history()
        self._write_summary()

    @rank_zero_only
    def write_layer_responses(self, rows: list[dict]) -> None:
        """layer_responses.csv: the std of each 3x3 layer's response (Fig. 7), see training/responses.py."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(LAYER_RESPONSE_COLUMNS)
        writer.writerows((row["layer"], row["name"], f"{row['std']:.6g}") for row in rows)
        self._write("layer_responses.csv", buffer.getvalue())

    def _write_summary(self) -> None:
        if not self._summary:
            return
        self._summary["updated_at"] = now_iso()
        self._summary["wall_time_s"] = round(self._summary.get("wall_time_before_s", 0.0) + time.monotonic() - self._t0, 1)
        self._write("summary.json", json.dumps(self._summary, indent=2, sort_keys=False) + "\n")

    def _write_history(self) -> None:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(HISTORY_COLUMNS)
        writer.writerows((it, split, metric, f"{value:.6g}") for (it, split, metric), value in self._rows.items())
        self._write("history.csv", buffer.getvalue())

    def _write(self, name: str, text: str) -> None:
        """One file of the record, atomically; a full or read-only disk is one message, the
        previous version of the file stays as it was."""
        try:
            write_atomic(self.folder / name, text)
        except OSError as exc:
            raise _unwritable(self.folder, exc) from None
