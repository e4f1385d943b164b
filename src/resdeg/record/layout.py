"""Where a run's files go: its record under results/, its checkpoints under experiments/.

    results/runs/<group>/<run_id>/                 the record (resdeg.record.schema)
    experiments/checkpoints/<group>/<run_id>/      last.ckpt and the periodic checkpoints
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig


@dataclass(frozen=True)
class RunFolders:
    record: Path
    checkpoints: Path

    @classmethod
    def of(cls, cfg: DictConfig, identity: dict) -> "RunFolders":
        where = Path(identity["group"]) / identity["run_id"]
        return cls(record=Path(cfg.paths.results).absolute() / "runs" / where,
                   checkpoints=Path(cfg.paths.experiments).absolute() / "checkpoints" / where)


def portable(path: Path) -> str:
    """``path`` as a record stores it: relative to the folder the run was launched in (the
    project) when it lies inside it, so a record means the same on a colleague's machine."""
    path = Path(path).absolute()
    try:
        return os.path.relpath(path, Path.cwd()) if path.is_relative_to(Path.cwd()) else str(path)
    except ValueError:
        return str(path)
