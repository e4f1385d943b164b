"""One process per run record: a second launch of a run that is training now is refused."""

from __future__ import annotations

import errno
import os
import platform
import tempfile
from pathlib import Path

from resdeg import ResdegError


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
            raise unwritable(self.path.parent, exc) from None
        try:
            try:
                with os.fdopen(fd, "w") as f:
                    f.write(f"{platform.node()} {os.getpid()}\n")
                    f.flush()
                    os.fsync(f.fileno())
            except OSError as exc:
                raise unwritable(self.path.parent, exc) from None
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
                    raise unwritable(self.path.parent, exc) from None
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

    def __enter__(self) -> "RunLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def unwritable(folder: Path, exc: OSError) -> ResdegError:
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
