"""Reading CIFAR-10's "python version" batches, from a local copy or the official download.

The local path never goes through ``torchvision.datasets.CIFAR10``: its md5 check refuses
copies that are real CIFAR-10 but not byte-identical to the official archive (rebuilt
copies, re-pickled batches). We validate the content instead: shapes, dtype, label range
and per-class counts. The md5 check is kept for archives we download ourselves.

An archive is read in place (the copy may be read-only), which decompresses 163 MB at every
run's start (seconds on a laptop). Once read and validated, its arrays are kept uncompressed
in the user's cache folder (``$RESDEG_CACHE``, else ``$XDG_CACHE_HOME/resdeg``, else
``~/.cache/resdeg``), under a name made of the archive's path, size and modification time, so
that a changed or replaced copy is read again; a cache that cannot be written is skipped.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import pickle
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from resdeg import ResdegError

log = logging.getLogger("resdeg")

ARCHIVE_NAME = "cifar-10-python.tar.gz"
FOLDER_NAME = "cifar-10-batches-py"
OFFICIAL_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
OFFICIAL_MD5 = "c58f30108f718f92721af3b95e74349a"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
NUM_CLASSES = 10
HOW_TO_FIX = (
    f"put {ARCHIVE_NAME} (or the extracted {FOLDER_NAME}/) in that folder, point data.root "
    "(or the RESDEG_CIFAR_ROOT environment variable) at a folder that holds it, "
    "or set data.download=true on a machine with internet access"
)


@dataclass
class Cifar10Arrays:
    """CIFAR-10 as uint8 images (N, 3, 32, 32) and int64 labels (N,)."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    source: str


