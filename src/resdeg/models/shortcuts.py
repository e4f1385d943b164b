"""The three shortcut options of Section 3.3 of the paper.

"The identity shortcuts (Eqn.(1)) can be directly used when the input and output are of
the same dimensions. When the dimensions increase, we consider two options:
(A) The shortcut still performs identity mapping, with extra zero entries padded for
increasing dimensions. This option introduces no extra parameter;
(B) The projection shortcut in Eqn.(2) is used to match dimensions (done by 1x1
convolutions). For both options, when the shortcuts go across feature maps of two sizes,
they are performed with a stride of 2."
Section 4.1 adds option (C): "all shortcuts are projections".

A plain network is the same stack of blocks with no shortcut at all (``shortcut=None``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from resdeg import ResdegError

SHORTCUT_OPTIONS = ("A", "B", "C")


# ``shortcut: paper``: the option the paper trains that net with (conf/model/imagenet.yaml's default)
PAPER_OPTION = "paper"


def imagenet_paper_option(depth: int) -> str:
    """The option the paper trains an ImageNet net of ``depth`` layers with: A for 18 and 34
    ("we use identity mapping for all shortcuts and zero-padding for increasing dimensions
    (option A)", Table 2), B for the bottleneck nets of 50, 101 and 152 layers ("We use
    option B for increasing dimensions", Section 4.1, Deeper Bottleneck Architectures)."""
    return "B" if int(depth) >= 50 else "A"


def chosen_option(shortcut: str, dataset: str, depth: int) -> str:
    """The option a net is built with: ``shortcut``, or for ``paper`` the paper's own choice:
    on CIFAR-10 A ("we use identity shortcuts in all cases (i.e., option A)", Section 4.2), on
    ImageNet by depth (imagenet_paper_option)."""
    if shortcut != PAPER_OPTION:
        return shortcut
    return imagenet_paper_option(depth) if dataset == "imagenet" else "A"


class ZeroPadShortcut(nn.Module):
    """Option A: identity, subsampled by stride 2, with zero-padded extra channels.

    Parameter-free, so a residual net with option A has exactly the parameters of its
    plain counterpart (the paper's CIFAR-10 comparison relies on this).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        if out_channels < in_channels:
            raise ValueError("option A can only increase the number of channels")
        self.extra_channels = out_channels - in_channels
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        if self.extra_channels:
            # F.pad pads the last dims first: (W_left, W_right, H_top, H_bottom, C_front, C_back)
            x = F.pad(x, (0, 0, 0, 0, 0, self.extra_channels))
        return x


class ProjectionShortcut(nn.Sequential):
    """Eqn. (2): a 1x1 convolution (with stride where the map shrinks) followed by BN.

    BN after the projection follows the paper's "BN right after each convolution" and
    matches torchvision's ``downsample`` (so option-B ResNet-18/34 equal torchvision's).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False),
            nn.BatchNorm2d(out_channels),
        )


def make_shortcut(option: str, in_channels: int, out_channels: int, stride: int) -> nn.Module:
    """The shortcut of one residual block under option A, B or C."""
    if option not in SHORTCUT_OPTIONS:
        raise ResdegError(
            f"unknown shortcut option {option!r}: choose one of {', '.join(SHORTCUT_OPTIONS)} (e.g. model.shortcut=A)"
        )
    dimensions_change = stride != 1 or in_channels != out_channels
    if option == "C" or (option == "B" and dimensions_change):
        return ProjectionShortcut(in_channels, out_channels, stride)
    if option == "A" and dimensions_change:
        return ZeroPadShortcut(in_channels, out_channels, stride)
    return nn.Identity()
