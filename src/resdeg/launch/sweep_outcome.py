"""A sweep's outcome: each job that did not complete is noted in the sweep's folder, and at the
sweep's end they are named and the sweep exits 2 (a Hydra callback, conf/config.yaml)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path

from hydra.experimental.callback import Callback

log = logging.getLogger("resdeg")


# jobs of a multirun that did not complete, one line each, in the sweep's folder
NOT_COMPLETE_FILE = "jobs_not_complete.txt"


def note_job_not_complete(error: Exception, first_process: Callable[[], bool] = lambda: True) -> bool:
    """In a job of a multirun, note that it did not complete (and why) for the sweep's end
    (``first_process()``: the first process of a DDP job notes it, the others return the same;
    asked only in a multirun, so a refused single run never waits for Lightning's import);
    False outside a multirun, where the error ends the process at once."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return False
    hydra_cfg = HydraConfig.get()
    if first_process():
        write_job_not_complete(Path(hydra_cfg.sweep.dir), hydra_cfg.job.num, hydra_cfg.overrides.task, error)
    return True


def write_job_not_complete(sweep_dir: Path, job_num: int, overrides, why) -> None:
    """One line in the sweep's list of jobs that did not complete (read by SweepOutcome)."""
    sweep_dir.mkdir(parents=True, exist_ok=True)
    line = f"job {job_num} ({' '.join(overrides)}): {why}".replace("\n", " ")
    with open(sweep_dir / NOT_COMPLETE_FILE, "a") as f:  # one short append per job: whole lines under joblib too
        f.write(line + "\n")


class SweepOutcome(Callback):
    """At the end of a multirun: name the jobs that did not complete and exit with status 2,
    so a script or CI running the sweep sees it (a diverged run is a result, not counted)."""

    def on_multirun_end(self, config, **kwargs) -> None:
        path = Path(config.hydra.sweep.dir) / NOT_COMPLETE_FILE
        lines = path.read_text().splitlines() if path.is_file() else []
        if lines:
            log.error(
                f"{len(lines)} job(s) of this sweep did not complete (listed in {path}):\n  " + "\n  ".join(lines)
            )
            sys.exit(2)
