"""GPU slots (resdeg.launch.gpu_slots): jobs on distinct GPUs, a slot freed when its job dies, a DDP
job holding the whole node; faked device counts."""

import subprocess
import sys

import pytest

from resdeg import devices
from resdeg.launch import gpu_slots


def test_gpu_slots_put_jobs_on_distinct_devices_with_a_faked_device_count(tmp_path):
    from resdeg.launch.gpu_slots import SlotClaim, slot_order

    # four GPUs, one run each: the first four jobs get four distinct GPUs
    claims = [SlotClaim(tmp_path, job, n_devices=4, runs_per_gpu=1, timeout=0) for job in range(4)]
    assert sorted(c.device for c in claims) == [0, 1, 2, 3]
    with pytest.raises(TimeoutError):
        SlotClaim(tmp_path, 4, n_devices=4, runs_per_gpu=1, timeout=0)  # a fifth must wait
    claims[2].release()
    assert SlotClaim(tmp_path, 7, n_devices=4, runs_per_gpu=1, timeout=0).device == 2  # the freed GPU
    # two runs per GPU: eight jobs, each GPU exactly twice, and a GPU gets a second run last
    other = tmp_path / "two"
    claims = [SlotClaim(other, job, n_devices=4, runs_per_gpu=2, timeout=0) for job in range(8)]
    assert sorted(c.device for c in claims) == [0, 0, 1, 1, 2, 2, 3, 3]
    assert [device for _, device in slot_order(0, 4, 2)][:4] == [0, 1, 2, 3]


def test_a_ddp_job_under_the_parallel_launcher_keeps_its_devices_and_holds_the_whole_node(tmp_path, monkeypatch):
    """On a faked 8-GPU machine, `trainer=ddp trainer.devices=8` in a parallel sweep trains on
    its 8 devices (it was given one claimed GPU: make sweep-imagenet never ran DDP), with every
    GPU slot held so that no other job of the sweep lands on its GPUs meanwhile."""
    from omegaconf import OmegaConf

    monkeypatch.setattr(devices, "cuda_device_count", lambda: 8)
    monkeypatch.setattr(gpu_slots, "parallel_job", lambda: (True, 3))
    cfg = OmegaConf.create(
        {
            "trainer": {"accelerator": "auto", "strategy": "ddp", "devices": 8},
            "data": {"name": "imagenet"},
            "launch": {"runs_per_gpu": 1},
            "paths": {"results": str(tmp_path), "experiments": str(tmp_path)},
        }
    )
    with gpu_slots.job_devices(cfg) as trained_on:
        assert trained_on == 8
        with pytest.raises(TimeoutError):  # another job of the sweep finds no free GPU
            gpu_slots.SlotClaim(tmp_path / "gpu_slots", 0, n_devices=8, runs_per_gpu=1, timeout=0)
    assert gpu_slots.SlotClaim(tmp_path / "gpu_slots", 0, n_devices=8, runs_per_gpu=1, timeout=0).device == 0
    cfg.trainer.strategy = "auto"  # a one-GPU job still gets one claimed GPU
    with gpu_slots.job_devices(cfg) as trained_on:
        assert trained_on == [3]


def test_gpu_slot_is_freed_when_its_job_dies(tmp_path):
    from resdeg.launch.gpu_slots import SlotClaim

    code = (
        f"from resdeg.launch.gpu_slots import SlotClaim; c = SlotClaim({str(tmp_path)!r}, 0, 1, 1); "
        "print(c.device, flush=True); import time; time.sleep(60)"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "0"
    with pytest.raises(TimeoutError):
        SlotClaim(tmp_path, 0, 1, 1, timeout=0)
    holder.kill()
    holder.wait()
    assert SlotClaim(tmp_path, 0, 1, 1, timeout=0).device == 0
