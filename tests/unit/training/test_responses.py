"""Fig. 7's layer responses: which layers, and their std, checked against a direct computation."""

import pytest
import torch
from torch import nn

from resdeg.models import CifarNet
from resdeg.training.responses import layer_response_std, response_layers


@pytest.mark.parametrize("arch,shortcut", [("plain", "A"), ("residual", "A"), ("residual", "B")])
def test_one_response_per_3x3_layer_in_network_order(arch, shortcut):
    model = CifarNet(arch, 20, shortcut)
    names = [name for name, _ in response_layers(model)]
    assert len(names) == 19  # the stem and 2 x 9 block convolutions: 20 layers minus the FC
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    assert names == convs  # network order; option B's 1x1 projections are not 3x3 layers


def test_std_equals_a_direct_computation_after_bn_before_relu_and_addition():
    torch.manual_seed(0)
    model = CifarNet("residual", 8, "A")
    for m in model.modules():  # non-trivial BN statistics and affine parameters
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    batches = [(torch.randn(5, 3, 32, 32), torch.zeros(5)) for _ in range(3)]
    rows = layer_response_std(model, batches)
    assert [r["layer"] for r in rows] == list(range(1, 8))

    # directly: the first block's second BN output, computed by hand from its input, over all images
    model.eval()
    block = model.stages[0][0]
    outputs = []
    with torch.no_grad():
        for images, _ in batches:
            x = model.stem(images)  # the block's input
            h = block.relu(block.bn1(block.conv1(x)))
            outputs.append(block.bn2(block.conv2(h)))  # before the addition and the ReLU
    expected = torch.cat(outputs).double().std(unbiased=False).item()
    by_name = {r["name"]: r["std"] for r in rows}
    assert by_name["stages.0.0.conv2"] == pytest.approx(expected, rel=1e-6)


def test_the_model_mode_is_restored_and_no_hook_is_left():
    model = CifarNet("plain", 8, "A").train()
    layer_response_std(model, [(torch.randn(2, 3, 32, 32), None)])
    assert model.training
    assert all(not m._forward_hooks for m in model.modules())


def test_the_layer_responses_ask_the_device_nothing_per_batch():
    """On a GPU every host read or host-to-device tensor creation makes Python wait: over ten
    batches of a 19-layer net, one table is created and read once, at the end."""
    from torch.overrides import TorchFunctionMode

    from resdeg.training.host_reads import HostReadCounter

    class Creations(TorchFunctionMode):
        def __init__(self):
            super().__init__()
            self.count = 0

        def __torch_function__(self, func, types, args=(), kwargs=None):
            self.count += func is torch.tensor
            return func(*args, **(kwargs or {}))

    model = CifarNet("residual", 20, "A")
    batches = [(torch.randn(4, 3, 32, 32), torch.zeros(4)) for _ in range(10)]
    with HostReadCounter() as reads, Creations() as creations:
        rows = layer_response_std(model, batches)
    assert len(rows) == 19
    assert creations.count == 1
    assert sum(reads.reads.values()) == 1, dict(reads.reads)
