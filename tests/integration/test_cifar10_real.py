"""The CIFAR-10 data module on the real archive: the paper's 45k/5k split, per-pixel mean subtraction,
augmented batches, a short run that learns, and the tensor and per-image (torchvision) pipelines training alike."""

import numpy as np
import pandas as pd
import pytest
import torch

from resdeg.data import CIFAR10DataModule, load_cifar10


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


# -- training on it: one short ResNet-8 run of the tensor pipeline serves two tests ------------
# 120 iterations, training error logged every 40: learning shows (80% -> 66% in one run), and the
# per-image pipeline's twin stays affordable (it is the slower of the two on a 2-core machine).
SHORT_RUN = (
    "model.arch=residual",
    "model.depth=8",
    "protocol=cifar_quick",
    "protocol.iterations=120",
    "protocol.schedule.warmup_iterations=30",
    "protocol.schedule.milestones=[90,105]",
    "protocol.log_every=40",
    "protocol.eval_every=120",
    "data.num_workers=1",
    "layer_responses=false",
)


def short_run(cifar_root, folder, loader: str) -> dict:
    from conftest import compose_config
    from resdeg.train import train

    cfg = compose_config(
        *SHORT_RUN,
        f"data.loader={loader}",
        f"data.root={cifar_root}",
        f"paths.results={folder / 'results'}",
        f"paths.experiments={folder / 'experiments'}",
    )
    return train(cfg)


@pytest.fixture(scope="module")
def resnet8_on_real_cifar(cifar_root, tmp_path_factory):
    """The tensor pipeline's short run: (its summary, its folder with results/ and experiments/)."""
    folder = tmp_path_factory.mktemp("resnet8-tensor")
    return short_run(cifar_root, folder, "tensor"), folder


def test_short_real_training_run_learns(resnet8_on_real_cifar):
    """ResNet-8 on real CIFAR-10: training and test error fall well below chance (90%)."""
    summary, folder = resnet8_on_real_cifar
    assert summary["status"] == "complete"
    assert summary["final"]["train_error"] < 70.0
    assert summary["final"]["test_error"] < 70.0
    history = pd.read_csv(next((folder / "results").glob("runs/*/*/history.csv")))
    train_error = history.query("split == 'train' and metric == 'error'")
    assert train_error.iteration.tolist() == [40, 80, 120]
    assert train_error.value.is_monotonic_decreasing
    assert train_error.value.iloc[-1] < train_error.value.iloc[0] - 10
    test_error = history.query("split == 'test' and metric == 'error'")
    assert test_error.iteration.tolist() == [120]
    # the checkpoint lives under experiments/, never under results/
    assert list((folder / "experiments" / "checkpoints").rglob("last.ckpt"))
    assert not list((folder / "results").rglob("*.ckpt"))


def test_tensor_and_per_image_pipelines_train_alike(resnet8_on_real_cifar, cifar_root, tmp_path):
    """Same net (ResNet-8), same protocol, the two pipelines: final training errors in the same band."""
    finals = {
        "tensor": resnet8_on_real_cifar[0]["final"]["train_error"],
        "torchvision": short_run(cifar_root, tmp_path, "torchvision")["final"]["train_error"],
    }
    assert all(e < 80 for e in finals.values()), finals  # both learn
    assert abs(finals["tensor"] - finals["torchvision"]) < 6, finals
