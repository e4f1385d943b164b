"""Where the host reads a tensor's value during training: the steps a GPU would wait.

A CUDA kernel launch returns at once; the GPU stays busy only while Python queues work
ahead of it. Any read of a device value by the host (``.item()``, ``float(t)``, ``if t:``,
``.tolist()``, a copy to the CPU) makes Python wait until the GPU has caught up, and the
GPU then idles while Python prepares the next step. The training step of a CIFAR run
reads nothing: its sums stay on the device and are read once per logging interval.

``HostReadCounter`` counts such reads per iteration, on any device, by intercepting the
tensor methods that return a host value (a torch function mode sees every tensor method
call made from Python). On a CPU the reads cost nothing, but the count is the same one a
GPU run would pay, so a test on CPU fails when a per-step ``.item()`` comes back. On a GPU,
``make gpu-check`` also counts the synchronisations in a profiler trace.
"""

from __future__ import annotations

import traceback
from collections import Counter, defaultdict

import lightning.pytorch as pl
import torch
from torch.overrides import TorchFunctionMode

# tensor methods whose result is a host value (a Python number, list, array or CPU tensor)
HOST_READS = {
    torch.Tensor.item,
    torch.Tensor.tolist,
    torch.Tensor.numpy,
    torch.Tensor.cpu,
    torch.Tensor.__bool__,
    torch.Tensor.__float__,
    torch.Tensor.__int__,
    torch.Tensor.__index__,
    torch.Tensor.__repr__,
    torch.Tensor.__format__,
    torch.Tensor.nonzero,
    torch.nonzero,
    torch.is_nonzero,
    torch.equal,
    torch.Tensor.equal,
}


def _to_host(func, args, kwargs) -> bool:
    """``tensor.to("cpu")`` (or to a CPU tensor's device) from a tensor that lives elsewhere."""
    if func is not torch.Tensor.to or not args or not isinstance(args[0], torch.Tensor):
        return False
    targets = [*args[1:], kwargs.get("device")]
    for target in targets:
        if isinstance(target, torch.Tensor):
            target = target.device
        if isinstance(target, (str, torch.device)) and torch.device(target).type == "cpu":
            return True  # counted on a CPU run too: on a GPU the same call copies to the host
    return False


class HostReadCounter(TorchFunctionMode):
    """While active, counts host reads of tensor values by the code location that made them."""

    def __init__(self):
        super().__init__()
        self.reads: Counter[str] = Counter()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in HOST_READS or _to_host(func, args, kwargs):
            self.reads[_caller(func)] += 1
        return func(*args, **kwargs)


def _caller(func) -> str:
    """``file:line (function) -> method``: the first frame outside torch and this module."""
    for frame in reversed(traceback.extract_stack(limit=40)[:-1]):
        if "/torch/" not in frame.filename and not frame.filename.endswith("host_reads.py"):
            where = f"{frame.filename.rsplit('/', 2)[-1]}:{frame.lineno} ({frame.name})"
            return f"{where} -> {getattr(func, '__name__', func)}"
    return getattr(func, "__name__", str(func))


class HostReadsPerIteration(pl.Callback):
    """Counts host reads from the start of each training batch to the end of it (the module's
    hooks, the step, backward, the optimizer and scheduler steps, every callback's batch hooks
    that run inside). ``per_iteration[k]`` holds the reads of the update that made iteration k."""

    def __init__(self):
        self.per_iteration: dict[int, Counter[str]] = defaultdict(Counter)
        self._mode: HostReadCounter | None = None
        self._iteration = 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        self._iteration = trainer.global_step + 1
        self._mode = HostReadCounter()
        self._mode.__enter__()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        self._stop()

    def on_train_end(self, trainer, pl_module) -> None:
        self._stop()

    def _stop(self) -> None:
        if self._mode is not None:
            self._mode.__exit__(None, None, None)
            self.per_iteration[self._iteration].update(self._mode.reads)
            self._mode = None

    def quiet_iterations(self, *cadences: int) -> dict[int, Counter[str]]:
        """The reads of iterations that are not a multiple of any cadence (logging,
        evaluation, checkpoint): the plain training steps, which should read nothing."""
        return {
            k: reads
            for k, reads in self.per_iteration.items()
            if not any(c and (k % c == 0 or (k - 1) % c == 0) for c in cadences)
        }
