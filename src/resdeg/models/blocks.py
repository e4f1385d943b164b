"""Building blocks (Fig. 2 and Fig. 5 of the paper).

A plain block is the same block without the addition: pass ``shortcut=None``. BN comes
right after each convolution and before the activation (Section 3.4).
"""

from __future__ import annotations

import torch
from torch import nn

from resdeg.models.shortcuts import make_shortcut


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions; ReLU after the addition (Fig. 2)."""

    expansion = 1

    def __init__(self, in_channels: int, out_channels: int, stride: int, shortcut: nn.Module | None):
        super().__init__()
        self.conv1 = conv3x3(in_channels, out_channels, stride)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = conv3x3(out_channels, out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.shortcut is not None:
            out = out + self.shortcut(x)
        return self.relu(out)


def conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)


class Bottleneck(nn.Module):
    """1x1 (reduce), 3x3, 1x1 (restore, 4x the width) convolutions (Fig. 5, right), for 50/101/152.

    As in the paper's original models, the stride-2 subsampling of a stage's first block is
    done by the first 1x1 convolution; torchvision's ResNet-50 ("v1.5") moves it to the 3x3,
    which costs 4.1 instead of Table 1's 3.8 GFLOPs.
    """

    expansion = 4

    def __init__(self, in_channels: int, width: int, stride: int, shortcut: nn.Module | None):
        super().__init__()
        out_channels = width * self.expansion
        self.conv1 = conv1x1(in_channels, width, stride)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, out_channels)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.shortcut is not None:
            out = out + self.shortcut(x)
        return self.relu(out)


def he_init(model: nn.Module) -> None:
    """He et al. 2015 ("Delving deep into rectifiers") for convolutions; BN starts at identity.

    fan_out as in the authors' Torch code and torchvision. The FC layer keeps PyTorch's default.
    """
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def make_stages(block, in_channels: int, widths, counts, arch: str, shortcut: str) -> tuple[nn.Sequential, int]:
    """The stages of a network: ``counts[i]`` blocks of width ``widths[i]``; the first block of
    every stage after the first halves the map with a stride-2 convolution. A residual block
    gets the shortcut of option A, B or C; a plain block none. Returns (stages, output channels).
    """
    stages = []
    for stage_index, (width, count) in enumerate(zip(widths, counts)):
        blocks = []
        for block_index in range(count):
            stride = 2 if stage_index > 0 and block_index == 0 else 1
            out_channels = width * block.expansion
            shortcut_module = make_shortcut(shortcut, in_channels, out_channels, stride) if arch == "residual" else None
            blocks.append(block(in_channels, width, stride, shortcut_module))
            in_channels = out_channels
        stages.append(nn.Sequential(*blocks))
    return nn.Sequential(*stages), in_channels


class StagedNet(nn.Module):
    """The paper's networks: stem, stages of blocks (``make_stages``), global average pooling,
    a fully-connected layer (the softmax is in the loss); He initialisation."""

    def __init__(self, stem: nn.Module, block, widths, counts, arch: str, shortcut: str, num_classes: int):
        super().__init__()
        self.stem = stem
        stem_channels = [m for m in stem.modules() if isinstance(m, nn.Conv2d)][-1].out_channels
        self.stages, out_channels = make_stages(block, stem_channels, widths, counts, arch, shortcut)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(out_channels, num_classes)
        he_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(x))
        return self.fc(torch.flatten(self.pool(x), 1))
