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

COLUMNS = [
    "section",
    "model",
    "precision",
    "compile",
    "loop",
    "runs",
    "metric",
    "value",
    "unit",
    "note",
    "device",
    "torch",
    "check",
]


def test_the_smoke_check_measures_every_section_and_writes_its_table(cifar_root, tmp_path):
    env = {**os.environ, "RESDEG_CIFAR_ROOT": str(cifar_root), "PYTHONUNBUFFERED": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "resdeg.perf.gpu_check", "--smoke", "--out", str(tmp_path)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
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
    e2e_rows = table[table.section == "end_to_end"].set_index("metric")
    e2e = e2e_rows.value.astype(float)
    assert e2e["iterations"] == 6 and e2e["total_s"] >= e2e["train_s"] + e2e["eval_s"] > 0
    # the projection's step time is the one the run timed (its record's images/s), not wall time / iterations
    assert e2e_rows.note["s_per_iteration"].startswith("from the run's "), e2e_rows.note["s_per_iteration"]
    rate = float(e2e_rows.note["s_per_iteration"].split()[3])
    assert e2e["s_per_iteration"] == pytest.approx(32 / rate, rel=1e-3)
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
    rows = [
        {"section": "concurrency", "metric": "aggregate_images_per_s", "runs": 2, "value": 9000.0},
        {"section": "projection", "metric": "recommended_runs_per_gpu", "runs": "", "value": 2},
    ]
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
    from hydra_plugins.resdeg_parallel import decided_jobs

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(
            config_name="config",
            return_hydra_config=True,
            overrides=["experiment=degradation_cifar", "hydra/launcher=parallel", f"paths.results={tmp_path}"],
        )
    assert OmegaConf.to_container(cfg.hydra.launcher, resolve=True)["n_jobs"] == "auto"
    assert decided_jobs(cfg) == 4  # as the sweep launches: runs_per_gpu auto, unmeasured, 24 GB: 1 per GPU
    claims = [launch.SlotClaim(tmp_path / "slots", job, n_devices=4, runs_per_gpu=1, timeout=0) for job in range(4)]
    assert sorted(c.device for c in claims) == [0, 1, 2, 3]
    monkeypatch.setattr(launch, "cuda_device_count", lambda: 0)
    assert launch.default_launcher() == "local"


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


# -- the measurements' own corrections, shown on a CPU ------------------------------------------
def test_the_sync_count_leaves_out_the_timers_own_synchronisations():
    """A profiler window over sync-free steps holds the stopwatch's and the window's own
    synchronize calls: marked (resdeg.perf.timing.own_sync), they are not counted as the steps'."""
    from types import SimpleNamespace

    from resdeg.perf.gpu_check.sections import training_syncs
    from resdeg.perf.timing import OWN_SYNC

    def event(name, start, end):
        return SimpleNamespace(name=name, time_range=SimpleNamespace(start=start, end=end))

    own = [
        event(OWN_SYNC, 0, 10),
        event("cudaDeviceSynchronize", 2, 8),
        event(OWN_SYNC, 900, 950),
        event("cudaStreamSynchronize", 910, 940),
    ]
    steps = [event("aten::conv2d", 20 + 10 * k, 25 + 10 * k) for k in range(40)]
    assert training_syncs(own + steps) == 0  # a sync-free step: 0, not 2 / 40
    assert training_syncs(own + steps + [event("cudaMemcpy", 400, 401)]) == 1  # an .item() in a step is counted


def test_a_peak_memory_measurement_starts_after_the_previous_measurements_objects_are_collected():
    """Lightning's trainer, module and data module sit in reference cycles: uncollected, the
    previous measurement's CIFAR copy on the GPU would inflate every later peak."""
    import weakref

    from resdeg.perf.timing import fresh_peak_memory

    class Held:
        pass

    previous = Held()
    previous.cycle, previous.data = previous, torch.zeros(1000)
    gone = weakref.ref(previous)
    del previous
    fresh_peak_memory()
    assert gone() is None


def test_the_budget_gives_each_section_its_share_and_the_compiled_settings_their_own():
    """Sections run in order (one GPU's throughput and the runs-per-GPU table first); a section
    may use what earlier ones left, never a later one's share; the default budget is 5 minutes."""
    from resdeg.perf.gpu_check.plan import FULL, SECTIONS, SMOKE, Clock

    assert FULL.budget_s == 300 and SMOKE.budget_s == 300
    assert [name for name, _ in SECTIONS][:2] == ["throughput", "concurrency"]
    assert sum(share for _, share in SECTIONS) == pytest.approx(1.0)
    clock = Clock(1000)
    clock.start("throughput")
    assert 240 < clock.left() <= 250
    clock.start("concurrency")  # throughput finished at once: its time is concurrency's too
    assert 490 < clock.left() <= 500
    clock.start("compiled")
    assert 990 < clock.left() <= 1000
    shares = dict(SECTIONS)
    assert shares["compiled"] >= 0.25  # the compiled settings' own, at the end


@pytest.mark.slow
def test_a_worker_that_dies_before_its_warm_up_ends_the_concurrency_section_at_once(tmp_path, monkeypatch):
    """Runs timed together wait for each other after their warm-up; one that dies first must not
    keep the others waiting until the budget is gone: its measurement is an error row, the
    workers are stopped, and the check goes on (here within seconds of a 10-minute budget)."""
    import time

    from resdeg.perf.gpu_check import sections, workers
    from resdeg.perf.gpu_check.plan import SMOKE, Clock
    from resdeg.perf.gpu_check.table import Check

    started = []

    def start(spec, logs, threads=None):
        if spec["index"] == 1:  # dies before it is warm
            spec = {**spec, "arch": "no-such-arch"}
        process = workers.start_worker(spec, logs, threads)
        started.append(process)
        return process

    from conftest import write_cifar_folder

    monkeypatch.setattr(sections, "start_worker", start)
    check = Check(SMOKE, tmp_path, str(write_cifar_folder(tmp_path / "data")))
    began = time.monotonic()
    sections.concurrency(check, Clock(600))
    assert time.monotonic() - began < 120  # not the budget: no worker waits for the dead one
    assert [row["runs"] for row in check.rows if row["metric"] == "aggregate_images_per_s"] == [1]  # alone: measured
    errors = [row for row in check.rows if row["metric"] == "error"]
    assert [row["runs"] for row in errors] == [2]
    assert "worker 1 exited" in errors[0]["note"]
    assert all(process.poll() is not None for process in started)  # none left running
