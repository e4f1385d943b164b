"""The device a process trains on, as result files and benchmarks name it.

torch is imported where it is used: `python -m resdeg.launch` (make's launcher choice) and
Hydra's sweep callback import this module without training anything.
"""

from __future__ import annotations

import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

# where a machine shows its NVIDIA GPUs and driver, whether or not torch can use them
DEVICE_NODES = Path("/dev")
DRIVER_VERSION_FILE = Path("/proc/driver/nvidia/version")


def cuda_device_count() -> int:
    """The GPUs this process may use (``torch.cuda.device_count()`` honours CUDA_VISIBLE_DEVICES)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


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


def training_device(accelerator: str) -> str:
    """The kind of device (``cuda``, ``mps``, ``cpu``) a run with ``trainer.accelerator`` trains on
    here, as Lightning's ``auto`` picks it."""
    import torch

    if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return "cuda"
    if accelerator in ("auto", "gpu", "mps") and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def process_rank() -> int:
    """This process's global rank: 0 unless it is one of the later processes of a DDP run."""
    from lightning.pytorch.utilities import rank_zero_only

    return int(getattr(rank_zero_only, "rank", 0) or 0)


def sync() -> None:
    """Wait for the GPU's queued work (a timing's end); nothing on a CPU."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def unusable_gpu() -> str | None:
    """Why the NVIDIA GPU this machine has cannot be used by this torch, or None (CUDA works,
    or no GPU is visible). A torch built for a newer CUDA than the driver supports has
    ``torch.cuda.is_available()`` False: without this check every "GPU if present" choice
    silently takes the CPU path."""
    import torch

    if torch.cuda.is_available():
        return None
    nodes = sorted(str(p) for p in DEVICE_NODES.glob("nvidia[0-9]*"))
    smi = shutil.which("nvidia-smi")
    if not nodes and not smi:
        return None
    try:
        torch.cuda.init()
        why = "torch.cuda.is_available() is False"
    except Exception as exc:  # noqa: BLE001 - its message is the diagnosis
        why = str(exc).strip().splitlines()[0]
    return (
        f"an NVIDIA GPU is present ({', '.join(nodes) or smi}; driver {driver_version(smi)}) but torch "
        f"{torch.__version__}, built for CUDA {torch.version.cuda}, cannot use it ({why}). Install the torch "
        "build for a CUDA version this driver supports (pip install torch==<version> --index-url "
        "https://download.pytorch.org/whl/cu<NNN>, with the torchvision built for it), or run on the CPU on "
        "purpose: PROTOCOL=quick (make), protocol=cifar_quick or trainer.accelerator=cpu"
    )


def driver_version(smi: str | None) -> str:
    """The NVIDIA kernel driver's version, from /proc or nvidia-smi; ``unknown`` if neither says."""
    if DRIVER_VERSION_FILE.is_file():
        found = re.search(r"Kernel Module\s+(?:for \S+\s+)?([\d.]+)", DRIVER_VERSION_FILE.read_text())
        if found:
            return found.group(1)
    if smi:
        try:
            out = subprocess.run(
                [smi, "--query-gpu=driver_version", "--format=csv,noheader"], capture_output=True, text=True, timeout=20
            ).stdout.split()
            if out:
                return out[0]
        except (OSError, subprocess.TimeoutExpired):
            pass
    return "unknown"


if __name__ == "__main__":  # `python -m resdeg.devices`: make's "GPU if present" (exit 0 GPU, 1 none, 2 unusable)
    import torch

    if torch.cuda.is_available():
        sys.exit(0)
    reason = unusable_gpu()
    if reason:
        print(f"error: {reason}", file=sys.stderr)
        sys.exit(2)
    sys.exit(1)
