import io
import pickle
import tarfile

import numpy as np
import pytest
import torch

from conftest import write_cifar_folder
from resdeg import ResdegError
from resdeg.data import CIFAR10DataModule, load_cifar10
from resdeg.data.augment import pad_crop_flip
from resdeg.data.cifar10_files import ARCHIVE_NAME


# -- the real archive --------------------------------------------------------------------
@pytest.fixture(scope="module")
def real_arrays(cifar_root):
    return load_cifar10(cifar_root)


def test_real_archive_reads_and_validates(real_arrays):
    a = real_arrays
    assert a.train_images.shape == (50000, 3, 32, 32) and a.train_images.dtype == np.uint8
    assert a.test_images.shape == (10000, 3, 32, 32)
    assert np.bincount(a.train_labels).tolist() == [5000] * 10
    assert np.bincount(a.test_labels).tolist() == [1000] * 10
    # the README's training-set per-channel mean (0.4914, 0.4822, 0.4465)
    channel_mean = a.train_images.reshape(50000, 3, -1).mean(axis=(0, 2)) / 255
    assert np.allclose(channel_mean, [0.4914, 0.4822, 0.4465], atol=1e-3)


@pytest.fixture(scope="module")
def split_datamodule(cifar_root):
    dm = CIFAR10DataModule(root=str(cifar_root), val_size=5000, batch_size=128)
    dm.setup("fit")
    return dm


def test_paper_split_sizes(split_datamodule):
    dm = split_datamodule
    assert len(dm.train_labels) == 45000
    assert len(dm.eval_sets["val"][1]) == 5000
    assert len(dm.eval_sets["test"][1]) == 10000
    assert dm.batches_per_epoch == 45000 // 128
    assert dm.eval_split_names == ["test", "val"]


def test_full_training_set_without_split(cifar_root):
    dm = CIFAR10DataModule(root=str(cifar_root), val_size=0)
    dm.setup("fit")
    assert len(dm.train_labels) == 50000 and dm.eval_split_names == ["test"]


def test_per_pixel_mean_subtraction(split_datamodule):
    dm = split_datamodule
    assert dm.mean_image.shape == (3, 32, 32)
    # a mean *image*: pixels differ from each other, not one value per channel
    assert dm.mean_image[0].std() > 0.005
    # training images are centred pixel by pixel
    assert dm.train_images.mean(dim=0).abs().max() < 1e-4
    # the test set is shifted by the training mean image, not by its own mean
    test = dm.eval_sets["test"][0]
    assert test.mean(dim=0).abs().max() < 0.05


def test_training_batches_are_augmented_and_shaped(split_datamodule):
    dm = split_datamodule
    images, labels = next(iter(dm.train_dataloader()))
    assert images.shape == (128, 3, 32, 32) and labels.shape == (128,)
    assert images.dtype == torch.float32 and labels.dtype == torch.int64
    # zero-padded borders appear in some crops (a padded pixel is exactly 0 = the mean)
    assert (images == 0).all(dim=1).any()
    test_images, test_labels = next(iter(dm.val_dataloader()[0]))
    assert test_images.shape == (256, 3, 32, 32)
    assert torch.equal(test_images, dm.eval_sets["test"][0][:256])  # single view, no augmentation


def test_torchvision_pipeline_gives_the_same_shapes(cifar_root):
    dm = CIFAR10DataModule(root=str(cifar_root), loader="torchvision", num_workers=0, batch_size=64)
    dm.setup("fit")
    images, labels = next(iter(dm.train_dataloader()))
    assert images.shape == (64, 3, 32, 32) and labels.shape == (64,)


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


def test_tensor_and_per_image_pipelines_train_alike(cifar_root, tmp_path):
    """Same net, same protocol, the two pipelines: final training errors in the same band."""
    from resdeg.train import train
    from test_train import compose_config

    finals = {}
    for loader in ("tensor", "torchvision"):
        cfg = compose_config(
            "model.depth=20",
            "protocol=cifar_quick",
            "protocol.iterations=120",
            "protocol.schedule.warmup_iterations=30",
            "protocol.schedule.milestones=[90,105]",
            "protocol.log_every=40",
            "protocol.eval_every=120",
            f"data.loader={loader}",
            "data.num_workers=1",
            "layer_responses=false",
            f"data.root={cifar_root}",
            f"paths.results={tmp_path / loader}",
            f"paths.experiments={tmp_path / 'exp' / loader}",
        )
        finals[loader] = train(cfg)["final"]["train_error"]
    assert all(e < 80 for e in finals.values()), finals  # both learn
    assert abs(finals["tensor"] - finals["torchvision"]) < 6, finals
