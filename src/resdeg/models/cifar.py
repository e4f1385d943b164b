"""The CIFAR-10 networks of Section 4.2 of the paper (depth 6n+2).

"The first layer is 3x3 convolutions. Then we use a stack of 6n layers with 3x3
convolutions on the feature maps of sizes {32, 16, 8} respectively, with 2n layers for
each feature map size. The numbers of filters are {16, 32, 64} respectively. The
subsampling is performed by convolutions with a stride of 2. The network ends with a
global average pooling, a 10-way fully-connected layer, and softmax."
"""

from __future__ import annotations

from torch import nn

from resdeg import ResdegError
from resdeg.models.blocks import BasicBlock, StagedNet, conv3x3
from resdeg.models.shortcuts import SHORTCUT_OPTIONS, chosen_option, make_shortcut

ARCHS = ("plain", "residual")
PAPER_DEPTHS = (20, 32, 44, 56, 110, 1202)
STAGE_WIDTHS = (16, 32, 64)


def blocks_per_stage(depth: int) -> int:
    """n in depth = 6n + 2; refuses depths the paper's recipe cannot build."""
    if not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
        raise ResdegError(
            f"unknown CIFAR depth {depth!r}: the depth must be 6n+2 with n >= 1; the paper uses "
            f"{', '.join(map(str, PAPER_DEPTHS))} (e.g. model.depth=56)"
        )
    return (depth - 2) // 6


def check_arch(arch: str) -> None:
    if arch not in ARCHS:
        raise ResdegError(f"unknown arch {arch!r}: choose one of {', '.join(ARCHS)} (e.g. model.arch=plain)")


class CifarNet(StagedNet):
    """Plain or residual CIFAR-10 network of depth 6n+2.

    arch: "plain" (no shortcuts) or "residual"; shortcut: option "A" (the paper's CIFAR
    choice, parameter-free), "B" or "C" (see ``resdeg.models.shortcuts``).
    """

    def __init__(self, arch: str = "residual", depth: int = 20, shortcut: str = "A", num_classes: int = 10):
        shortcut = chosen_option(shortcut, "cifar10", depth)
        check_arch(arch)
        n = blocks_per_stage(depth)
        if shortcut not in SHORTCUT_OPTIONS:
            make_shortcut(shortcut, 1, 1, 1)  # raises the listing message
        # "The first layer is 3x3 convolutions", then 3 stages of n blocks (2n layers) on maps
        # of 32, 16, 8 with 16, 32, 64 filters
        stem = nn.Sequential(conv3x3(3, STAGE_WIDTHS[0]), nn.BatchNorm2d(STAGE_WIDTHS[0]), nn.ReLU(inplace=True))
        super().__init__(stem, BasicBlock, STAGE_WIDTHS, (n, n, n), arch, shortcut, num_classes)
        self.arch, self.depth, self.shortcut_option = arch, depth, shortcut
