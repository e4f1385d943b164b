"""The device a process trains on, as result files and benchmarks name it.

torch is imported where it is used: `python -m resdeg.launch` (make's launcher choice) and
Hydra's sweep callback import this module without training anything.
"""

from __future__ import annotations

import platform
import re


def device_name() -> str:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def device_slug() -> str:
    """``cuda-nvidia-h100-80gb-hbm3`` or ``cpu``: how result files name the device."""
    import torch

    name = "cuda-" + torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def sync() -> None:
    """Wait for the GPU's queued work (a timing's end); nothing on a CPU."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()
