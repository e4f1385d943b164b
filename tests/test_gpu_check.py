"""`make gpu-check`: its smoke version runs here on the CPU (the same code as the GPU check,
tiny nets), so it never rots; and the sweeps' launcher choices it feeds (LAUNCHER=auto,
launch.runs_per_gpu=auto) with a faked device count, as the slot tests do."""

import os
import subprocess
import sys

import pandas as pd
import pytest
import torch

from conftest import REPO

COLUMNS = ["section", "model", "precision", "compile", "loop", "runs", "metric", "value", "unit", "note",
           "device", "torch", "check"]


def test_the_smoke_check_measures_every_section_and_writes_its_table(cifar_root, tmp_path):
    env = {**os.environ, "RESDEG_CIFAR_ROOT": str(cifar_root), "PYTHONUNBUFFERED": "1"}
    done = subprocess.run([sys.executable, "-m", "resdeg.gpu_check", "--smoke", "--out", str(tmp_path)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    slug = "cuda" if torch.cuda.is_available() else "cpu"
    (csv_path,) = tmp_path.glob(f"gpu_smoke_{slug}*.csv")
    table = pd.read_csv(csv_path)
    assert list(table.columns) == COLUMNS
    assert not table.metric.isin(["error", "skipped"]).any(), table[table.metric.isin(["error", "skipped"])].to_string()
    throughput = table[(table.section == "throughput") & (table.metric == "images_per_s")]
    # every net x precision x loop, each a positive rate
    assert len(throughput) == 2 * 2 * 2 and (throughput.value.astype(float) > 0).all()
    assert set(throughput.loop) == {"harness", "bare"} and set(throughput.precision) == {"32-true", "bf16-mixed"}
    ratio = table[table.metric == "harness_over_bare"].value.astype(float)
    assert len(ratio) == 4 and (ratio > 0).all()
    reads = table[(table.section == "syncs") & (table.metric == "host_reads_per_step")].value.astype(float)
    assert reads.tolist() == [0.0]  # the harness's training step reads nothing from the device
    e2e = table[table.section == "end_to_end"].set_index("metric").value.astype(float)
    assert e2e["iterations"] == 6 and e2e["total_s"] >= e2e["train_s"] + e2e["eval_s"] > 0
    concurrency = table[(table.section == "concurrency") & (table.metric == "aggregate_images_per_s")]
    assert concurrency.runs.astype(int).tolist() == [1, 2] and (concurrency.value.astype(float) > 0).all()
    projection = table[table.section == "projection"]
    assert {"run_64k_min", "sweep_min", "recommended_runs_per_gpu"} <= set(projection.metric)
    assert projection[projection.metric == "recommended_runs_per_gpu"].value.astype(int).isin([1, 2]).all()
    assert sorted(projection[projection.metric == "sweep_min"].loop) == ["local", "parallel", "parallel"]
    assert (tmp_path / csv_path.name.replace(".csv", ".md")).read_text().count("## ") >= 5


def fake_gpu(monkeypatch, total_memory: float, cores: int) -> None:
    """What resdeg.launch reads of a GPU machine that is not here: each GPU's memory, the cores."""
    import os
    from types import SimpleNamespace

    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: SimpleNamespace(total_memory=total_memory))
    monkeypatch.setattr(os, "cpu_count", lambda: cores)


def test_runs_per_gpu_auto_takes_what_gpu_check_measured_on_this_gpu_model(monkeypatch, tmp_path):
    from resdeg import devices, launch

    monkeypatch.setattr(launch, "cuda_device_count", lambda: 4)
    fake_gpu(monkeypatch, total_memory=80e9, cores=64)
    monkeypatch.setattr(devices, "device_slug", lambda: "cuda-nvidia-h100-80gb-hbm3")
    assert launch.runs_per_gpu("auto", tmp_path) == 4  # not measured on this GPU model: the memory rule
    rows = [{"section": "concurrency", "metric": "aggregate_images_per_s", "runs": 2, "value": 9000.0},
            {"section": "projection", "metric": "recommended_runs_per_gpu", "runs": "", "value": 2}]
    pd.DataFrame(rows).to_csv(tmp_path / "gpu_cuda-nvidia-h100-80gb-hbm3.csv", index=False)
    assert launch.runs_per_gpu("auto", tmp_path) == 2
    assert launch.runs_per_gpu(3, tmp_path) == 3  # a number is taken as it is
    monkeypatch.setattr(devices, "device_slug", lambda: "cuda-nvidia-a100-sxm4-40gb")
    assert launch.runs_per_gpu("auto", tmp_path) == 4  # another GPU model's measurement is not this one's


def test_the_default_sweep_launches_one_job_per_gpu_slot_with_a_faked_device_count(monkeypatch, tmp_path):
    """LAUNCHER=auto (the Makefile's default) is the parallel launcher wherever a GPU is present;
    its jobs at once are every GPU times the runs per GPU, and each job claims its own slot."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from resdeg import launch

    monkeypatch.setattr(launch, "cuda_device_count", lambda: 4)
    fake_gpu(monkeypatch, total_memory=24e9, cores=64)  # below 32 GiB: one CIFAR run per GPU
    assert launch.default_launcher() == "parallel"
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", return_hydra_config=True, overrides=[
            "experiment=degradation_cifar", "hydra/launcher=parallel", f"paths.results={tmp_path}"])
    assert OmegaConf.to_container(cfg.hydra.launcher, resolve=True)["n_jobs"] == 4  # runs_per_gpu auto, unmeasured, 24 GB: 1
    claims = [launch.SlotClaim(tmp_path / "slots", job, n_devices=4, runs_per_gpu=1, timeout=0) for job in range(4)]
    assert sorted(c.device for c in claims) == [0, 1, 2, 3]
    monkeypatch.setattr(launch, "cuda_device_count", lambda: 0)
    assert launch.default_launcher() == "local"


def test_make_runs_the_local_launcher_on_a_cpu_and_gpu_check_exists():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: LAUNCHER=auto is the parallel launcher here")
    out = subprocess.run(["make", "-n", "sweep-degradation", "PROTOCOL=quick"], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "hydra/launcher=basic" in out.stdout and "launch.runs_per_gpu=auto" in out.stdout
    check = subprocess.run(["make", "-n", "gpu-check"], cwd=REPO, capture_output=True, text=True)
    assert check.returncode == 0 and "resdeg.gpu_check" in check.stdout
