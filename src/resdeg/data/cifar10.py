"""CIFAR-10 LightningDataModule with the paper's preprocessing (Section 4.2).

- per-pixel mean subtraction: the mean *image* of the training images is subtracted
  from every image ("per-pixel mean subtracted"); no division by a standard deviation;
- training augmentation: 4-pixel zero padding, random 32x32 crop, horizontal flip;
- test: "the single view of the original 32x32 image";
- the 45k/5k train/val split the paper chose its schedule on, or all 50k for final runs.

Two training pipelines give the same distribution of crops and flips:
- ``loader=tensor`` (default): the whole training set is one tensor (on the training
  device when ``on_device`` allows), and batches are gathered, cropped and flipped
  batch-wise; no per-image Python work; the batch of iteration k is a pure function of
  k, which makes resuming a run exact;
- ``loader=torchvision``: the conventional per-image transform pipeline in DataLoader workers.
"""

from __future__ import annotations

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from resdeg import ResdegError
from resdeg.data.augment import pad_crop_flip
from resdeg.data.cifar10_files import load_cifar10
from resdeg.data.order import IterationOrder

LOADERS = ("tensor", "torchvision")


class TrainBatchStream:
    """The training batches as a pure function of the iteration number.

    The images of iteration k come from ``IterationOrder`` (every image once per epoch,
    full batches); the crops and flips of iteration k from a generator seeded by (seed, k)
    on the training device, so a step reads nothing from the host.
    A run resumed at iteration k sees exactly the batches the uninterrupted run saw from k on.

    ``start_iteration`` is asked at every ``iter()``: Lightning calls it at each epoch
    start, and on a resumed run at the iteration of the checkpoint. An epoch in Lightning's
    sense is ``len(self)`` iterations; it only paces the loop.
    """

    def __init__(self, images, labels, batch_size: int, augment: bool, padding: int, seed: int, start_iteration):
        self.images, self.labels = images, labels
        self.batch_size, self.augment, self.padding, self.seed = batch_size, augment, padding, seed
        self.start_iteration = start_iteration
        self.order = IterationOrder(len(labels), batch_size, seed, images.device)

    def __len__(self) -> int:
        return self.order.batches_per_epoch

    def indices(self, iteration: int) -> torch.Tensor:
        return self.order.indices(iteration)

    def batch(self, iteration: int) -> tuple[torch.Tensor, torch.Tensor]:
        index = self.indices(iteration)
        images, labels = self.images[index], self.labels[index]
        if self.augment:
            # seeded by (seed, iteration) on the batch's device: no host-to-device copy per step
            generator = torch.Generator(device=images.device).manual_seed((self.seed << 32) + iteration)
            images = pad_crop_flip(images, self.padding, generator)
        return images, labels

    def __iter__(self):
        for iteration in self.order.iterations_to_epoch_end(self.start_iteration()):
            yield self.batch(iteration)


class EvalBatches:
    """The single, unaugmented view of an evaluation set, in fixed order."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int):
        self.images, self.labels, self.batch_size = images, labels, batch_size

    def __len__(self) -> int:
        return -(-len(self.labels) // self.batch_size)

    def __iter__(self):
        for i in range(0, len(self.labels), self.batch_size):
            yield self.images[i : i + self.batch_size], self.labels[i : i + self.batch_size]


class PerImageAugmented(Dataset):
    """The conventional pipeline: torchvision transforms applied image by image."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, padding: int):
        from torchvision.transforms import v2

        self.images, self.labels = images, labels
        self.transform = v2.Compose([v2.RandomCrop(32, padding=padding), v2.RandomHorizontalFlip()])

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        return self.transform(self.images[i]), self.labels[i]


