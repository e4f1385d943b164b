"""Sweeps on a real SLURM (tests/slurm_cluster.py: Debian's slurmctld, slurmd, slurmdbd, munge),
submitted as a user submits them, `make sweep-degradation LAUNCHER=slurm`, with only the two
overrides a CPU-only cluster needs (hydra.launcher.gpus_per_node=0 and the partition).

What a cluster does to a job every day, each done here by SLURM itself: pre-emption and
requeue (submitit's warning signal, SIGUSR2), a time limit, a hard `scancel`; and a two-task
`srun` DDP job. Each run must end complete, and where it was stopped mid-run, with the history of
an uninterrupted twin; a job that did not complete is named at the sweep's end."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

from conftest import REPO, paths, run_cli, write_imagenet_tree

CPU_CLUSTER = ["hydra.launcher.gpus_per_node=0", "hydra.launcher.partition=cpu"]


def tiny(iterations: int, every: int, arch: str = "plain,residual") -> list[str]:
    """Depth-8 nets at batch 32 (on conftest.small_cifar), checkpointed and evaluated every ``every``."""
    return [
        f"model.arch={arch}",
        "model.depth=8",
        "protocol.batch_size=32",
        f"protocol.iterations={iterations}",
        f"protocol.log_every={max(1, every // 5)}",
        f"protocol.eval_every={every}",
        f"protocol.checkpoint_every={every}",
        "protocol.schedule.warmup_iterations=3",
        "layer_responses=false",
        "gradient_signals=false",
    ]


def sweep(
    slurm, tmp: Path, args: list[str], target: str = "sweep-degradation", *make_vars: str, data: Path | None = None
) -> subprocess.Popen:
    """`make sweep-degradation LAUNCHER=slurm` (or another sweep) in the background, as a user
    starts it, its CIFAR-10 in ``data``."""
    env = {**slurm.env, "PYTHONUNBUFFERED": "1", "RESDEG_CIFAR_ROOT": str(data or "")}
    return subprocess.Popen(
        [
            "make",
            "--no-print-directory",
            target,
            "LAUNCHER=slurm",
            "LOGGER=none",
            *make_vars,
            f"ARGS={' '.join([*CPU_CLUSTER, *args, *paths(tmp)])}",
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def finish(slurm, process: subprocess.Popen, timeout: float = 420) -> str:
    """The sweep's output once it ends; past ``timeout``, it and its jobs are stopped."""
    try:
        return process.communicate(timeout=timeout)[0]
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            subprocess.run(["scancel", "--full", f"--user={os.getuid()}"], env=slurm.env)


def job_log(tmp: Path, task: int) -> Path | None:
    """submitit's log of array task ``task``, or of a sweep's one job (folder ``<job>``, not
    ``<array>_<task>``): the same file across requeues (it appends)."""
    slurm = tmp / "experiments" / "slurm"
    found = sorted(slurm.glob(f"*_{task}/*_{task}_0_log.out")) or sorted(
        p for p in slurm.glob("*/*_0_log.out") if "_" not in p.parent.name and task == 0
    )
    return found[-1] if found else None


