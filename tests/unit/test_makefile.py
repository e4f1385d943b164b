"""The Makefile's choices, read with a Python that only notes its arguments: launchers, logger, seeds, force."""

import subprocess

import pytest
import torch

from conftest import REPO


def test_makefile_selects_launchers_logger_seeds_and_force():
    out = subprocess.run(
        ["make", "-n", "sweep-degradation", "LAUNCHER=slurm", "SEEDS=0,1,2", "FORCE=1", "PROTOCOL=quick"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert "hydra/launcher=slurm" in out.stdout and "seed=0,1,2" in out.stdout and "force=true" in out.stdout
    assert "logger=wandb" in out.stdout
    bad = subprocess.run(
        ["make", "-n", "sweep-degradation", "LAUNCHER=cloud"], cwd=REPO, capture_output=True, text=True
    )
    assert bad.returncode != 0 and "use auto, local, parallel or slurm" in bad.stderr


def test_make_runs_the_local_launcher_on_a_cpu_and_gpu_check_exists():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: LAUNCHER=auto is the parallel launcher here")
    out = subprocess.run(
        ["make", "-n", "sweep-degradation", "PROTOCOL=quick"], cwd=REPO, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert "hydra/launcher=basic" in out.stdout and "launch.runs_per_gpu=auto" in out.stdout
    check = subprocess.run(["make", "-n", "gpu-check"], cwd=REPO, capture_output=True, text=True)
    assert check.returncode == 0 and "resdeg.perf.gpu_check" in check.stdout
