"""The CIFAR-10 reader and batches on small generated copies: validation of the content (not the
md5), the decoded-archive cache, batches a function of the iteration, pad-crop-flip."""

import io
import pickle
import tarfile

import numpy as np
import pytest
import torch

from conftest import write_cifar_folder
from resdeg import ResdegError
from resdeg.data import load_cifar10
from resdeg.data.augment import pad_crop_flip
from resdeg.data.cifar10_files import ARCHIVE_NAME


# -- the batch-wise augmentation ----------------------------------------------------------
def test_pad_crop_flip_gives_only_valid_crops_and_flips():
    n = 512
    images = torch.randn(n, 3, 32, 32)
    out = pad_crop_flip(images, 4, torch.Generator().manual_seed(0))
    padded = torch.nn.functional.pad(images, (4, 4, 4, 4))
    seen = set()
    for i in range(n):
        matches = [
            (dy, dx, flip)
            for dy in range(9)
            for dx in range(9)
            for flip in (False, True)
            if torch.equal(
                out[i],
                (padded[i, :, dy : dy + 32, dx : dx + 32]).flip(2)
                if flip
                else padded[i, :, dy : dy + 32, dx : dx + 32],
            )
        ]
        assert len(matches) == 1, f"image {i} is not one crop of its padded image"
        seen.add(matches[0])
    # every offset and both flips occur: uniform over 9 x 9 x 2 = 162 cases
    assert len(seen) > 150


# -- bad input: one clear message ------------------------------------------------------------
def test_missing_data_names_the_fix(tmp_path):
    with pytest.raises(ResdegError, match="RESDEG_CIFAR_ROOT"):
        load_cifar10(tmp_path)


def test_small_copy_in_the_real_layout_loads(tmp_path):
    arrays = load_cifar10(write_cifar_folder(tmp_path))
    assert arrays.train_images.shape == (200, 3, 32, 32)


def test_batch_of_wrong_shape_is_refused(tmp_path):
    folder = write_cifar_folder(tmp_path) / "cifar-10-batches-py"
    with open(folder / "data_batch_3", "wb") as f:
        pickle.dump({"data": np.zeros((40, 1024), np.uint8), "labels": [0] * 40}, f)
    with pytest.raises(ResdegError, match=r"data_batch_3.*\(40, 1024\)"):
        load_cifar10(tmp_path)


def test_labels_out_of_range_are_refused(tmp_path):
    folder = write_cifar_folder(tmp_path) / "cifar-10-batches-py"
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({"data": np.zeros((50, 3072), np.uint8), "labels": [12] * 50}, f)
    with pytest.raises(ResdegError, match="outside 0..9"):
        load_cifar10(tmp_path)


def test_truncated_archive_is_refused(tmp_path):
    source = write_cifar_folder(tmp_path / "src")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(source / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    data = buffer.getvalue()
    (tmp_path / ARCHIVE_NAME).write_bytes(data[: len(data) // 2])
    with pytest.raises(ResdegError, match="truncated or corrupt"):
        load_cifar10(tmp_path)
    # the intact archive is read without extracting it
    (tmp_path / ARCHIVE_NAME).write_bytes(data)
    assert load_cifar10(tmp_path).test_images.shape == (50, 3, 32, 32)


def test_unbalanced_copy_is_refused(tmp_path):
    folder = write_cifar_folder(tmp_path) / "cifar-10-batches-py"
    with open(folder / "data_batch_5", "wb") as f:
        pickle.dump({"data": np.zeros((40, 3072), np.uint8), "labels": [3] * 40}, f)
    with pytest.raises(ResdegError, match="per-class counts"):
        load_cifar10(tmp_path)


def test_missing_batch_is_refused(tmp_path):
    folder = write_cifar_folder(tmp_path) / "cifar-10-batches-py"
    (folder / "data_batch_5").unlink()
    with pytest.raises(ResdegError, match="data_batch_5 is missing"):
        load_cifar10(tmp_path)


# -- the training stream -------------------------------------------------------------------
def make_stream(n=1000, batch_size=128, start=lambda: 0, augment=True, seed=0):
    from resdeg.data.cifar10 import TrainBatchStream

    images = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 3, 32, 32).contiguous()
    return TrainBatchStream(images, torch.arange(n), batch_size, augment, 4, seed, start)


def test_every_image_once_per_epoch_and_full_batches():
    stream = make_stream(n=1000, batch_size=128)
    seen = torch.cat([stream.indices(k) for k in range(16)])  # 2048 images: two epochs and a bit
    assert all(len(stream.indices(k)) == 128 for k in range(16))
    assert sorted(seen[:1000].tolist()) == list(range(1000))
    assert sorted(seen[1000:2000].tolist()) == list(range(1000))
    assert not torch.equal(seen[:1000], seen[1000:2000])  # a new order each epoch


def test_batches_are_a_function_of_the_iteration_only():
    """A fresh stream started at iteration k (a resumed run) yields what an uninterrupted one did."""
    uninterrupted = make_stream(start=lambda: 0)
    first_epoch = list(uninterrupted)
    resumed = list(make_stream(start=lambda: 5))
    assert len(resumed) == len(first_epoch) - 5  # the resumed epoch ends where the original did
    for (x, y), (rx, ry) in zip(first_epoch[5:], resumed):
        assert torch.equal(x, rx) and torch.equal(y, ry)
    length = len(uninterrupted)
    later = list(make_stream(start=lambda: length + 3))
    for k, (rx, ry) in enumerate(later, start=length + 3):
        x, y = uninterrupted.batch(k)
        assert torch.equal(x, rx) and torch.equal(y, ry)


def test_an_archive_is_decoded_once_then_read_from_the_cache_and_a_replaced_copy_is_read_again(tmp_path, monkeypatch):
    from resdeg.data import cifar10_files

    monkeypatch.setenv("RESDEG_CACHE", str(tmp_path / "cache"))
    source = write_cifar_folder(tmp_path / "src")
    archive = tmp_path / "data" / ARCHIVE_NAME
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(source / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    first = load_cifar10(archive.parent)
    (cached,) = (tmp_path / "cache").glob("cifar10-*.npz")
    reads = []
    monkeypatch.setattr(cifar10_files, "read_archive", lambda path: reads.append(path))
    again = load_cifar10(archive.parent)  # from the cache: the archive is not decompressed
    assert reads == [] and again.source == str(archive)
    for name in cifar10_files.ARRAY_NAMES:
        assert np.array_equal(getattr(first, name), getattr(again, name))
    monkeypatch.undo()
    monkeypatch.setenv("RESDEG_CACHE", str(tmp_path / "cache"))
    other = write_cifar_folder(tmp_path / "other", seed=1)
    with tarfile.open(archive, "w:gz") as tar:  # another copy in the same place: read again, cached anew
        tar.add(other / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    replaced = load_cifar10(archive.parent)
    assert not np.array_equal(replaced.train_images, first.train_images)
    assert len(list((tmp_path / "cache").glob("cifar10-*.npz"))) == 2
    cached.write_bytes(cached.read_bytes()[:100])  # a cache file cut short is read past, never trusted
    monkeypatch.setattr(cifar10_files, "cached_archive_path", lambda path: cached)
    assert np.array_equal(load_cifar10(archive.parent).train_images, replaced.train_images)
    monkeypatch.undo()
    monkeypatch.setenv("RESDEG_CACHE", "/proc/no-cache-here")  # a cache that cannot be written is skipped
    assert load_cifar10(archive.parent).train_images.shape == (200, 3, 32, 32)
