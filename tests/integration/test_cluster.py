"""DDP runs as clusters run them. Under srun every rank is its own process, started side by
side with SLURM_* variables, none of them the parent of another: they must agree on skip /
resume / fresh (the first process decides, the others take its decision: resdeg.record.decision).
A pre-emption signal may reach one process only: all must stop together, with one checkpoint
(resdeg.training.preemption)."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from conftest import IMAGENET_TINY, REPO, SMALL_CROPS


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def srun(overrides: list[str], job_id: int, tasks: int = 2, timeout: int = 240) -> list[str]:
    """Start ``tasks`` processes of ``python -m resdeg.train`` the way srun does (one per rank,
    SLURM_PROCID/LOCALID/NTASKS...), wait for all, return each one's output."""
    port = free_port()
    processes = []
    for rank in range(tasks):
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "SLURM_JOB_ID": str(job_id),
            "SLURM_STEP_ID": "0",
            "SLURM_PROCID": str(rank),
            "SLURM_LOCALID": str(rank),
            "SLURM_NODEID": "0",
            "SLURM_NTASKS": str(tasks),
            "SLURM_NTASKS_PER_NODE": str(tasks),
            "SLURM_NNODES": "1",
            "SLURM_JOB_NAME": "resdeg-test",
            "SLURM_NODELIST": "127.0.0.1",
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "OMP_NUM_THREADS": "1",
        }
        for key in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "RESDEG_RUN_DECISION"):
            env.pop(key, None)
        processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "resdeg.train", *overrides],
                cwd=REPO,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    outputs = []
    try:
        for process in processes:
            outputs.append(process.communicate(timeout=timeout)[0])
    finally:
        for process in processes:
            process.kill()
    for process, output in zip(processes, outputs):
        assert process.returncode == 0, output[-3000:]
    return outputs


def test_srun_ranks_resume_from_one_checkpoint_and_skip_a_complete_record_together(imagenet_tree, tmp_path):
    overrides = [
        *IMAGENET_TINY,
        *SMALL_CROPS,
        "protocol.iterations=4",
        "protocol.checkpoint_every=2",
        "protocol.eval_every=2",
        f"data.root={imagenet_tree}",
        "model.depth=18",
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        f"paths.results={tmp_path / 'results'}",
        f"paths.experiments={tmp_path / 'exp'}",
    ]
    srun(overrides, job_id=101)  # fresh on both ranks
    (summary_path,) = (tmp_path / "results").rglob("summary.json")
    summary = json.loads(summary_path.read_text())
    assert summary["status"] == "complete" and summary["processes"] == 2

    # as if the job was pre-empted after its last checkpoint: both ranks must resume from it
    summary["status"] = "interrupted"
    summary_path.write_text(json.dumps(summary))
    resumed = srun(overrides, job_id=102)
    assert "process 1 takes the first process's decision: resume from last.ckpt (iteration 4)" in resumed[1]
    summary = json.loads(summary_path.read_text())
    assert summary["status"] == "complete" and summary["resumed_at_iterations"] == [4]

    # a complete record: both ranks skip it, neither waits for the other
    skipped = srun(overrides, job_id=103, timeout=120)
    assert "complete record exists" in skipped[0]
    assert "process 1 takes the first process's decision: skip" in skipped[1]
    assert [p.name for p in (tmp_path / "exp" / "decisions").rglob("*.json")] == ["slurm-103-0-0.json"]


def test_sigterm_to_one_ddp_process_stops_every_process_with_one_checkpoint(imagenet_tree, tmp_path):
    """Pre-emption reaching one process of a DDP run only (here the second, which Lightning
    started): the processes decide together at the next iteration they agree at (every 10th),
    every one stops there,
    last.ckpt is written once and the record says interrupted, within a bounded time. Before,
    the signalled process stopped alone and the other waited in the checkpoint's collective."""
    overrides = [
        *IMAGENET_TINY,
        *SMALL_CROPS,
        "protocol.iterations=400",
        "protocol.checkpoint_every=2",
        "protocol.eval_every=400",
        f"data.root={imagenet_tree}",
        "model.depth=18",
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        f"paths.results={tmp_path / 'results'}",
        f"paths.experiments={tmp_path / 'exp'}",
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "resdeg.train", *overrides],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.time() + 180
        while not list((tmp_path / "exp").rglob("*step=*.ckpt")):  # both processes are training
            assert time.time() < deadline and process.poll() is None, process.stdout.read()[-3000:]
            time.sleep(0.1)
        children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
        assert len(children) == 1, children  # Lightning's second process
        os.kill(int(children[0]), signal.SIGTERM)
        output = process.communicate(timeout=120)[0]
    finally:
        process.kill()
    assert process.returncode == 2, output[-3000:]
    assert "stopped at iteration" in output and "run the same command again to resume" in output
    (summary_path,) = (tmp_path / "results").rglob("summary.json")
    summary = json.loads(summary_path.read_text())
    assert summary["status"] == "interrupted" and 10 <= summary["interrupted_at"] < 400
    assert summary["interrupted_at"] % 10 == 0  # an iteration the processes agree at
    (last,) = (tmp_path / "exp").rglob("last.ckpt")
    import torch

    assert torch.load(last, map_location="cpu", weights_only=False)["global_step"] == summary["interrupted_at"]
