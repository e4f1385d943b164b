"""Checkpoints written beside their destination, and a disk that refuses one named in one line.

Lightning's own writer stages every checkpoint in ``TMPDIR`` (fsspec's local transaction) and
moves it into place: on a cluster node with a small local ``/tmp`` that fails with a bare
``No space left on device`` naming no folder, though the checkpoint folder has room. Here the
checkpoint is written to a temporary file in its own folder and renamed over the old one
(atomic on one file system), so a kill or a full disk mid-write leaves the previous
``last.ckpt`` whole, and the relaunch after the fix resumes from it.
"""

from __future__ import annotations

import errno
import io
import os
import tempfile
from pathlib import Path

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from resdeg import RunStopped


class CheckpointNotWritten(RunStopped):
    """The checkpoint disk refused a checkpoint (full, read-only, not ours): the run stops
    interrupted, its last checkpoint written intact, and the sweep stops with it (the other
    jobs would hit the same disk)."""


class CheckpointBesideDestination(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        path = Path(path)
        # serialized in memory first: torch.save into a file that hits a full disk raises a bare
        # RuntimeError from its zip writer, where a plain write raises the OSError that names why
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        for leftover in path.parent.glob(f".{path.name}.*.tmp"):
            leftover.unlink(missing_ok=True)  # one writer per run (run.lock): any other is a dead one's
        tmp = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            with os.fdopen(fd, "wb") as f:
                f.write(buffer.getbuffer())
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
            raise checkpoint_refused(path.parent, exc) from None
        except BaseException:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
            raise


def checkpoint_refused(folder: Path, exc: OSError) -> CheckpointNotWritten:
    """One line naming the folder and the fix; the previous checkpoint there is intact."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        fix = (
            "free space there (older runs' checkpoints under experiments/checkpoints are the largest files) "
            "or choose another disk with paths.checkpoints=..."
        )
    else:
        fix = "make the folder writable or choose another with paths.checkpoints=..."
    return CheckpointNotWritten(
        f"cannot write a checkpoint in {folder} ({exc.strerror}): {fix}; then run the same "
        "command again: it resumes from the last checkpoint written"
    )


def check_checkpoint_folder(folder: Path) -> None:
    """Before training: a checkpoint folder that cannot be created or written to is refused up
    front (nothing recorded), not found out at the first checkpoint."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".writable.", suffix=".tmp")
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise checkpoint_refused(folder, exc) from None