class CIFAR10DataModule(pl.LightningDataModule):
    input_size = (3, 32, 32)

    def __init__(
        self,
        root: str,
        name: str = "cifar10",
        download: bool = False,
        val_size: int = 0,
        split_seed: int = 0,
        batch_size: int = 128,
        eval_batch_size: int = 256,
        augment: bool = True,
        padding: int = 4,
        loader: str = "tensor",
        on_device: bool = True,
        num_workers: int = 0,
        seed: int = 0,
    ):
        super().__init__()
        if loader not in LOADERS:
            raise ResdegError(f"unknown data.loader {loader!r}: choose one of {', '.join(LOADERS)}")
        if not 0 <= val_size < 50000:
            raise ResdegError(f"data.val_size={val_size} must be in [0, 50000): 5000 is the paper's 45k/5k split")
        self.root, self.name, self.download = root, name, download
        self.val_size, self.split_seed = val_size, split_seed
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.augment, self.padding, self.loader = augment, padding, loader
        self.on_device, self.num_workers, self.seed = on_device, num_workers, seed
        self.mean_image: torch.Tensor | None = None

    def prepare_data(self) -> None:
        # Fail before any model is built when the data is missing or corrupt.
        if not self._loaded():
            self._arrays = load_cifar10(self.root, self.download)

    def _loaded(self) -> bool:
        return getattr(self, "_arrays", None) is not None

    def setup(self, stage: str | None = None) -> None:
        if self.trainer is not None and self.trainer.world_size > 1:
            raise ResdegError(
                "CIFAR-10 runs train on one device (the paper's batch of 128 fills a GPU a few times over); "
                "use trainer=default, and the parallel launcher to run several CIFAR runs at once"
            )
        if self.mean_image is not None:
            return
        arrays = self._arrays if self._loaded() else load_cifar10(self.root, self.download)
        images = torch.from_numpy(arrays.train_images)
        labels = torch.from_numpy(arrays.train_labels)
        if self.val_size:
            # a fixed split (split_seed), the same for every run of a sweep
            order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(self.split_seed))
            val_idx, train_idx = order[: self.val_size], order[self.val_size :]
            val_images, val_labels = images[val_idx], labels[val_idx]
            images, labels = images[train_idx], labels[train_idx]
        train = images.float().div_(255)
        # per-pixel mean subtraction: the mean image over the training images actually used
        self.mean_image = train.mean(dim=0)
        device = self._device()
        self.train_images = train.sub_(self.mean_image).to(device)
        self.train_labels = labels.to(device)
        self.eval_sets = {"test": self._normalised(arrays.test_images, arrays.test_labels, device)}
        if self.val_size:
            self.eval_sets["val"] = (self._normalise(val_images).to(device), val_labels.to(device))
        self._arrays = None  # the uint8 copies are no longer needed

    def _normalise(self, images: torch.Tensor) -> torch.Tensor:
        return images.float().div_(255).sub_(self.mean_image)

    def _normalised(self, images: np.ndarray, labels: np.ndarray, device) -> tuple[torch.Tensor, torch.Tensor]:
        return self._normalise(torch.from_numpy(images)).to(device), torch.from_numpy(labels).to(device)

    def _device(self) -> torch.device:
        """The training device when the tensor pipeline may live there, else the CPU."""
        if self.loader == "tensor" and self.on_device and self.trainer is not None:
            return self.trainer.strategy.root_device
        return torch.device("cpu")

    @property
    def batches_per_epoch(self) -> int:
        return len(self.train_labels) // self.batch_size

    def _current_iteration(self) -> int:
        return self.trainer.global_step if self.trainer is not None else 0

    def train_dataloader(self):
        if self.loader == "tensor":
            return TrainBatchStream(
                self.train_images,
                self.train_labels,
                self.batch_size,
                self.augment,
                self.padding,
                self.seed,
                start_iteration=self._current_iteration,
            )
        dataset = (
            PerImageAugmented(self.train_images, self.train_labels, self.padding)
            if self.augment
            else TensorDataset(self.train_images, self.train_labels)
        )
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=True,
            # every iteration sees exactly batch_size images, as the paper's
            drop_last=True,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            generator=torch.Generator().manual_seed(self.seed),
        )

    @property
    def eval_image_count(self) -> int:
        """Images in one evaluation (test, and val when split): what resdeg.training.pace costs."""
        return sum(len(labels) for _, labels in self.eval_sets.values())

    def signal_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """One fixed training batch for resdeg.training.signals: the first ``batch_size`` training
        images (a random mix of classes in CIFAR-10's order), mean-subtracted, unaugmented."""
        return self.train_images[: self.batch_size], self.train_labels[: self.batch_size]

    def val_dataloader(self) -> list[EvalBatches]:
        """The evaluation sets, in the order of ``eval_split_names``: test, then val if split."""
        return [EvalBatches(*self.eval_sets[name], self.eval_batch_size) for name in self.eval_split_names]

    @property
    def eval_split_names(self) -> list[str]:
        return ["test"] + (["val"] if self.val_size else [])