def wait_for_line(
    tmp: Path, task: int, pattern: str, process: subprocess.Popen, timeout: float = 240
) -> tuple[str, str]:
    """Wait until task ``task``'s log has a line matching ``pattern``; (SLURM job id, the match)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = job_log(tmp, task)
        if log is not None and (match := re.search(pattern, log.read_text(errors="replace"))):
            return log.parent.name, match.group(0)
        if process.poll() is not None:
            raise AssertionError(f"the sweep ended before {pattern!r}: {process.stdout.read()[-4000:]}")
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)  # a failed test leaves no sweep waiting behind it
    raise AssertionError(f"no {pattern!r} in task {task}'s log within {timeout} s: {log and log.read_text()[-3000:]}")


def records(tmp: Path) -> dict[str, dict]:
    return {(s := json.loads(p.read_text()))["name"]: s for p in (tmp / "results").rglob("summary.json")}


def history(tmp: Path, name: str) -> str:
    (path,) = [
        p / "history.csv" for p in (tmp / "results").rglob("*") if p.is_dir() and p.name.startswith(name + "_seed")
    ]
    return path.read_text()


def twin(small_cifar, tmp: Path, args: list[str]) -> Path:
    """The same run uninterrupted, trained here without SLURM: the history a stopped run must equal."""
    done = run_cli(
        "protocol=cifar_quick", *args, *paths(tmp), "logger=none", env={"RESDEG_CIFAR_ROOT": str(small_cifar)}
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return tmp


def test_a_cpu_cluster_sweep_survives_a_hard_scancel_names_it_and_the_same_command_resumes_it(
    slurm, small_cifar, tmp_path
):
    """Two array tasks, submitted with the two CPU-cluster overrides only. Task 0 is cancelled
    mid-run (`scancel`: SIGTERM, then SIGKILL): task 1 still completes, the sweep ends naming
    task 0 and exits 2; the same command again resumes task 0 from its checkpoint and skips task 1."""
    args = tiny(iterations=150, every=50)
    process = sweep(slurm, tmp_path, args, data=small_cifar)
    job, _ = wait_for_line(tmp_path, 0, r"plain-8 it (6\d|[7-9]\d|1[0-4]\d)/150", process)
    subprocess.run(["scancel", job], env=slurm.env, check=True)
    output = finish(slurm, process)
    assert process.returncode == 2, output[-4000:]
    assert "1 job(s) of this sweep did not complete" in output, output[-4000:]
    assert re.search(rf"job 0 \(model.arch=plain .*\): SLURM job {job} ended CANCELLED", output), output[-4000:]
    assert "Traceback" not in output, output[-4000:]
    first = records(tmp_path)
    assert first["resnet-8-A"]["status"] == "complete" and first["plain-8"]["status"] == "interrupted"
    stopped_at = first["plain-8"]["interrupted_at"]
    assert 60 <= stopped_at < 150 and "SIGTERM" in first["plain-8"]["message"]  # checkpointed where it stood

    relaunched = sweep(slurm, tmp_path, args, data=small_cifar)
    again = finish(slurm, relaunched)
    assert relaunched.returncode == 0 and "Traceback" not in again and "did not complete" not in again, again[-4000:]
    second = records(tmp_path)
    assert {s["status"] for s in second.values()} == {"complete"}
    assert second["plain-8"]["resumed_at_iterations"] == [stopped_at]
    assert second["resnet-8-A"]["finished_at"] == first["resnet-8-A"]["finished_at"]  # skipped, not retrained


def test_submitits_warning_signal_checkpoints_where_the_run_stands_and_the_requeued_job_equals_its_twin(
    slurm, small_cifar, tmp_path
):
    """`scancel --signal=USR2`, what submitit sends before a time limit or a pre-emption: the run
    saves last.ckpt at the current iteration, is marked interrupted (by its signal's name), submitit
    requeues the job, and it resumes there and completes with its uninterrupted twin's history."""
    args = tiny(iterations=150, every=50, arch="residual")
    process = sweep(slurm, tmp_path / "slurm", args, data=small_cifar)
    job, _ = wait_for_line(tmp_path / "slurm", 0, r"resnet-8-A it (6\d|[7-9]\d|1[0-4]\d)/150", process)
    subprocess.run(["scancel", "--signal=USR2", job], env=slurm.env, check=True)
    output = finish(slurm, process)
    assert process.returncode == 0 and "Traceback" not in output, output[-4000:]

    log = job_log(tmp_path / "slurm", 0).read_text()
    stopped = re.search(r"SIGUSR2 received: stopped at iteration (\d+)", log)
    assert stopped and "Requeued job" in log and "Ctrl-C" not in log, log[-4000:]
    stopped_at = int(stopped.group(1))
    assert stopped_at % 50, "stopped at a periodic checkpoint: the signal's own checkpoint was not used"
    (summary,) = records(tmp_path / "slurm").values()
    assert summary["status"] == "complete" and summary["resumed_at_iterations"] == [stopped_at]
    twin(small_cifar, tmp_path / "twin", args)
    assert history(tmp_path / "slurm", "resnet-8-A") == history(tmp_path / "twin", "resnet-8-A")


def test_a_job_that_reaches_its_time_limit_is_requeued_resumed_and_completes(slurm, small_cifar, tmp_path):
    """A 2-minute limit with submitit's warning 60 s before it (SLURM sends it 30 to 60 s into the
    job), on a run sized to about 120 s of training at the pace a probe run measured here: the
    limit lands mid-run at least once, even where the job trains twice as fast as the probe did
    (the suite's other workers load the machine unevenly); each time the job is requeued
    (max_num_timeout) and resumes; the run completes."""
    probe = twin(small_cifar, tmp_path / "probe", tiny(iterations=120, every=120, arch="residual"))
    (measured,) = records(probe).values()
    iterations = max(300, int(measured["train_images_per_s"] / 32 * 120))
    args = [
        *tiny(iterations=iterations, every=iterations, arch="residual"),  # one evaluation, at the end
        "hydra.launcher.timeout_min=2",
        "hydra.launcher.signal_delay_s=60",
    ]
    output = finish(slurm, sweep(slurm, tmp_path / "slurm", args, data=small_cifar), timeout=900)
    log = job_log(tmp_path / "slurm", 0).read_text()
    assert "Traceback" not in output and "did not complete" not in output, output[-3000:] + log[-3000:]
    stops = [int(i) for i in re.findall(r"SIGUSR2 received: stopped at iteration (\d+)", log)]
    assert stops and log.count("this job is timed-out") >= len(stops), log[-4000:]
    (summary,) = records(tmp_path / "slurm").values()
    assert summary["status"] == "complete" and summary["resumed_at_iterations"] == stops


def test_a_two_task_srun_ddp_job_writes_one_record_and_both_ranks_resume_from_one_checkpoint(slurm, tmp_path):
    """Lightning's DDP under a real `srun` (ResNet-18 on a tiny ImageNet tree, gloo on CPU, one
    task per process): the job trains one run and writes one record; requeued mid-run by
    submitit's signal, both ranks stop at the same iteration and resume from the same checkpoint
    (the first process decides, the other takes its decision)."""
    tree = write_imagenet_tree(tmp_path / "imagenet")
    args = [
        "model.arch=residual",
        "model.depth=18",
        "data.num_classes=3",
        "data.num_workers=0",
        "data.mean_images=8",
        "data.eval_batch_size=20",
        "protocol.batch_size=4",
        "protocol.iterations=60",
        "protocol.log_every=5",
        "protocol.eval_every=20",
        "protocol.checkpoint_every=20",
        "layer_responses=false",
        "gradient_signals=false",
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "hydra.launcher.tasks_per_node=2",
        "hydra.launcher.cpus_per_task=1",
    ]
    process = sweep(slurm, tmp_path, args, "sweep-imagenet", f"IMAGENET_ROOT={tree}")
    job, _ = wait_for_line(tmp_path, 0, r"resnet-18-A it (2[5-9]|[3-5]\d)/60", process)
    subprocess.run(["scancel", "--signal=USR2", job], env=slurm.env, check=True)
    output = finish(slurm, process)
    assert process.returncode == 0 and "Traceback" not in output, output[-4000:]
    (summary,) = records(tmp_path).values()
    assert summary["status"] == "complete" and summary["processes"] == 2
    (stopped_at,) = summary["resumed_at_iterations"]
    assert stopped_at % 20, "resumed from a periodic checkpoint, not the signal's own"
    rank1 = (job_log(tmp_path, 0).parent / f"{job}_1_log.out").read_text()
    assert f"process 1 takes the first process's decision: resume from last.ckpt (iteration {stopped_at})" in rank1, (
        rank1[-3000:]
    )
