"""The ImageNet networks of Table 1 of the paper (Sections 3.3 and 3.4).

conv1: 7x7, 64, stride 2; 3x3 max pool, stride 2; then four stages conv2_x..conv5_x on
maps of 56, 28, 14, 7 with 64, 128, 256, 512 filters (x4 at the output of bottleneck
blocks), subsampling by stride 2 in the first block of conv3_1, conv4_1 and conv5_1;
global average pooling, 1000-way FC, softmax.

- 18 and 34 layers: basic blocks (two 3x3 convolutions), [2, 2, 2, 2] and [3, 4, 6, 3];
- 50, 101, 152 layers: bottleneck blocks (1x1, 3x3, 1x1), [3, 4, 6, 3], [3, 4, 23, 3], [3, 8, 36, 3].

Plain nets are the same stacks without shortcuts; residual nets use option A, B or C.

Module names follow torchvision's where the two agree (``conv1``/``bn1`` inside blocks,
``fc``), and ``TORCHVISION_NAMES`` maps the rest, so an option-B ResNet-18/34 loads
torchvision's state dict (``load_torchvision_state_dict``).
"""

from __future__ import annotations

import re

from torch import nn

from resdeg import ResdegError
from resdeg.models.blocks import BasicBlock, Bottleneck, StagedNet
from resdeg.models.cifar import check_arch
from resdeg.models.shortcuts import PAPER_OPTION, SHORTCUT_OPTIONS, chosen_option, make_shortcut

# depth -> (block, blocks per stage), Table 1
LAYOUTS = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
    152: (Bottleneck, (3, 8, 36, 3)),
}
STAGE_WIDTHS = (64, 128, 256, 512)


class ImageNetNet(StagedNet):
    """Plain or residual ImageNet network of depth 18, 34, 50, 101 or 152."""

    def __init__(self, arch: str = "residual", depth: int = 34, shortcut: str = PAPER_OPTION, num_classes: int = 1000):
        check_arch(arch)
        if depth not in LAYOUTS:
            raise ResdegError(
                f"unknown ImageNet depth {depth!r}: choose one of {', '.join(map(str, LAYOUTS))} (e.g. model.depth=34)"
            )
        shortcut = chosen_option(shortcut, "imagenet", depth)
        if shortcut not in SHORTCUT_OPTIONS:
            make_shortcut(shortcut, 1, 1, 1)  # raises the listing message
        block, counts = LAYOUTS[depth]
        # conv1: 7x7, 64, stride 2; 3x3 max pool, stride 2
        stem = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
        )
        super().__init__(stem, block, STAGE_WIDTHS, counts, arch, shortcut, num_classes)
        self.arch, self.depth, self.shortcut_option = arch, depth, shortcut


# Our parameter names -> torchvision's (resnet18/34/50...): the stem is conv1/bn1, stage i
# is layer{i+1}, a block's projection shortcut is its downsample.
TORCHVISION_NAMES = [
    (r"^stem\.0\.", "conv1."),
    (r"^stem\.1\.", "bn1."),
    (r"^stages\.(\d+)\.", lambda m: f"layer{int(m.group(1)) + 1}."),
    (r"\.shortcut\.", ".downsample."),
]


def torchvision_name(name: str) -> str:
    for pattern, replacement in TORCHVISION_NAMES:
        name = re.sub(pattern, replacement, name)
    return name


def load_torchvision_state_dict(model: ImageNetNet, state_dict: dict) -> None:
    """Load a torchvision ResNet state dict into ``model`` through the name mapping (strict)."""
    ours = {name: state_dict[torchvision_name(name)] for name in model.state_dict()}
    missing = set(state_dict) - {torchvision_name(n) for n in ours}
    if missing:
        raise ValueError(f"torchvision parameters with no counterpart here: {sorted(missing)[:5]}")
    model.load_state_dict(ours, strict=True)
