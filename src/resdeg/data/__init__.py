"""CIFAR-10 and ImageNet data with the paper's preprocessing."""

from resdeg.data.cifar10 import CIFAR10DataModule
from resdeg.data.cifar10_files import load_cifar10
from resdeg.data.imagenet import ImageNetDataModule

__all__ = ["CIFAR10DataModule", "ImageNetDataModule", "load_cifar10"]
