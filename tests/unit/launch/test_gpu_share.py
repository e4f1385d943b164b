"""How many runs share a GPU and how many jobs a parallel sweep runs (resdeg.launch.gpu_share),
with faked device counts."""

import os

import pandas as pd
import torch

from conftest import REPO, paths
from resdeg import devices, launch
from resdeg.launch import gpu_share, gpu_slots


def test_without_a_gpu_check_measurement_a_large_gpu_gets_several_cifar_runs(tmp_path, monkeypatch):
    """runs_per_gpu=auto with no gpu-check CSV: one CIFAR run per 16 GiB, at most 4 (and at most
    the cores per GPU): a faked 80 GB GPU gets 4, a 40 GB one 2, a 24 GB one 1; ImageNet always 1."""
    from types import SimpleNamespace

    import torch

    monkeypatch.setattr(devices, "cuda_device_count", lambda: 1)
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    for gigabytes, runs in ((80e9, 4), (40e9, 2), (24e9, 1), (141e9, 4)):
        monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i, b=gigabytes: SimpleNamespace(total_memory=b))
        assert gpu_share.runs_per_gpu("auto", tmp_path, "cifar10") == runs
        assert gpu_share.runs_per_gpu("auto", tmp_path, "imagenet") == 1
        assert gpu_share.parallel_jobs(gpu_share.runs_per_gpu("auto", tmp_path), cpu_jobs=2) == runs
    monkeypatch.setattr(os, "cpu_count", lambda: 2)  # two cores: no more runs than cores
    assert gpu_share.runs_per_gpu("auto", tmp_path, "cifar10") == 2
    assert gpu_share.runs_per_gpu(3, tmp_path, "cifar10") == 3  # a number is taken as given


def test_parallel_jobs_follow_the_device_count_read_at_run_time(monkeypatch):

    monkeypatch.setattr(devices, "cuda_device_count", lambda: 4)
    assert gpu_share.parallel_jobs(runs_per_gpu=3, cpu_jobs=2) == 12
    monkeypatch.setattr(devices, "cuda_device_count", lambda: 0)
    assert gpu_share.parallel_jobs(runs_per_gpu=3, cpu_jobs=2) == 2


def test_the_parallel_launcher_decides_its_job_count_as_the_sweep_starts(tmp_path, monkeypatch):
    """``n_jobs: auto`` is composed as it is written and decided by the launcher at launch:
    runs_per_gpu runs on each GPU, cpu_jobs without one; a number is taken as given."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from hydra_plugins.resdeg_parallel import decided_jobs

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(
            config_name="config",
            return_hydra_config=True,
            overrides=["hydra/launcher=parallel", "launch.runs_per_gpu=3", "launch.cpu_jobs=2", *paths(tmp_path)],
        )
    assert OmegaConf.to_container(cfg.hydra.launcher, resolve=True)["n_jobs"] == "auto"
    monkeypatch.setattr(devices, "cuda_device_count", lambda: 4)
    assert decided_jobs(cfg) == 12
    monkeypatch.setattr(devices, "cuda_device_count", lambda: 0)
    assert decided_jobs(cfg) == 2


def fake_gpu(monkeypatch, total_memory: float, cores: int) -> None:
    """What resdeg.launch reads of a GPU machine that is not here: each GPU's memory, the cores."""
    from types import SimpleNamespace

    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: SimpleNamespace(total_memory=total_memory))
    monkeypatch.setattr(os, "cpu_count", lambda: cores)


def test_runs_per_gpu_auto_takes_what_gpu_check_measured_on_this_gpu_model(monkeypatch, tmp_path):

    monkeypatch.setattr(devices, "cuda_device_count", lambda: 4)
    fake_gpu(monkeypatch, total_memory=80e9, cores=64)
    monkeypatch.setattr(devices, "device_slug", lambda: "cuda-nvidia-h100-80gb-hbm3")
    assert gpu_share.runs_per_gpu("auto", tmp_path) == 4  # not measured on this GPU model: the memory rule
    rows = [
        {"section": "concurrency", "metric": "aggregate_images_per_s", "runs": 2, "value": 9000.0},
        {"section": "projection", "metric": "recommended_runs_per_gpu", "runs": "", "value": 2},
    ]
    pd.DataFrame(rows).to_csv(tmp_path / "gpu_cuda-nvidia-h100-80gb-hbm3.csv", index=False)
    assert gpu_share.runs_per_gpu("auto", tmp_path) == 2
    assert gpu_share.runs_per_gpu(3, tmp_path) == 3  # a number is taken as it is
    monkeypatch.setattr(devices, "device_slug", lambda: "cuda-nvidia-a100-sxm4-40gb")
    assert gpu_share.runs_per_gpu("auto", tmp_path) == 4  # another GPU model's measurement is not this one's


def test_the_default_sweep_launches_one_job_per_gpu_slot_with_a_faked_device_count(monkeypatch, tmp_path):
    """LAUNCHER=auto (the Makefile's default) is the parallel launcher wherever a GPU is present;
    its jobs at once are every GPU times the runs per GPU, and each job claims its own slot."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    monkeypatch.setattr(devices, "cuda_device_count", lambda: 4)
    fake_gpu(monkeypatch, total_memory=24e9, cores=64)  # below 32 GiB: one CIFAR run per GPU
    assert launch.default_launcher() == "parallel"
    from hydra_plugins.resdeg_parallel import decided_jobs

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(
            config_name="config",
            return_hydra_config=True,
            overrides=["experiment=degradation_cifar", "hydra/launcher=parallel", f"paths.results={tmp_path}"],
        )
    assert OmegaConf.to_container(cfg.hydra.launcher, resolve=True)["n_jobs"] == "auto"
    assert decided_jobs(cfg) == 4  # as the sweep launches: runs_per_gpu auto, unmeasured, 24 GB: 1 per GPU
    claims = [gpu_slots.SlotClaim(tmp_path / "slots", job, n_devices=4, runs_per_gpu=1, timeout=0) for job in range(4)]
    assert sorted(c.device for c in claims) == [0, 1, 2, 3]
    monkeypatch.setattr(devices, "cuda_device_count", lambda: 0)
    assert launch.default_launcher() == "local"