def _unpickle(raw: bytes, name: str, origin: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        batch = pickle.loads(raw, encoding="latin1")
        data = np.asarray(batch["data"])
        labels = np.asarray(batch["labels"] if "labels" in batch else batch["fine_labels"], dtype=np.int64)
    except Exception as exc:  # truncated file, not a pickle, missing keys
        raise ResdegError(
            f"CIFAR-10 batch {name} in {origin} cannot be read ({exc}); replace the copy: {HOW_TO_FIX}"
        ) from None
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise ResdegError(
            f"CIFAR-10 batch {name} in {origin} has data of shape {data.shape} and dtype {data.dtype}; "
            f"expected uint8 (N, 3072). Replace the copy: {HOW_TO_FIX}"
        )
    if labels.shape != (data.shape[0],) or labels.min(initial=0) < 0 or labels.max(initial=0) >= NUM_CLASSES:
        raise ResdegError(
            f"CIFAR-10 batch {name} in {origin} has {labels.shape[0]} labels for {data.shape[0]} images "
            f"or labels outside 0..9. Replace the copy: {HOW_TO_FIX}"
        )
    return data.reshape(-1, 3, 32, 32), labels


def _check_balanced(labels: np.ndarray, split: str, origin: str) -> None:
    counts = np.bincount(labels, minlength=NUM_CLASSES)
    if counts.min() != counts.max() or counts.min() == 0:
        raise ResdegError(
            f"CIFAR-10 {split} set in {origin} has per-class counts {counts.tolist()}; every class should "
            f"have the same count (5000 train / 1000 test). The copy is incomplete: {HOW_TO_FIX}"
        )


def _read_batches(read, origin: str) -> Cifar10Arrays:
    parts = [_unpickle(read(name), name, origin) for name in TRAIN_BATCHES]
    train_images = np.concatenate([p[0] for p in parts])
    train_labels = np.concatenate([p[1] for p in parts])
    test_images, test_labels = _unpickle(read(TEST_BATCH), TEST_BATCH, origin)
    _check_balanced(train_labels, "training", origin)
    _check_balanced(test_labels, "test", origin)
    return Cifar10Arrays(train_images, train_labels, test_images, test_labels, origin)


def read_folder(folder: Path) -> Cifar10Arrays:
    def read(name: str) -> bytes:
        path = folder / name
        if not path.is_file():
            raise ResdegError(f"{path} is missing: the CIFAR-10 folder is incomplete; {HOW_TO_FIX}")
        return path.read_bytes()

    return _read_batches(read, str(folder))


def read_archive(archive: Path) -> Cifar10Arrays:
    """Read the batches straight out of the .tar.gz (no extraction: the copy may be read-only)."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = {Path(m.name).name: m for m in tar.getmembers() if m.isfile()}

            def read(name: str) -> bytes:
                if name not in members:
                    raise ResdegError(
                        f"{archive} holds no {FOLDER_NAME}/{name}: the archive is incomplete; {HOW_TO_FIX}"
                    )
                return tar.extractfile(members[name]).read()

            return _read_batches(read, str(archive))
    except (tarfile.TarError, EOFError, OSError, io.UnsupportedOperation) as exc:
        raise ResdegError(
            f"{archive} is not a readable .tar.gz ({exc}): it is truncated or corrupt; {HOW_TO_FIX}"
        ) from None


def cache_folder() -> Path:
    if os.environ.get("RESDEG_CACHE"):
        return Path(os.environ["RESDEG_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "resdeg"


def cached_archive_path(archive: Path) -> Path:
    """Where the decoded arrays of this very copy of the archive are kept."""
    stat = archive.stat()
    key = hashlib.sha256(f"{archive.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    return cache_folder() / f"cifar10-{key}.npz"


ARRAY_NAMES = ("train_images", "train_labels", "test_images", "test_labels")


def read_archive_cached(archive: Path) -> Cifar10Arrays:
    """``read_archive``, kept decoded in the cache folder after the first validated read."""
    cached = cached_archive_path(archive)
    try:
        with np.load(cached) as stored:
            arrays = [stored[name] for name in ARRAY_NAMES]
        return Cifar10Arrays(*arrays, source=str(archive))
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):  # not cached yet, or cut short
        pass
    arrays = read_archive(archive)
    partial = cached.with_name(f".{cached.name}.{os.getpid()}")
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        with open(partial, "wb") as f:
            np.savez(f, **{name: getattr(arrays, name) for name in ARRAY_NAMES})
        partial.replace(cached)  # whole or not at all: runs starting side by side never read half a file
    except OSError as exc:
        with contextlib.suppress(OSError):
            partial.unlink()
        log.debug(f"CIFAR-10 not cached in {cached.parent} ({exc}); the archive is read at each start")
    return arrays


def download_official(root: Path) -> Path:
    """Download the official archive into root, checking the official md5."""
    from torchvision.datasets.utils import check_integrity, download_url

    root.mkdir(parents=True, exist_ok=True)
    archive = root / ARCHIVE_NAME
    try:
        # checked below rather than by download_url, whose refusal does not say what failed
        download_url(OFFICIAL_URL, str(root), ARCHIVE_NAME)
    except Exception as exc:
        raise ResdegError(
            f"downloading CIFAR-10 from {OFFICIAL_URL} into {root} failed ({exc}); {HOW_TO_FIX}"
        ) from None
    if not check_integrity(str(archive), OFFICIAL_MD5):
        archive.unlink(missing_ok=True)
        raise ResdegError(
            f"the downloaded {ARCHIVE_NAME} does not have the official md5 {OFFICIAL_MD5} and was removed; "
            f"download again, or {HOW_TO_FIX}"
        )
    return archive


def load_cifar10(root: str | Path, download: bool = False) -> Cifar10Arrays:
    """CIFAR-10 from ``root``: an extracted folder first, then the archive, then a download."""
    root = Path(root).expanduser()
    if (root / FOLDER_NAME).is_dir():
        return read_folder(root / FOLDER_NAME)
    if root.name == FOLDER_NAME and root.is_dir():
        return read_folder(root)
    if (root / ARCHIVE_NAME).is_file():
        return read_archive_cached(root / ARCHIVE_NAME)
    if root.is_file() and root.name.endswith(".tar.gz"):
        return read_archive_cached(root)
    if download:
        return read_archive_cached(download_official(root))
    raise ResdegError(f"no CIFAR-10 found in {root.resolve()} (download is off): {HOW_TO_FIX}")
