"""CIFAR-10 data: the paper's preprocessing, read from a local copy or downloaded."""

from resdeg.data.cifar10 import CIFAR10DataModule
from resdeg.data.cifar10_files import load_cifar10

__all__ = ["CIFAR10DataModule", "load_cifar10"]
