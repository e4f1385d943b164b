"""Skip, resume or start afresh: what a launch does with the record and checkpoints it finds.

    no record, or force=true          -> fresh (older checkpoints of the run are deleted)
    a complete record                 -> skip (the record is the result)
    a running/interrupted/failed one  -> resume from its newest readable checkpoint, or
                                         fresh when it left none (killed before the first)

Under DDP the first process (rank 0) decides and the processes Lightning starts after it
read its decision from the environment, so all of them resume from the same checkpoint.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from resdeg import ResdegError
from resdeg.record.layout import RunFolders
from resdeg.record.schema import read_summary

log = logging.getLogger("resdeg")

# Set by the first process of a DDP run for the processes Lightning starts after it.
RESUME_ENV = "RESDEG_RESUME_CHECKPOINT"


@dataclass(frozen=True)
class Decision:
    action: str  # skip | resume | fresh
    previous: dict | None  # the record found (None: none, or replaced by force=true)
    checkpoint: Path | None = None  # resume: the checkpoint to resume from
    iteration: int = 0  # resume: the iteration of that checkpoint


def decide(folders: RunFolders, name: str, force: bool, rank: int = 0) -> Decision:
    try:
        previous = read_summary(folders.record)
    except ResdegError:
        if not force:
            raise
        previous = None  # force=true replaces an unreadable record
    if rank > 0:
        handed = os.environ.get(RESUME_ENV)
        checkpoint = Path(handed) if handed else None
        return Decision("resume" if checkpoint else "fresh", previous, checkpoint,
                        checkpoint_iteration(checkpoint) if checkpoint else 0)
    if force or previous is None:
        decision = Decision("fresh", None if force else previous)
    elif previous.get("status") == "complete":
        decision = Decision("skip", previous)
    else:
        checkpoint = readable_checkpoint(folders.checkpoints, name)
        decision = (Decision("resume", previous, checkpoint, checkpoint_iteration(checkpoint)) if checkpoint
                    else Decision("fresh", previous))
    os.environ[RESUME_ENV] = str(decision.checkpoint or "")
    return decision


def checkpoint_iteration(path: Path) -> int:
    import torch

    return int(torch.load(path, map_location="cpu", weights_only=False)["global_step"])


def readable_checkpoint(checkpoint_dir: Path, name: str) -> Path | None:
    """The newest checkpoint of the run that can be read (last.ckpt first, then the periodic
    ones, newest first); None when the run left none (killed before its first checkpoint).

    A checkpoint cut short (a full disk, a kill mid-write) is named and passed over; when
    none can be read, the run is not silently restarted: force=true starts it afresh.
    """
    candidates = sorted(checkpoint_dir.glob("*.ckpt"), key=lambda p: (p.name != "last.ckpt", -p.stat().st_mtime))
    unreadable = []
    for path in candidates:
        try:
            checkpoint_iteration(path)
        except Exception as exc:  # noqa: BLE001 - torch.load fails in many ways on a cut file
            unreadable.append(f"{path.name} ({type(exc).__name__})")
            continue
        if unreadable:
            log.warning(f"{name}: cannot read {', '.join(unreadable)}; resuming from {path.name} instead")
        return path
    if unreadable:
        raise ResdegError(f"{name}: no checkpoint of this run can be read ({', '.join(unreadable)} in {checkpoint_dir}); "
                          "rerun with force=true to start the run afresh")
    return None
