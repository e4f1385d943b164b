"""One process per run record: a second launch of a run that is training now is refused."""

from __future__ import annotations

import errno
import os
import platform
import tempfile
import time
from pathlib import Path

from resdeg import ResdegError

# seconds after which a takeover mutex is a dead taker's (a takeover takes microseconds)
TAKEOVER_STALE_S = 5.0


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
                    host, pid, inode = self._owner()
                    if host is None or (host == platform.node() and not _alive(pid)):
                        self._take_over(inode)  # stale: empty, unreadable, or its process is gone
                        continue
                    raise ResdegError(
                        f"this run is being trained right now by process {pid} on {host} (lock {self.path}); "
                        "wait for it, or delete the lock if that process is gone"
                    ) from None
                except OSError as exc:
                    raise unwritable(self.path.parent, exc) from None
        finally:
            Path(tmp).unlink(missing_ok=True)

    def _owner(self) -> tuple[str | None, int, int | None]:
        """(host, pid) written in the lock, and the lock file's inode (read from one open file);
        host None when it is empty or unreadable, inode None when it is gone."""
        try:
            with open(self.path) as f:
                inode = os.fstat(f.fileno()).st_ino
                text = f.read()
        except OSError:
            return None, 0, None
        try:
            host, pid = text.split()
            return host, int(pid), inode
        except ValueError:
            return None, 0, inode

    def _take_over(self, stale_inode: int | None) -> None:
        """Remove the stale lock ``stale_inode``, one taker at a time: two processes that both
        read the same stale lock must not both delete it, or the second deletes the lock the
        first has just taken, and both train. Under a short-lived mutex (``run.lock.takeover``,
        created exclusively) the lock is deleted only if it is still the stale file; every taker
        then races for it with an atomic link, and exactly one wins."""
        if stale_inode is None:
            return
        mutex = self.path.with_name("run.lock.takeover")
        try:
            fd = os.open(mutex, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:  # a taker killed while holding it for microseconds: its mutex is stale after seconds
                if time.time() - mutex.stat().st_mtime > TAKEOVER_STALE_S:
                    mutex.unlink(missing_ok=True)
            except OSError:
                pass
            time.sleep(0.005)
            return
        try:
            try:
                if os.stat(self.path).st_ino == stale_inode:
                    self.path.unlink()
            except FileNotFoundError:
                pass
        finally:
            os.close(fd)
            mutex.unlink(missing_ok=True)

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
        return ResdegError(
            f"the disk holding {folder} is full ({exc.strerror}): free space there (old checkpoints "
            "under experiments/checkpoints are the largest files) and run the same command again"
        )
    return ResdegError(
        f"cannot write the run record in {folder} ({exc.strerror}); make the folder writable "
        "or choose another with paths.results=..."
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return pid > 0
