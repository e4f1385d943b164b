"""Cluster runs as srun starts them: every rank is its own process, started side by side with
SLURM_* variables, none of them the parent of another. They must agree on skip / resume /
fresh: the first process decides, the others take its decision (resdeg.record.decision)."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import IMAGENET_TINY, REPO, write_imagenet_tree


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return write_imagenet_tree(tmp_path_factory.mktemp("imagenet"))


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
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "SLURM_JOB_ID": str(job_id), "SLURM_STEP_ID": "0",
               "SLURM_PROCID": str(rank), "SLURM_LOCALID": str(rank), "SLURM_NODEID": "0", "SLURM_NTASKS": str(tasks),
               "SLURM_NTASKS_PER_NODE": str(tasks), "SLURM_NNODES": "1", "SLURM_JOB_NAME": "resdeg-test",
               "SLURM_NODELIST": "127.0.0.1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "OMP_NUM_THREADS": "1"}
        for key in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "RESDEG_RESUME_CHECKPOINT"):
            env.pop(key, None)
        processes.append(subprocess.Popen([sys.executable, "-m", "resdeg.train", *overrides], cwd=REPO, env=env,
                                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
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


def test_srun_ranks_resume_from_one_checkpoint_and_skip_a_complete_record_together(tree, tmp_path):
    overrides = [*IMAGENET_TINY, "protocol.iterations=4", "protocol.checkpoint_every=2", "protocol.eval_every=2",
                 f"data.root={tree}", "model.depth=18", "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2",
                 f"paths.results={tmp_path / 'results'}", f"paths.experiments={tmp_path / 'exp'}"]
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
