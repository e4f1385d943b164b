"""The ImageNet nets (Table 1): multiply-adds, option B is torchvision's ResNet, option C's
projections, plain nets without shortcuts, unknown depths named."""

import pytest
import torch
import torchvision
from torch import nn

from resdeg import ResdegError
from resdeg.models import ImageNetNet, count_parameters, multiply_adds
from resdeg.models.imagenet import load_torchvision_state_dict
from resdeg.models.shortcuts import ProjectionShortcut, ZeroPadShortcut

# Table 1, "FLOPs" row (multiply-adds per 224x224 image)
TABLE1_MULTIPLY_ADDS = {18: 1.8e9, 34: 3.6e9, 50: 3.8e9, 101: 7.6e9, 152: 11.3e9}


# -- networks -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "depth,torchvision_net", [(18, torchvision.models.resnet18), (34, torchvision.models.resnet34)]
)
def test_option_b_resnet_is_torchvisions_architecture(depth, torchvision_net):
    """Same parameter count, and torchvision's (freshly initialised) weights loaded through the
    name mapping give the same outputs: the two networks compute the same function."""
    theirs = torchvision_net().eval()  # random initialisation, nothing downloaded
    ours = ImageNetNet("residual", depth, "B").eval()
    assert count_parameters(ours) == count_parameters(theirs)
    load_torchvision_state_dict(ours, theirs.state_dict())
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(ours(x), theirs(x))


@pytest.mark.parametrize("depth,expected", TABLE1_MULTIPLY_ADDS.items())
def test_multiply_adds_match_table1_within_5_percent(depth, expected):
    measured = multiply_adds(ImageNetNet("residual", depth, "B"), (3, 224, 224))
    assert abs(measured - expected) / expected < 0.05, f"{depth}: {measured:.3g} vs {expected:.3g}"


@pytest.mark.parametrize("depth", [18, 34, 50])
def test_plain_nets_have_no_shortcut_and_option_a_adds_no_parameter(depth):
    plain = ImageNetNet("plain", depth)
    assert all(block.shortcut is None for stage in plain.stages for block in stage)
    assert not [name for name, _ in plain.named_parameters() if "shortcut" in name]
    if depth < 50:  # basic blocks: option A is parameter-free, so plain and residual-A are equal
        assert count_parameters(plain) == count_parameters(ImageNetNet("residual", depth, "A"))


@pytest.mark.parametrize("depth", [18, 34, 50])
def test_option_c_projects_every_shortcut_and_b_only_where_dimensions_increase(depth):
    blocks_c = [b for stage in ImageNetNet("residual", depth, "C").stages for b in stage]
    assert all(isinstance(b.shortcut, ProjectionShortcut) for b in blocks_c)
    blocks_b = [b for stage in ImageNetNet("residual", depth, "B").stages for b in stage]
    projected = [i for i, b in enumerate(blocks_b) if isinstance(b.shortcut, ProjectionShortcut)]
    starts = [sum(len(s) for s in ImageNetNet("residual", depth, "B").stages[:k]) for k in range(4)]
    # 18/34: the first block of conv3_x..conv5_x; 50: also conv2_1 (64 -> 256 channels)
    assert projected == (starts[1:] if depth < 50 else starts)
    blocks_a = [b for stage in ImageNetNet("residual", depth, "A").stages for b in stage]
    assert all(isinstance(b.shortcut, (ZeroPadShortcut, nn.Identity)) for b in blocks_a)
    c, b = count_parameters(ImageNetNet("residual", depth, "C")), count_parameters(ImageNetNet("residual", depth, "B"))
    assert c > b > count_parameters(ImageNetNet("residual", depth, "A"))


def test_unknown_imagenet_depth_names_the_choices():
    with pytest.raises(ResdegError, match="choose one of 18, 34, 50, 101, 152"):
        ImageNetNet("residual", 20)
