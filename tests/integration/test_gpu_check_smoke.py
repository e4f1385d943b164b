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


def test_the_smoke_check_measures_every_section_and_writes_its_table(small_cifar, tmp_path):
    # conftest.small_cifar: what is tested is every section's measurement, not the data
    env = {**os.environ, "RESDEG_CIFAR_ROOT": str(small_cifar), "PYTHONUNBUFFERED": "1"}
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
