"""Section 4.1's forward and backward signals: which layers, their values against a direct
computation, and a probe that leaves the net as it found it."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from resdeg.models import CifarNet
from resdeg.training.signals import measure_signals, measured_at


def _batch(n: int = 16, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 32, 32, generator=generator), torch.randint(0, 10, (n,), generator=generator)


@pytest.mark.parametrize("arch", ["plain", "residual"])
def test_one_row_per_3x3_layer_with_finite_positive_values(arch):
    torch.manual_seed(0)
    rows = measure_signals(CifarNet(arch, 20, "A"), *_batch())
    assert [r["layer"] for r in rows] == list(range(1, 20))  # the stem and 2 x 9 block convolutions
    assert rows[0]["name"] == "stem.0" and rows[-1]["name"] == "stages.2.2.conv2"
    for row in rows:
        for key in ("forward_std", "output_grad_norm", "weight_grad_norm"):
            assert math.isfinite(row[key]) and row[key] > 0, (row, key)
    # at He initialisation, BN in training mode: each response has std 1 (gamma = 1, beta = 0)
    assert all(r["forward_std"] == pytest.approx(1.0, abs=1e-2) for r in rows)


@pytest.mark.parametrize("arch", ["plain", "residual"])
def test_values_equal_a_direct_computation_after_bn_before_relu_and_addition(arch):
    """The block's second BN output: its std and d(loss)/d(it) from an ordinary backward with
    retain_grad, in training mode. A plain block's in-place ReLU acts right on that output: the
    probe's gradient is the one before the ReLU, as the direct one taken from a copy."""
    torch.manual_seed(0)
    model = CifarNet(arch, 8, "A")
    images, labels = _batch()
    probe = {r["name"]: r for r in measure_signals(model, images, labels)}

    block = model.stages[1][0]
    kept = {}

    def keep(_module, _inputs, output):
        kept["response"] = output
        output.retain_grad()
        return output.clone()

    hook = block.bn2.register_forward_hook(keep)
    model.train()
    F.cross_entropy(model(images), labels).backward()
    hook.remove()
    row = probe["stages.1.0.conv2"]
    assert row["forward_std"] == pytest.approx(kept["response"].detach().double().std(correction=0).item(), rel=1e-6)
    assert row["output_grad_norm"] == pytest.approx(kept["response"].grad.double().norm().item(), rel=1e-5)
    assert row["weight_grad_norm"] == pytest.approx(block.conv2.weight.grad.double().norm().item(), rel=1e-5)


def test_the_probe_leaves_parameters_statistics_gradients_and_mode_as_they_were():
    torch.manual_seed(0)
    model = CifarNet("residual", 8, "B").eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}  # BN running stats and batch counts included
    measure_signals(model, *_batch())
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None for p in model.parameters())
    assert not model.training
    assert all(not m._forward_hooks for m in model.modules())
    # option B's 1x1 projections are not 3x3 layers
    assert all(
        isinstance(model.get_submodule(r["name"]), nn.Conv2d) and model.get_submodule(r["name"]).kernel_size == (3, 3)
        for r in measure_signals(model, *_batch())
    )


def test_the_cadence_is_iteration_0_every_evaluation_and_the_last():
    assert [k for k in range(0, 26) if measured_at(k, every=12, last=25)] == [0, 12, 24, 25]
