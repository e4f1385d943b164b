"""Where a run's files go: its record under results/, its checkpoints under experiments/.

results/runs/<group>/<run_id>/                 the record (resdeg.record.schema)
experiments/checkpoints/<group>/<run_id>/      last.ckpt and the periodic checkpoints
                                               (paths.checkpoints; under results/, last.ckpt is
                                               committed while the run is in flight)
experiments/decisions/<group>/<run_id>/        the first process's skip/resume/fresh decision,
                                               for the other processes of an srun/torchrun launch
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig

log = logging.getLogger("resdeg")


@dataclass(frozen=True)
class RunFolders:
    record: Path
    checkpoints: Path
    decisions: Path | None = None

    @classmethod
    def of(cls, cfg: DictConfig, identity: dict) -> "RunFolders":
        where = Path(identity["group"]) / identity["run_id"]
        experiments = Path(cfg.paths.experiments).absolute()
        return cls(
            record=Path(cfg.paths.results).absolute() / "runs" / where,
            checkpoints=Path(cfg.paths.checkpoints).absolute() / where,
            decisions=experiments / "decisions" / where,
        )

    @property
    def checkpoints_tracked(self) -> bool:
        """Whether the checkpoints lie in the results tree (committed while the run is in flight)."""
        return self.checkpoints.is_relative_to(self.record.parents[2])

    def clear_checkpoints(self) -> None:
        """A fresh run must never resume from an older run's checkpoint: its folder starts empty."""
        shutil.rmtree(self.checkpoints, ignore_errors=True)

    def remove_tracked_checkpoints(self) -> None:
        """Once the run is complete its record is the result: checkpoints in the results tree go
        (the tracked tree stays light), and says so."""
        if self.checkpoints_tracked and self.checkpoints.exists():
            self.clear_checkpoints()
            where = portable(self.checkpoints)
            log.info(f"{self.record.name}: complete; its checkpoints in the results tree ({where}) removed")


def portable(path: Path) -> str:
    """``path`` as a record stores it: relative to the folder the run was launched in (the
    project) when it lies inside it, so a record means the same on a colleague's machine."""
    path = Path(path).absolute()
    try:
        return os.path.relpath(path, Path.cwd()) if path.is_relative_to(Path.cwd()) else str(path)
    except ValueError:
        return str(path)
