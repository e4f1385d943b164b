"""The CIFAR-10 nets (Section 4.2): layer counts, parameters, the three shortcut options, plain
= the same block without the addition, equality with public reference implementations."""

import re

import pytest
import torch

from resdeg import ResdegError
from resdeg.models import CifarNet, count_parameters, make_shortcut, multiply_adds
from resdeg.models.shortcuts import ProjectionShortcut, ZeroPadShortcut

# Table 6 of the paper: "# params" column, in millions, at the paper's precision.
TABLE6_PARAMS_M = {20: 0.27, 32: 0.46, 44: 0.66, 56: 0.85, 110: 1.7}


@pytest.mark.parametrize("depth,millions", TABLE6_PARAMS_M.items())
def test_parameter_count_matches_table6(depth, millions):
    params = count_parameters(CifarNet("residual", depth, "A"))
    digits = len(str(millions).split(".")[1])
    assert round(params / 1e6, digits) == millions


def test_resnet1202_parameter_count():
    assert round(count_parameters(CifarNet("residual", 1202, "A")) / 1e6, 1) == 19.4


@pytest.mark.parametrize("depth", [20, 32, 44, 56, 110])
def test_plain_and_residual_have_equal_parameters_under_option_a(depth):
    assert count_parameters(CifarNet("plain", depth)) == count_parameters(CifarNet("residual", depth, "A"))


@pytest.mark.parametrize("depth", [20, 32, 44, 56, 110, 1202])
@pytest.mark.parametrize("arch", ["plain", "residual"])
def test_forward_every_supported_depth(arch, depth):
    # training mode: BN normalises with batch statistics (an untrained net in eval mode
    # has identity BN, and 600 residual additions overflow)
    model = CifarNet(arch, depth).train()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10)
    assert torch.isfinite(out).all()


def test_layer_count_is_depth():
    """6n+2 weighted layers: first conv, 6n 3x3 convs, the FC (option A adds none)."""
    for depth in (20, 56):
        model = CifarNet("residual", depth, "A")
        convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
        fcs = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
        assert len(convs) + len(fcs) == depth
        assert all(c.kernel_size == (3, 3) for c in convs)
        assert sum(c.stride == (2, 2) for c in convs) == 2  # subsampling by stride-2 convolutions


def test_feature_map_sizes_and_widths():
    model = CifarNet("residual", 20)
    x = model.stem(torch.randn(1, 3, 32, 32))
    shapes = []
    for stage in model.stages:
        x = stage(x)
        shapes.append(tuple(x.shape[1:]))
    assert shapes == [(16, 32, 32), (32, 16, 16), (64, 8, 8)]


def test_plain_net_has_no_shortcuts_and_differs_only_by_the_addition():
    plain, residual = CifarNet("plain", 20), CifarNet("residual", 20)
    assert all(block.shortcut is None for stage in plain.stages for block in stage)
    residual.load_state_dict(plain.state_dict())  # same parameters, same names
    x = torch.randn(4, 3, 32, 32)
    plain.eval(), residual.eval()
    assert not torch.allclose(plain(x), residual(x))


def test_option_a_is_zero_padded_strided_identity():
    shortcut = make_shortcut("A", 16, 32, 2)
    assert isinstance(shortcut, ZeroPadShortcut)
    x = torch.randn(2, 16, 8, 8)
    y = shortcut(x)
    assert y.shape == (2, 32, 4, 4)
    assert torch.equal(y[:, :16], x[:, :, ::2, ::2])
    assert torch.count_nonzero(y[:, 16:]) == 0
    assert isinstance(make_shortcut("A", 16, 16, 1), torch.nn.Identity)


def test_options_b_and_c():
    assert isinstance(make_shortcut("B", 16, 32, 2), ProjectionShortcut)
    assert isinstance(make_shortcut("B", 16, 16, 1), torch.nn.Identity)
    assert isinstance(make_shortcut("C", 16, 16, 1), ProjectionShortcut)
    a, b, c = (count_parameters(CifarNet("residual", 20, o)) for o in "ABC")
    assert a < b < c


@pytest.mark.parametrize(
    "kwargs,expected",
    [
        ({"depth": 21}, "6n+2"),
        ({"depth": 23}, "20, 32, 44, 56, 110, 1202"),
        ({"shortcut": "D"}, "A, B, C"),
        ({"arch": "dense"}, "plain, residual"),
    ],
)
def test_bad_model_config_lists_valid_choices(kwargs, expected):
    with pytest.raises(ResdegError, match=re.escape(expected)):
        CifarNet(**kwargs)


def test_multiply_adds_of_resnet20():
    # 3x3 convs on 32/16/8 maps + the FC: about 41M multiply-adds
    assert 40e6 < multiply_adds(CifarNet("residual", 20), (3, 32, 32)) < 42e6


@pytest.mark.parametrize("depth,option", [(18, "A"), (34, "A"), (50, "B"), (101, "B"), (152, "B")])
def test_imagenet_nets_default_to_the_papers_shortcut_option(depth, option):
    from hydra import compose, initialize_config_dir

    from conftest import REPO

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["data=imagenet", "model=imagenet", f"model.depth={depth}"])
        chosen = compose(
            config_name="config",
            overrides=["data=imagenet", "model=imagenet", f"model.depth={depth}", "model.shortcut=A"],
        )
        named = compose(
            config_name="config",
            overrides=["data=imagenet", "model=imagenet", f"model.depth={depth}", f"model.shortcut={option}"],
        )
    from resdeg.models import ImageNetNet
    from resdeg.record.identity import run_identity

    assert cfg.model.shortcut == "paper"  # the net chooses: no resolver imports the models
    assert run_identity(cfg)["name"] == f"resnet-{depth}-{option}"
    assert run_identity(chosen)["shortcut"] == "A"  # option A stays a choice
    # the paper's option named or left to the net: one run, one identity
    assert run_identity(named)["run_id"] == run_identity(cfg)["run_id"]
    if depth in (18, 50):
        assert (
            ImageNetNet(depth=depth).state_dict().keys()
            == ImageNetNet(depth=depth, shortcut=option).state_dict().keys()
        )
