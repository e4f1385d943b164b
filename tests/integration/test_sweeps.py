"""Sweeps as researchers run them: W&B runs, parallel and SLURM launchers, re-launch."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from conftest import REPO, paths, run_cli

# ResNet-8 at batch 32 on the small CIFAR-10 (conftest.small_cifar): seconds per run on two cores.
TINY = [
    "protocol=cifar_quick",
    "protocol.batch_size=32",
    "protocol.iterations=6",
    "protocol.log_every=3",
    "protocol.eval_every=6",
    "protocol.schedule.warmup_iterations=3",
    "layer_responses=false",  # Fig. 7's pass over the test set: tested in test_report, not needed here
]


def summaries(tmp: Path) -> dict[str, dict]:
    return {(s := json.loads(p.read_text()))["run_id"]: s for p in (tmp / "results").rglob("summary.json")}


# -- W&B ----------------------------------------------------------------------------------
def test_two_job_multirun_makes_two_wandb_runs_with_names_groups_tags_config_and_history(small_cifar, tmp_path):
    from resdeg.tracking.wandb_files import offline_runs

    result = run_cli(
        "--multirun",
        "experiment=degradation_cifar",
        "model.arch=plain,residual",
        "model.depth=8",
        *TINY,
        *paths(tmp_path),
        "logger=wandb",
        env={"RESDEG_CIFAR_ROOT": str(small_cifar), "WANDB_MODE": "offline", "WANDB_API_KEY": ""},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "upload later with `wandb sync" in result.stdout + result.stderr
    # W&B's own ~30 lines a run (banners, the run summary, a deprecation) are not printed
    assert not [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("wandb:")]
    assert "anonymous" not in result.stdout + result.stderr

    runs = offline_runs(tmp_path / "experiments" / "wandb", wait_s=60)
    assert len(runs) == 2 and runs[0].id != runs[1].id  # one W&B run per job, never shared
    assert sorted(r.name for r in runs) == ["plain-8-seed0", "resnet-8-A-seed0"]
    # one group per network (its seeds drawn as one line with a band), the sweep as the job type
    (setting,) = {r["protocol_hash"] for r in summaries(tmp_path).values()}
    assert sorted(r.group for r in runs) == [
        f"cifar10-quick-6-plain-8-setting-{setting}",
        f"cifar10-quick-6-resnet-8-A-setting-{setting}",
    ]
    assert {r.job_type for r in runs} == {"degradation_cifar"}
    by_name = {r.name: r for r in runs}
    assert set(by_name["plain-8-seed0"].tags) == {"cifar10", "plain", "depth-8", "protocol-quick-6"}
    assert set(by_name["resnet-8-A-seed0"].tags) == {"cifar10", "residual", "depth-8", "protocol-quick-6", "option-A"}
    records = summaries(tmp_path)
    for run in runs:
        # the resolved config, flattened, so the dashboard filters and groups by any value
        assert run.config["model.depth"] == 8 and run.config["protocol.schedule.base_lr"] == 0.05
        assert run.config["run.arch"] in ("plain", "residual") and run.config["run.protocol"] == "quick-6"
        # the logged curves are keyed by the iteration, and equal the run record's
        train = {row["trainer/global_step"]: row["train/error"] for row in run.history if "train/error" in row}
        test = {row["trainer/global_step"]: row["test/error"] for row in run.history if "test/error" in row}
        assert sorted(train) == [3, 6] and sorted(test) == [6]
        record = records[run.config["run.run_id"]]
        assert record["wandb_id"] == run.id and run.exit_code == 0
        assert test[6] == pytest.approx(record["final"]["test_error"])
        assert run.summary["record/status"] == "complete"
        # the iteration is the x-axis of every curve; the error curves' summaries are the last and best values
        assert run.metrics["*"]["step_metric"] == "trainer/global_step"
        assert run.metrics["test/error"] == {"step_metric": "trainer/global_step", "summary": ["min", "last"]}


def test_runs_of_two_settings_never_share_a_wandb_group_and_wandb_dir_is_honoured(small_cifar, tmp_path):
    """Two runs that differ only in the learning rate are two report sets, so two W&B groups
    (one group averaged them into one line); the W&B files go where WANDB_DIR says."""
    from resdeg.tracking.wandb_files import offline_runs

    result = run_cli(
        "--multirun",
        "model.depth=8",
        "protocol.schedule.base_lr=0.05,0.1",
        *TINY,
        *paths(tmp_path),
        "logger=wandb",
        env={
            "RESDEG_CIFAR_ROOT": str(small_cifar),
            "WANDB_MODE": "offline",
            "WANDB_API_KEY": "",
            "WANDB_DIR": str(tmp_path / "wandb-dir"),
        },
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    runs = offline_runs(tmp_path / "wandb-dir", wait_s=60)
    assert len(runs) == 2 and runs[0].group != runs[1].group
    # the learning rate was changed on the command line: each name says its setting
    assert sorted(r.name for r in runs) == sorted(
        f"resnet-8-A-seed0-setting-{s['protocol_hash']}" for s in summaries(tmp_path).values()
    )
    assert {r.group.rsplit("-", 1)[1] for r in runs} == {s["protocol_hash"] for s in summaries(tmp_path).values()}
    assert not (tmp_path / "experiments" / "wandb").exists()


def test_wandb_runs_come_back_into_results_format(small_cifar, tmp_path):
    """The import command reads the real offline files W&B wrote and rebuilds the record."""
    from resdeg.report import load_results
    from resdeg.tracking.wandb_import import main as wandb_import

    result = run_cli(
        "model.depth=8",
        *TINY,
        *paths(tmp_path),
        "logger=wandb",
        "logger.mode=offline",
        env={"RESDEG_CIFAR_ROOT": str(small_cifar)},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert wandb_import([str(tmp_path / "experiments" / "wandb"), "--results", str(tmp_path / "imported")]) == 0
    original, imported = load_results(tmp_path / "results"), load_results(tmp_path / "imported")
    assert imported.runs.run_id.tolist() == original.runs.run_id.tolist()
    for column in ("status", "depth", "arch", "parameters", "final_train_error", "final_test_error"):
        assert imported.runs[column].tolist() == original.runs[column].tolist()
    key = ["iteration", "split", "metric"]
    pd.testing.assert_frame_equal(
        imported.history.sort_values(key).reset_index(drop=True),
        original.history.sort_values(key).reset_index(drop=True),
    )


# -- launchers ----------------------------------------------------------------------------
def test_parallel_launcher_runs_two_jobs_side_by_side_to_complete_records(small_cifar, tmp_path):
    import os

    pids = tmp_path / "pids"
    result = run_cli(
        "--multirun",
        "hydra/launcher=parallel",
        "launch.cpu_jobs=2",
        "model.arch=plain,residual",
        "model.depth=8",
        *TINY,
        *paths(tmp_path),
        "+hydra.callbacks.pids._target_=pid_callback.ProcessIds",
        f"+hydra.callbacks.pids.path={pids}",
        env={
            "RESDEG_CIFAR_ROOT": str(small_cifar),
            "PYTHONPATH": os.pathsep.join([str(REPO / "tests"), os.environ.get("PYTHONPATH", "")]),
        },
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Joblib.Parallel(n_jobs=2" in result.stdout + result.stderr
    # each job knows it shares the node with one other (ImageNet's decoding workers take half)
    assert [line.split()[2] for line in pids.read_text().splitlines() if line.startswith("job")] == ["2", "2"]
    runs = summaries(tmp_path)
    assert sorted(r["name"] for r in runs.values()) == ["plain-8", "resnet-8-A"]
    assert all(r["status"] == "complete" for r in runs.values())
    # the two jobs overlapped in time
    spans = sorted((r["started_at"], r["finished_at"]) for r in runs.values())
    assert spans[1][0] <= spans[0][1]


def test_a_parallel_sweep_of_one_job_at_a_time_runs_its_jobs_in_a_worker_not_in_the_sweeps_process(
    small_cifar, tmp_path
):
    """n_jobs 1 (one GPU that holds one run; here launch.cpu_jobs=1): joblib would run the jobs
    inside the launching process; they run one after another in one worker process instead."""
    import os

    pids = tmp_path / "pids"
    result = run_cli(
        "--multirun",
        "hydra/launcher=parallel",
        "launch.cpu_jobs=1",
        "model.arch=plain,residual",
        "model.depth=8",
        *TINY,
        *paths(tmp_path),
        "+hydra.callbacks.pids._target_=pid_callback.ProcessIds",
        f"+hydra.callbacks.pids.path={pids}",
        env={
            "RESDEG_CIFAR_ROOT": str(small_cifar),
            "PYTHONPATH": os.pathsep.join([str(REPO / "tests"), os.environ.get("PYTHONPATH", "")]),
        },
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "one job at a time, in a worker process: 2 jobs" in result.stdout + result.stderr
    runs = summaries(tmp_path)
    assert all(r["status"] == "complete" for r in runs.values()) and len(runs) == 2
    spans = sorted((r["started_at"], r["finished_at"]) for r in runs.values())
    assert spans[0][1] <= spans[1][0]  # one after another
    written = [line.split() for line in pids.read_text().splitlines()]
    (sweep,) = [pid for what, pid, _ in written if what == "sweep"]
    jobs = [pid for what, pid, _ in written if what == "job"]
    assert len(jobs) == 2 and sweep not in jobs and len(set(jobs)) == 1, written
    # each job was told it runs alone: it sizes its share of the cores (ImageNet's decoding) so
    assert [told for what, _, told in written if what == "job"] == ["1", "1"]


def test_sweep_deep_gives_the_seeds_to_resnet_110_and_trains_one_resnet_1202(tmp_path):
    """The paper has five runs of ResNet-110 and one of ResNet-1202: SEEDS=0,1,2,3,4 must not
    train five ResNet-1202s (days on a CPU). Run through make with a Python that only notes
    what it was asked to run."""
    noted = tmp_path / "calls"
    fake = tmp_path / "python"
    fake.write_text(f'#!/bin/sh\necho "$@" >> {noted}\n')
    fake.chmod(0o755)
    out = subprocess.run(
        ["make", "sweep-deep", f"PY={fake}", "LAUNCHER=local", "PROTOCOL=quick", "SEEDS=0,1,2,3,4", "LOGGER=none"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    calls = noted.read_text().splitlines()
    assert len(calls) == 2 and all("experiment=deep_cifar" in c and "protocol=cifar_quick" in c for c in calls)
    assert "model.depth=110" in calls[0] and "seed=0,1,2,3,4" in calls[0]
    assert "model.depth=1202" in calls[1] and " seed=0 " in calls[1] and calls[1].count("seed=") == 1
    out = subprocess.run(
        ["make", "sweep-deep", f"PY={fake}", "LAUNCHER=local", "PROTOCOL=quick", "DEEP_DEPTHS=110"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0 and len(noted.read_text().splitlines()) == 3  # ResNet-110 alone


# -- re-launch ----------------------------------------------------------------------------
def test_relaunched_sweep_skips_the_finished_run_resumes_the_killed_one_and_starts_the_missing_one(
    small_cifar, tmp_path
):
    sweep = [
        "--multirun",
        "model.depth=8",
        "seed=0,1,2",
        "protocol=cifar_quick",
        "protocol.batch_size=32",
        "protocol.iterations=40",
        "protocol.log_every=5",
        "protocol.eval_every=40",
        "protocol.checkpoint_every=5",
        "protocol.schedule.warmup_iterations=5",
        "layer_responses=false",
        *paths(tmp_path),
    ]
    env = {**os.environ, "RESDEG_CIFAR_ROOT": str(small_cifar), "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "resdeg.train", *sweep],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    deadline = time.time() + 300
    while time.time() < deadline:  # wait until seed 0 is complete and seed 1 has a checkpoint
        runs = summaries(tmp_path)
        done = [r for r in runs.values() if r["status"] == "complete"]
        second = [r for r in runs.values() if r["seed"] == 1]
        if (
            done
            and second
            and list((tmp_path / "experiments" / "checkpoints").rglob("*seed1*/last.ckpt"))
            and second[0].get("iteration", 0) >= 10
        ):
            break
        assert process.poll() is None, process.stdout.read()[-3000:]
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    before = summaries(tmp_path)
    assert sorted((r["seed"], r["status"]) for r in before.values()) == [(0, "complete"), (1, "running")]
    first_record = {p: p.read_text() for p in (tmp_path / "results").rglob("*seed0*/*")}

    again = run_cli(*sweep, env={"RESDEG_CIFAR_ROOT": str(small_cifar)})
    output = again.stdout + again.stderr
    assert again.returncode == 0, output[-3000:]
    # said before the first job: what it will do, and how long it takes at the pace seed 0 measured
    plan = re.search(
        r"this sweep: 3 runs: 1 skipped \(complete records\), 1 resumed, 1 trained from the start; "
        r"expected \d+ (s|min) of training one run after another",
        output,
    )
    assert plan and output.index(plan.group(0)) < output.index("Launching 3 jobs") + 200, output[:3000]
    assert output.count("complete record exists") == 1  # seed 0 skipped...
    assert {p: p.read_text() for p in (tmp_path / "results").rglob("*seed0*/*")} == first_record  # ...untouched
    after = summaries(tmp_path)
    by_seed = {r["seed"]: r for r in after.values()}
    assert [by_seed[s]["status"] for s in (0, 1, 2)] == ["complete"] * 3
    assert by_seed[1]["resumed_at_iterations"][0] >= 5  # resumed from its checkpoint, not restarted
    assert "resumed_at_iterations" not in by_seed[2]  # the missing run started from scratch
    history = pd.read_csv(next((tmp_path / "results").rglob("*seed1*/history.csv")))
    assert history.query("split == 'train' and metric == 'error'").iteration.tolist() == list(range(5, 45, 5))


def test_a_sweep_job_that_cannot_run_lets_the_next_job_run_and_the_sweep_exits_2(small_cifar, tmp_path):
    """Job 0's run is being trained by another live process (its lock is held here): job 0
    reports it, job 1 still trains to a complete record, and the sweep's exit status (2) and
    last lines say that a job did not complete."""
    from hydra import compose, initialize_config_dir

    from resdeg.record.identity import run_identity
    from resdeg.record.layout import RunFolders
    from resdeg.record.lock import RunLock

    overrides = ["model.depth=8", *TINY, *paths(tmp_path)]
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[*overrides, "seed=0", f"data.root={small_cifar}"])
    locked = RunFolders.of(cfg, run_identity(cfg)).record
    lock = RunLock(locked)
    lock.acquire()
    try:
        result = run_cli("--multirun", "seed=0,1", *overrides, env={"RESDEG_CIFAR_ROOT": str(small_cifar)})
    finally:
        lock.release()
    output = result.stdout + result.stderr
    assert result.returncode == 2, output[-3000:]
    assert "being trained right now" in output and "1 job(s) of this sweep did not complete" in output
    runs = summaries(tmp_path)
    assert [(r["seed"], r["status"]) for r in runs.values()] == [(1, "complete")]


# -- stopping a sweep ----------------------------------------------------------------------
def _stoppable_sweep(tmp: Path, stderr) -> subprocess.Popen:
    """Two runs of a local sweep on a small generated CIFAR-10, long enough to be stopped mid-run."""
    from conftest import write_cifar_folder

    data = write_cifar_folder(tmp / "data")
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "resdeg.train",
            "-m",
            "hydra/launcher=basic",
            f"data.root={data}",
            "model.depth=8",
            "protocol=cifar_quick",
            "protocol.iterations=2000",
            "protocol.batch_size=20",
            "protocol.log_every=2",
            "protocol.eval_every=1000",
            "protocol.checkpoint_every=10",
            "protocol.schedule.warmup_iterations=1",
            "layer_responses=false",
            "seed=0,1",
            *paths(tmp),
        ],
        cwd=REPO,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
    )


def _the_one_stopped_run(tmp: Path) -> dict:
    records = list(summaries(tmp).values())
    assert len(records) == 1, records  # the sweep stopped: the second run never started
    (record,) = records
    assert record["status"] == "interrupted", record
    return record


def test_a_dead_pipe_stops_the_whole_sweep_with_a_checkpoint_and_no_failed_run(tmp_path):
    """``make sweep-degradation | head -1`` (or ``| tee log`` with tee killed): the run stops at
    the end of its step with a checkpoint, the sweep stops with it (exit 2), and no later job is
    recorded failed for a BrokenPipeError; its last lines reach stderr."""
    with open(tmp_path / "stderr.txt", "w") as stderr:
        process = _stoppable_sweep(tmp_path, stderr)
        while "it 4/2000" not in process.stdout.readline():
            assert process.poll() is None
        process.stdout.close()  # the reader is gone
        assert process.wait(timeout=300) == 2
    record = _the_one_stopped_run(tmp_path)
    assert "SIGPIPE" in record["message"] and record["interrupted_at"] >= 4
    (last,) = (tmp_path / "experiments").rglob("last.ckpt")
    from resdeg.record.decision import checkpoint_iteration

    assert checkpoint_iteration(last) == record["interrupted_at"]
    said = (tmp_path / "stderr.txt").read_text()
    assert "run the same command again to resume it" in said and "Logging error" not in said, said[-3000:]


def test_ctrl_c_stops_the_whole_sweep_with_a_checkpoint_at_the_current_iteration(tmp_path):
    process = _stoppable_sweep(tmp_path, subprocess.STDOUT)
    while "it 4/2000" not in process.stdout.readline():
        assert process.poll() is None
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 2, output[-3000:]
    record = _the_one_stopped_run(tmp_path)
    assert f"Ctrl-C received: stopped at iteration {record['interrupted_at']}" in output
    (last,) = (tmp_path / "experiments").rglob("last.ckpt")
    from resdeg.record.decision import checkpoint_iteration

    assert checkpoint_iteration(last) == record["interrupted_at"]
    assert "run the same command again to resume it" in output and "Traceback" not in output
