"""ImageNet LightningDataModule with the paper's preprocessing (Section 3.4), over an
ImageFolder tree the user points at (ImageNet is never downloaded):

    <root>/train/<class>/*.JPEG      <root>/val/<class>/*.JPEG

- training: "The image is resized with its shorter side randomly sampled in [256, 480]
  for scale augmentation. A 224x224 crop is randomly sampled from an image or its
  horizontal flip, with the per-pixel mean subtracted. The standard color augmentation in
  [21] is used" ([21] = AlexNet's PCA lighting noise, ``colour_augment``);
- curves (Fig. 4): the centre 224x224 crop of the image resized to shorter side 256;
- tables (Tables 2, 3): "the standard 10-crop testing": four corners and the centre of the
  256-resized image, and their flips; their softmax scores are averaged (the module's
  ``test_step``), top-1 and top-5 error.

Per-pixel mean: the mean 224x224 image of ``mean_images`` training images (centre crops),
computed once and cached under ``cache_dir``.

Global batch: ``batch_size`` is the batch of one iteration over all devices (256 in the
paper); under DDP each process reads batch_size / world_size images. The training order
is ``IterationOrder`` (a pure function of the iteration, so resuming is exact in which
images are read), each process taking its slice of the global batch; validation images
are split between the processes without padding, so the summed errors are exact. Images
are decoded and augmented in DataLoader worker processes.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import lightning.pytorch as pl
import torch
from torch import nn
from torch.utils.data import DataLoader

from resdeg import ResdegError
from resdeg.data.order import IterationOrder

log = logging.getLogger("resdeg")

# AlexNet's PCA of ImageNet RGB pixels (in [0, 1]), as used by the authors' Torch code
PCA_EIGENVALUES = torch.tensor([0.2175, 0.0188, 0.0045])
PCA_EIGENVECTORS = torch.tensor([[-0.5675, 0.7192, 0.4009], [-0.5808, -0.0045, -0.8140], [-0.5836, -0.6948, 0.4203]])
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


class PCALighting(nn.Module):
    """AlexNet's colour augmentation: add sum_i alpha_i * lambda_i * p_i to every pixel, alpha_i ~ N(0, std)."""

    def __init__(self, std: float = 0.1):
        super().__init__()
        self.std = std

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        alpha = torch.randn(3) * self.std
        shift = PCA_EIGENVECTORS @ (alpha * PCA_EIGENVALUES)
        return image + shift.view(3, 1, 1)


class SubtractMean(nn.Module):
    """Per-pixel mean subtraction: the mean training image, pixel by pixel."""

    def __init__(self, mean_image: torch.Tensor):
        super().__init__()
        self.mean_image = mean_image

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return image - self.mean_image.to(image.dtype)


def to_float():
    from torchvision.transforms import v2

    return [v2.PILToTensor(), v2.ToDtype(torch.float32, scale=True)]


class TenCrops(nn.Module):
    """The 10-crop view: (10, C, crop, crop) from the four corners, the centre, and their flips."""

    def __init__(self, crop: int):
        super().__init__()
        self.crop = crop

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        from torchvision.transforms.v2 import functional as TF

        return torch.stack(TF.ten_crop(image, self.crop))


class TrainBatchSampler:
    """This process's part of the global batch of each iteration, from ``start_iteration()``
    to the end of Lightning's epoch (see ``IterationOrder``)."""

    def __init__(self, n: int, global_batch: int, seed: int, rank: int, world_size: int, start_iteration):
        self.order = IterationOrder(n, global_batch, seed)
        self.rank, self.per_process = rank, global_batch // world_size
        self.start_iteration = start_iteration

    def __len__(self) -> int:
        return self.order.batches_per_epoch

    def __iter__(self):
        for iteration in self.order.iterations_to_epoch_end(self.start_iteration()):
            indices = self.order.indices(iteration)
            yield indices[self.rank * self.per_process : (self.rank + 1) * self.per_process].tolist()


def list_tree(root: Path, num_classes: int) -> dict[str, int]:
    """Check the ImageFolder layout before anything is built; one message naming the fix.
    Returns the number of images of each split."""
    layout = (
        "point data.root (or RESDEG_IMAGENET_ROOT) at a folder holding train/ and val/, each with one "
        "sub-folder per class holding its images (the ImageFolder layout)"
    )
    if not root.is_dir():
        raise ResdegError(f"no ImageNet found at {root}: {layout}")
    classes, images = {}, {}
    for split in ("train", "val"):
        folder = root / split
        if not folder.is_dir():
            raise ResdegError(f"{folder} is missing: {layout}")
        classes[split] = sorted(entry.name for entry in os.scandir(folder) if entry.is_dir())
        if not classes[split]:
            raise ResdegError(f"{folder} has no class sub-folders: {layout}")
        counts = {c: sum(f.lower().endswith(IMAGE_EXTENSIONS) for f in os.listdir(folder / c)) for c in classes[split]}
        images[split] = sum(counts.values())
        empty = [c for c, count in counts.items() if not count]
        if empty:
            raise ResdegError(f"{folder} has class folders without images ({', '.join(empty[:5])}): {layout}")
    if classes["train"] != classes["val"]:
        only = sorted(set(classes["train"]) ^ set(classes["val"]))
        raise ResdegError(
            f"train/ and val/ under {root} have different classes ({', '.join(only[:5])}...): "
            "each split needs the same class folders"
        )
    if len(classes["train"]) != num_classes:
        raise ResdegError(
            f"{root} has {len(classes['train'])} classes but data.num_classes={num_classes}: "
            f"set data.num_classes={len(classes['train'])} (the model's output follows it) or fix the tree"
        )
    return images


