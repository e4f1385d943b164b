"""Fig. 7 of the paper: standard deviations of layer responses.

Section 4.2, "Analysis of Layer Responses": "The responses are the outputs of each 3x3
layer, after BN and before other nonlinearity (ReLU/addition)." The paper shows them on
CIFAR-10 for plain and residual nets of 20, 56 and 110 layers: residual functions are
generally closer to zero than non-residual ones, and deeper ResNets have smaller
responses.

Here a response is the output of the BatchNorm that follows a 3x3 convolution (the stem's
included), in evaluation mode, and its std is taken over every element (images, channels,
positions) of the whole test set, once, at the end of a run.
"""

from __future__ import annotations

import logging
import math
from typing import Callable, Iterable

import torch
from torch import nn

log = logging.getLogger("resdeg")


def response_layers(model: nn.Module) -> list[tuple[str, nn.BatchNorm2d]]:
    """(name of the 3x3 convolution, the BN after it) for each 3x3 layer, in the network's order.

    Blocks register each convolution just before its BN (conv1, bn1, conv2, bn2...), so the
    BN that follows a 3x3 convolution in registration order is its own; a 1x1 convolution
    (projection shortcut, bottleneck) and its BN are not 3x3 layers.
    """
    layers, pending = [], None
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            pending = name if module.kernel_size == (3, 3) else None
        elif isinstance(module, nn.BatchNorm2d) and pending is not None:
            layers.append((pending, module))
            pending = None
    return layers


@torch.no_grad()
def layer_response_std(
    model: nn.Module, batches: Iterable, prepare: Callable = lambda x: x, all_processes: Callable = lambda t: t
) -> list[dict]:
    """One row per 3x3 layer: ``layer`` (1-based, network order), ``name``, ``std``.

    ``prepare`` readies a batch of images for the model (device, memory format);
    ``all_processes`` adds up a tensor over DDP processes, each of which saw part of the set.
    """
    layers = response_layers(model)
    # per layer: the element count on the host (known without asking the device), the sum and the
    # sum of squares on the device; nothing is read back or copied over until the set is done
    counts = [0] * len(layers)
    sums: list[torch.Tensor | None] = [None] * len(layers)

    def accumulate(index: int, _module, _inputs, output: torch.Tensor) -> None:
        out = output.detach().double()
        moments = torch.stack([out.sum(), out.square().sum()])
        counts[index] += out.numel()
        sums[index] = moments if sums[index] is None else sums[index] + moments

    hooks = [bn.register_forward_hook(lambda m, i, o, k=k: accumulate(k, m, i, o)) for k, (_, bn) in enumerate(layers)]
    was_training = model.training
    model.eval()
    try:
        for images, _labels in batches:
            model(prepare(images))
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    present = [k for k, moments in enumerate(sums) if moments is not None]
    if not present:
        return []
    # one (layers x 3) table of count, sum and sum of squares: one reduction, one read
    device = sums[present[0]].device
    table = torch.cat(
        [
            torch.tensor([[float(counts[k])] for k in present], dtype=torch.float64, device=device),
            torch.stack([sums[k] for k in present]),
        ],
        dim=1,
    )
    rows = []
    for k, (count, total, squares) in zip(present, all_processes(table).tolist()):
        mean = total / count
        rows.append({"layer": k + 1, "name": layers[k][0], "std": math.sqrt(max(squares / count - mean * mean, 0.0))})
    return rows


def record_layer_responses(recorder, trainer, module, datamodule, name: str) -> None:
    """Fig. 7's layer responses of the trained net on the test set, written beside history.csv.

    An analysis after training: if it fails, the run is still recorded complete, without them.
    """
    from resdeg.models import eager

    try:
        test = datamodule.val_dataloader()[datamodule.eval_split_names.index("test")]
        reduce = (lambda t: trainer.strategy.reduce(t, reduce_op="sum")) if trainer.world_size > 1 else (lambda t: t)
        with eager(module.model) as model:  # forward hooks on the eager net, also under compile
            rows = layer_response_std(
                model, test, lambda x: x.to(module.device).contiguous(memory_format=module.memory_format), reduce
            )
        recorder.write_layer_responses(rows)
    except Exception as exc:  # noqa: BLE001 - never lose a trained run to its analysis
        log.warning(f"{name}: layer responses (Fig. 7) not recorded: {type(exc).__name__}: {exc}")
