"""Plain and residual networks of the paper, with shortcut options A, B and C."""

import contextlib

from resdeg.models.cifar import CifarNet
from resdeg.models.imagenet import ImageNetNet
from resdeg.models.shortcuts import SHORTCUT_OPTIONS, make_shortcut

__all__ = ["CifarNet", "ImageNetNet", "SHORTCUT_OPTIONS", "make_shortcut", "count_parameters", "multiply_adds", "eager"]


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())


def multiply_adds(model, input_size) -> int:
    """Multiply-adds of one forward pass on one image, as the paper counts FLOPs.

    torch.utils.flop_counter counts 2 FLOPs per multiply-add of convolutions and linear
    layers; the paper's "FLOPs" are multiply-adds, hence the halving.
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    param = next(model.parameters())
    x = torch.zeros(1, *input_size, device=param.device, dtype=param.dtype)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    model.train(was_training)
    return counter.get_total_flops() // 2


@contextlib.contextmanager
def eager(model):
    """``model`` called without its compiled wrapper (analysis with forward hooks, Fig. 7).
    nn.Module.compile keeps the compiled call in ``_compiled_call_impl``; None means eager."""
    compiled = getattr(model, "_compiled_call_impl", None)
    model._compiled_call_impl = None
    try:
        yield model
    finally:
        model._compiled_call_impl = compiled