def decoding_workers(
    affinity_cores: int, local_processes: int, slurm_cpus_per_task: str | None, jobs: int = 1
) -> tuple[int, str]:
    """DataLoader workers of one training process, from the cores it may use, and why.

    JPEG decoding is the ImageNet input's cost (about 300 images/s per core): every core a
    process may use but one (its own training loop) decodes. Under SLURM a task is given
    SLURM_CPUS_PER_TASK cores of its own (and task binding makes them its whole affinity): they
    are this process's alone. Otherwise the processes of the node (Lightning's launcher, or
    torchrun, one per GPU), of every one of the ``jobs`` the parallel launcher runs side by
    side, share its cores, so each takes its part.
    """
    if slurm_cpus_per_task:
        cores = min(affinity_cores, int(slurm_cpus_per_task))
        why = f"{cores} cores of this SLURM task, one kept for training"
    else:
        processes = max(1, local_processes) * max(1, jobs)
        cores = affinity_cores // processes
        sharing = f"{local_processes} process(es)" + (f" in each of {jobs} jobs side by side" if jobs > 1 else "")
        why = f"{affinity_cores} cores shared by {sharing} on this node, one each kept for training"
    return max(1, cores - 1), why


class ImageNetDataModule(pl.LightningDataModule):
    top5 = True  # the tables give top-1 and top-5 error
    has_test_crops = True  # the 10-crop evaluation of the tables runs after training

    def __init__(
        self,
        root: str,
        name: str = "imagenet",
        num_classes: int = 1000,
        batch_size: int = 256,
        eval_batch_size: int = 100,
        scale: tuple[int, int] = (256, 480),
        crop: int = 224,
        eval_resize: int = 256,
        augment: bool = True,
        colour_augment: bool = True,
        lighting_std: float = 0.1,
        mean_images: int = 10000,
        cache_dir: str = "experiments/cache",
        num_workers: int | None = None,
        seed: int = 0,
    ):
        super().__init__()
        self.root, self.name, self.num_classes = Path(root), name, num_classes
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.scale, self.crop, self.eval_resize = tuple(scale), crop, eval_resize
        self.augment, self.colour_augment, self.lighting_std = augment, colour_augment, lighting_std
        self.mean_images, self.cache_dir, self.seed = mean_images, Path(cache_dir), seed
        self.num_workers = num_workers
        self.mean_image: torch.Tensor | None = None

    @property
    def input_size(self) -> tuple[int, int, int]:
        # the paper's 224x224 crop, or the crop a config chose (the mean image and the
        # multiply-adds count follow it)
        return (3, self.crop, self.crop)

    eval_split_names = ["val"]

    def prepare_data(self) -> None:
        images = list_tree(self.root, self.num_classes)
        # refused here, before any record is written (resdeg.train calls this first)
        if images["train"] < self.batch_size:
            raise ResdegError(
                f"{self.root / 'train'} holds {images['train']} images, fewer than one batch of "
                f"{self.batch_size}: lower protocol.batch_size or add images"
            )

    # -- the pieces --------------------------------------------------------------------
    def _workers(self) -> int:
        if self.num_workers is not None:
            return int(self.num_workers)
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        local_processes = self.trainer.num_devices if self.trainer is not None else 1
        from resdeg.launch.gpu_share import jobs_side_by_side

        workers, why = decoding_workers(
            cores, local_processes, os.environ.get("SLURM_CPUS_PER_TASK"), jobs=jobs_side_by_side()
        )
        if not getattr(self, "_workers_said", False) and (self.trainer is None or self.trainer.is_global_zero):
            log.info(f"ImageNet decoding: {workers} DataLoader workers per process ({why}; data.num_workers sets it)")
            self._workers_said = True
        return workers

    def _rank_world(self) -> tuple[int, int]:
        if self.trainer is None:
            return 0, 1
        return self.trainer.global_rank, self.trainer.world_size

    def _centre_transform(self, mean: bool = True):
        from torchvision.transforms import v2

        steps = [v2.Resize(self.eval_resize), v2.CenterCrop(self.crop), *to_float()]
        return v2.Compose(steps + ([SubtractMean(self.mean_image)] if mean else []))

    def _compute_mean_image(self) -> torch.Tensor:
        from torchvision.datasets import ImageFolder

        key = hashlib.sha1(
            f"{self.root.absolute()}|{self.mean_images}|{self.eval_resize}|{self.crop}".encode()
        ).hexdigest()[:10]
        cached = self.cache_dir / f"imagenet_mean_{key}.pt"
        if cached.is_file():
            return torch.load(cached)
        dataset = ImageFolder(self.root / "train", transform=self._centre_transform(mean=False))
        count = min(self.mean_images, len(dataset))
        sample = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(0))[:count].tolist()
        log.info(f"computing the per-pixel mean image of {count} training images (cached in {cached})")
        total = torch.zeros(self.input_size, dtype=torch.float64)
        loader = DataLoader(dataset, batch_size=64, sampler=sample, num_workers=self._workers())
        for images, _ in loader:
            total += images.double().sum(dim=0)
        mean = (total / count).float()
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(f".{os.getpid()}.tmp")
        torch.save(mean, tmp)
        os.replace(tmp, cached)
        return mean

    def setup(self, stage: str | None = None) -> None:
        from torchvision.datasets import ImageFolder
        from torchvision.transforms import v2

        if self.mean_image is not None:
            return
        rank, world = self._rank_world()
        if self.batch_size % world:
            raise ResdegError(
                f"the global batch {self.batch_size} does not split evenly over {world} processes: "
                "choose trainer.devices dividing it"
            )
        self.mean_image = self._compute_mean_image()
        subtract = SubtractMean(self.mean_image)
        if self.augment:
            train_steps = [
                v2.RandomShortestSize(list(range(self.scale[0], self.scale[1] + 1))),
                v2.RandomCrop(self.crop),
                v2.RandomHorizontalFlip(),
                *to_float(),
            ]
            if self.colour_augment:
                train_steps.append(PCALighting(self.lighting_std))
        else:
            train_steps = [v2.Resize(self.eval_resize), v2.CenterCrop(self.crop), *to_float()]
        self.train_set = ImageFolder(self.root / "train", transform=v2.Compose([*train_steps, subtract]))
        self.val_set = ImageFolder(self.root / "val", transform=self._centre_transform())
        self.val_10crop_set = ImageFolder(
            self.root / "val",
            transform=v2.Compose([v2.Resize(self.eval_resize), *to_float(), TenCrops(self.crop), subtract]),
        )
        if len(self.train_set) < self.batch_size:
            raise ResdegError(
                f"{self.root / 'train'} holds {len(self.train_set)} images, fewer than one batch of "
                f"{self.batch_size}: lower protocol.batch_size or add images"
            )

    @property
    def eval_image_count(self) -> int:
        """Validation images one process evaluates (centre crop): what resdeg.training.pace costs."""
        _, world = self._rank_world()
        return -(-len(self.val_set) // world)

    def signal_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """One fixed training batch for resdeg.training.signals: the centre view of one process's
        batch of evenly spaced training images (ImageFolder sorts them by class, so every class
        within reach is in it), mean-subtracted."""
        from torchvision.datasets import ImageFolder

        _, world = self._rank_world()
        dataset = ImageFolder(self.root / "train", transform=self._centre_transform())
        count = min(self.batch_size // world, len(dataset))
        images, labels = zip(*(dataset[int(i)] for i in torch.linspace(0, len(dataset) - 1, count).round().long()))
        return torch.stack(images), torch.tensor(labels)

    def _current_iteration(self) -> int:
        return self.trainer.global_step if self.trainer is not None else 0

    def _loader(self, dataset, **kwargs) -> DataLoader:
        workers = self._workers()
        return DataLoader(
            dataset, num_workers=workers, pin_memory=torch.cuda.is_available(), persistent_workers=workers > 0, **kwargs
        )

    def train_dataloader(self) -> DataLoader:
        rank, world = self._rank_world()
        sampler = TrainBatchSampler(
            len(self.train_set), self.batch_size, self.seed, rank, world, self._current_iteration
        )
        return self._loader(self.train_set, batch_sampler=sampler)

    def _eval_loader(self, dataset, batch_size: int) -> DataLoader:
        rank, world = self._rank_world()
        # each process evaluates its own share, no image twice: the summed errors are exact
        return self._loader(dataset, batch_size=batch_size, sampler=list(range(rank, len(dataset), world)))

    def val_dataloader(self) -> list[DataLoader]:
        return [self._eval_loader(self.val_set, self.eval_batch_size)]

    def test_dataloader(self) -> DataLoader:
        # ten crops per image
        return self._eval_loader(self.val_10crop_set, max(1, self.eval_batch_size // 10))
