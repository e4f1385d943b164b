"""Section 4.1's argument, measured: in plain nets "neither forward nor backward signals vanish".

"this optimization difficulty is unlikely to be caused by vanishing gradients. These plain
networks are trained with BN, which ensures forward propagated signals to have non-zero
variances. We also verify that the backward propagated gradients exhibit healthy norms with
BN. So neither forward nor backward signals vanish."

The paper shows no figure for it. Here, at iteration 0, at every evaluation iteration and at
the last, on one fixed training batch (the data module's ``signal_batch``: the same unaugmented
images at every point of the run) in training mode, for each 3x3 layer in the network's order
(Fig. 7's layers, ``response_layers``):

    forward_std       the std of the layer's response (after BN, before ReLU/addition)
    output_grad_norm  the L2 norm of d(loss)/d(response), loss = the batch's mean cross-entropy
    weight_grad_norm  the L2 norm of d(loss)/d(the 3x3 convolution's weight)

A probe, not a training step: the gradients come from ``torch.autograd.grad`` (no ``.grad`` is
touched) and the BN running statistics that a training-mode forward moves are put back, so a
run trains exactly as it would without it (tested). The values are read from the device once
per measurement, never inside an ordinary training step.
"""

from __future__ import annotations

import time
from typing import Callable

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import nn

from resdeg.models import eager
from resdeg.training.responses import response_layers


def measure_signals(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> list[dict]:
    """One row per 3x3 layer: layer (1-based, network order), name, forward_std,
    output_grad_norm, weight_grad_norm; ``model`` and its BN statistics are left as they were."""
    layers = response_layers(model)
    weights = [model.get_submodule(name).weight for name, _ in layers]
    responses: list[torch.Tensor | None] = [None] * len(layers)

    def keep(index: int, output: torch.Tensor) -> torch.Tensor:
        responses[index] = output
        return output.clone()  # the in-place ReLU that follows changes the clone, not the response

    hooks = [bn.register_forward_hook(lambda _m, _i, out, k=k: keep(k, out)) for k, (_, bn) in enumerate(layers)]
    buffers = [(buffer, buffer.clone()) for buffer in model.buffers()]  # BN running mean/var, batch count
    was_training = model.training
    model.train()
    try:
        with torch.enable_grad():
            loss = F.cross_entropy(model(images), labels)
            grads = torch.autograd.grad(loss, [*responses, *weights])
    finally:
        for hook in hooks:
            hook.remove()
        with torch.no_grad():
            for buffer, saved in buffers:
                buffer.copy_(saved)
        model.train(was_training)
    n = len(layers)
    with torch.no_grad():
        values = torch.stack(
            [
                torch.stack([r.detach().double().std(correction=0) for r in responses]),
                torch.stack([g.double().norm() for g in grads[:n]]),
                torch.stack([g.double().norm() for g in grads[n:]]),
            ]
        ).T.tolist()  # the one read from the device
    return [
        {"layer": k + 1, "name": name, "forward_std": std, "output_grad_norm": out, "weight_grad_norm": w}
        for k, ((name, _), (std, out, w)) in enumerate(zip(layers, values))
    ]


def measured_at(iteration: int, every: int, last: int) -> bool:
    """The cadence: iteration 0, every ``every`` iterations (the evaluations), and the last."""
    return iteration % every == 0 or iteration == last


class GradientSignals(pl.Callback):
    """Measures the signals on the first process at the cadence of ``measured_at`` and hands
    each measurement to ``write(iteration, rows)`` (the run record's signals.csv).

    The measurement of iteration k is taken before update k+1 (at the start of its batch),
    after every checkpoint of iteration k: a run resumed from one measures k again, identically.
    The last iteration has no next batch: ``measure`` is called at the end of training, and by
    resdeg.train after the fit (a run resumed at its last iteration trains no batch)."""

    def __init__(self, every: int, last: int, write: Callable[[int, list[dict]], None]):
        self.every, self.last, self.write = every, last, write
        self.seconds, self.measurements = 0.0, 0  # what the probe cost this process (summary signals_seconds)
        self._batch: tuple[torch.Tensor, torch.Tensor] | None = None
        self._measured_at: int | None = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if measured_at(trainer.global_step, self.every, self.last):
            self.measure(trainer, pl_module)

    def on_train_end(self, trainer, pl_module) -> None:
        self.measure(trainer, pl_module)

    def measure(self, trainer, pl_module) -> None:
        iteration = trainer.global_step
        if (
            not trainer.is_global_zero
            or iteration == self._measured_at
            or not measured_at(iteration, self.every, self.last)
        ):
            return
        started = time.monotonic()
        if self._batch is None:
            images, labels = trainer.datamodule.signal_batch()
            self._batch = (
                images.to(pl_module.device).contiguous(memory_format=pl_module.memory_format),
                labels.to(pl_module.device),
            )
        with eager(pl_module.model) as model:  # forward hooks on the eager net, also under compile
            rows = measure_signals(model, *self._batch)
        self.write(iteration, rows)
        self._measured_at = iteration
        self.seconds += time.monotonic() - started
        self.measurements += 1

    def measured(self) -> dict:
        """What the probe cost this run, for its record (signals_seconds, signal_measurements)."""
        return {"signals_seconds": round(self.seconds, 2), "signal_measurements": self.measurements}
