"""The ImageNet data module on a tiny generated ImageFolder tree: 224 crops with the mean image
subtracted, the 10-crop view, the class-name mapping, each DDP process's slice, decoding workers."""

from pathlib import Path

import torch

from resdeg.models.imagenet import torchvision_name


def test_name_mapping_is_documented_by_example():
    assert torchvision_name("stem.0.weight") == "conv1.weight"
    assert torchvision_name("stem.1.running_mean") == "bn1.running_mean"
    assert torchvision_name("stages.1.0.shortcut.0.weight") == "layer2.0.downsample.0.weight"
    assert torchvision_name("stages.3.2.conv2.weight") == "layer4.2.conv2.weight"


def datamodule(imagenet_tree: Path, tmp: Path, **kwargs):
    from resdeg.data import ImageNetDataModule

    options = dict(
        root=str(imagenet_tree),
        num_classes=3,
        batch_size=4,
        eval_batch_size=20,
        mean_images=8,
        num_workers=0,
        cache_dir=str(tmp / "cache"),
    )
    dm = ImageNetDataModule(**{**options, **kwargs})
    dm.prepare_data()
    dm.setup()
    return dm


def test_training_views_are_224_crops_with_the_mean_image_subtracted(imagenet_tree, tmp_path):
    from torchvision.datasets import ImageFolder

    dm = datamodule(
        imagenet_tree, tmp_path, colour_augment=False, mean_images=1000
    )  # the mean of all 18 training images
    assert dm.mean_image.shape == (3, 224, 224)
    images, labels = next(iter(dm.train_dataloader()))
    assert images.shape == (4, 3, 224, 224) and labels.shape == (4,)
    # per-pixel mean subtraction: the centre crops of the training images, minus the mean image, average to 0
    centred = ImageFolder(imagenet_tree / "train", transform=dm._centre_transform())
    average = torch.stack([centred[i][0] for i in range(len(centred))]).mean(dim=0)
    assert average.abs().max() < 1e-5
    assert len(list((tmp_path / "cache").glob("imagenet_mean_*.pt"))) == 1  # computed once, cached


def test_a_smaller_crop_sizes_the_mean_image_and_the_input_with_it(imagenet_tree, tmp_path):
    dm = datamodule(imagenet_tree, tmp_path, scale=(40, 56), crop=32, eval_resize=36)
    assert dm.input_size == (3, 32, 32) and dm.mean_image.shape == (3, 32, 32)
    images, _ = next(iter(dm.train_dataloader()))
    assert images.shape == (4, 3, 32, 32)


def test_ten_crop_view_is_corners_centre_and_flips(imagenet_tree, tmp_path):
    dm = datamodule(imagenet_tree, tmp_path)
    crops, label = dm.val_10crop_set[0]
    assert crops.shape == (10, 3, 224, 224)
    # torchvision's ten_crop takes the five crops of the flipped image: its top-left crop is
    # the flip of the top-right one, and so on (order: tl, tr, bl, br, centre)
    views = crops + dm.mean_image
    assert torch.allclose(views[5:9], views[[1, 0, 3, 2]].flip(-1), atol=1e-5)
    # the flipped centre crop: the same region up to one pixel when the width's margin is odd
    flipped_centre = views[4].flip(-1)
    assert any(torch.allclose(views[9][..., 1:-1], flipped_centre[..., k : k + 222], atol=1e-5) for k in range(3))


def test_each_process_reads_its_own_slice_of_the_global_batch():
    from resdeg.data.imagenet import TrainBatchSampler

    samplers = [TrainBatchSampler(40, 8, seed=0, rank=r, world_size=2, start_iteration=lambda: 0) for r in range(2)]
    batches = [list(s) for s in samplers]
    assert len(batches[0]) == len(batches[1]) == 5
    for a, b in zip(*batches):
        assert len(a) == len(b) == 4 and not set(a) & set(b)  # 4 + 4 = the global batch of 8
    assert sorted(i for batch in batches[0] + batches[1] for i in batch) == list(range(40))  # one epoch


def test_decoding_workers_come_from_the_cores_each_process_may_use():
    from resdeg.data.imagenet import decoding_workers

    # Lightning's launcher: 8 GPU processes share a 64-core node, all seeing its 64 cores
    assert decoding_workers(64, 8, None)[0] == 7
    # srun with task binding: each task's affinity is already its own 8 cores (was 8 // 8 - 1 -> 1 worker)
    assert decoding_workers(8, 8, "8")[0] == 7
    # srun without binding: the task sees the node but SLURM gave it 8 cores
    assert decoding_workers(64, 8, "8")[0] == 7
    assert decoding_workers(2, 4, None)[0] == 1  # never fewer than one
    # the parallel launcher's jobs side by side share the node too: 8 one-GPU jobs on 64 cores
    assert decoding_workers(64, 1, None, jobs=8)[0] == 7
    assert decoding_workers(64, 1, None)[0] == 63  # a job alone
