"""Skip, resume or start afresh: what a launch does with the record and checkpoints it finds.

    no record, or force=true          -> fresh (older checkpoints of the run are deleted)
    a complete record                 -> skip (the record is the result)
    a running/interrupted/failed one  -> resume from its newest readable checkpoint, or
                                         fresh when it left none (killed before the first)

Under DDP the first process (rank 0) decides once and every other process takes its
decision, so all of them skip together or resume from the same checkpoint:
  - the processes Lightning's launcher starts after it read it from the environment;
  - the processes srun (or torchrun) starts beside it, which never see its environment,
    read it from a file under experiments/decisions/ named by what all processes of that
    launch share (the SLURM job, step and restart count; torchrun's run id and restart count),
    waiting for it a bounded time. Deciding each by itself could differ: the first process
    rewrites the record and deletes stale checkpoints while the others read them.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from resdeg import ResdegError
from resdeg.record.layout import RunFolders
from resdeg.record.schema import read_history, read_summary

log = logging.getLogger("resdeg")

# Set by the first process of a DDP run for the processes Lightning starts after it.
DECISION_ENV = "RESDEG_RUN_DECISION"  # "<action>:<checkpoint>"


@dataclass(frozen=True)
class Decision:
    action: str  # skip | resume | fresh
    previous: dict | None  # the record found (None: none, or replaced by force=true)
    checkpoint: Path | None = None  # resume: the checkpoint to resume from
    iteration: int = 0  # resume: the iteration of that checkpoint

    def owes_evaluation(self, eval_every: int, iterations: int) -> bool:
        """The checkpoint of an evaluation iteration is written just before that evaluation, so a
        run killed during it resumes owing it: it is redone first (its record rows, and the
        plateau schedule's observation on ImageNet), as the uninterrupted run had it. The last
        iteration's evaluation is the end of training's own."""
        return (
            self.action == "resume" and self.iteration % int(eval_every) == 0 and 0 < self.iteration < int(iterations)
        )


# how long a later process waits for the first one's decision (it reads a record and a checkpoint)
HANDOFF_TIMEOUT_S = 600.0


def launch_key() -> str | None:
    """What every process of one srun or torchrun launch shares, and no other launch of the
    same run: None where the processes are not started side by side by such a launcher."""
    env = os.environ
    if "SLURM_JOB_ID" in env and "SLURM_PROCID" in env and int(env.get("SLURM_NTASKS", "1")) > 1:
        return f"slurm-{env['SLURM_JOB_ID']}-{env.get('SLURM_STEP_ID', 'x')}-{env.get('SLURM_RESTART_COUNT', '0')}"
    if "TORCHELASTIC_RUN_ID" in env and int(env.get("WORLD_SIZE", "1")) > 1:
        return f"torchrun-{env['TORCHELASTIC_RUN_ID']}-{env.get('TORCHELASTIC_RESTART_COUNT', '0')}"
    return None


def decide(
    folders: RunFolders,
    name: str,
    force: bool,
    rank: int = 0,
    timeout_s: float = HANDOFF_TIMEOUT_S,
    log_every: int | None = None,
) -> Decision:
    try:
        previous = read_summary(folders.record)
    except ResdegError:
        if not force:
            raise
        previous = None  # force=true replaces an unreadable record
    if rank > 0:
        decision = _handed_decision(folders, name, rank, previous, timeout_s)
        if decision is not None:
            return decision
        log.warning(
            f"{name}: process {rank} has no decision from the first process (not started by Lightning, "
            "srun or torchrun); it decides from the record and checkpoints itself"
        )
    decision = _decide(folders, name, force, previous)
    if decision.action == "resume" and log_every:
        check_history_covers(folders.record, name, decision.iteration, log_every)
    if rank > 0:
        return decision
    os.environ[DECISION_ENV] = f"{decision.action}:{decision.checkpoint or ''}"
    key = launch_key()
    if key and folders.decisions is not None:
        from resdeg.record.schema import write_atomic

        folders.decisions.mkdir(parents=True, exist_ok=True)
        for old in folders.decisions.glob("*.json"):  # earlier launches' decisions
            old.unlink(missing_ok=True)
        write_atomic(
            folders.decisions / f"{key}.json",
            json.dumps(
                {
                    "action": decision.action,
                    "checkpoint": str(decision.checkpoint or ""),
                    "iteration": decision.iteration,
                }
            ),
        )
    return decision


def _handed_decision(
    folders: RunFolders, name: str, rank: int, previous: dict | None, timeout_s: float
) -> Decision | None:
    """The first process's decision: from its file where srun or torchrun started the processes
    side by side, else from the environment (Lightning's launcher started this process after
    deciding); None where neither applies. Under srun the environment is the submitting
    shell's, so a decision found there is not this launch's: the file is read."""
    key = launch_key()
    handed = None if key else os.environ.get(DECISION_ENV)
    if handed is not None:
        action, _, checkpoint = handed.partition(":")
    elif key and folders.decisions is not None:
        path = folders.decisions / f"{key}.json"
        deadline = time.monotonic() + timeout_s
        while not path.is_file():
            if time.monotonic() > deadline:
                raise ResdegError(
                    f"{name}: process {rank} waited {timeout_s:.0f} s for the first process's decision "
                    f"({path}); is process 0 of this launch running?"
                )
            time.sleep(0.2)
        handed_json = json.loads(path.read_text())
        action, checkpoint = handed_json["action"], handed_json["checkpoint"]
    else:
        return None
    path = Path(checkpoint) if checkpoint else None
    decision = Decision(action, previous, path, checkpoint_iteration(path) if path else 0)
    log.info(
        f"{name}: process {rank} takes the first process's decision: {action}"
        + (f" from {path.name} (iteration {decision.iteration})" if path else "")
    )
    return decision


def _decide(folders: RunFolders, name: str, force: bool, previous: dict | None) -> Decision:
    if force or previous is None:
        decision = Decision("fresh", None if force else previous)
    elif previous.get("status") == "complete":
        decision = Decision("skip", previous)
    else:
        checkpoint = readable_checkpoint(folders.checkpoints, name)
        decision = (
            Decision("resume", previous, checkpoint, checkpoint_iteration(checkpoint))
            if checkpoint
            else Decision("fresh", previous)
        )
    return decision


def check_history_covers(record: Path, name: str, iteration: int, log_every: int) -> None:
    """Refuse to resume over a history that lacks what the checkpoint at ``iteration`` says was
    recorded: every training interval that closed before it (the interval ending at j closes
    at the start of update j + 1, after the checkpoint of j). Resumed over, the lost rows would
    never come back, and the completed record would look whole."""
    expected = (iteration - 1) // log_every * log_every if iteration > 0 else 0
    history = Path(record) / "history.csv"
    fix = (
        "restore history.csv (from git or a backup), or rerun with force=true to train the run afresh "
        "(its checkpoints are then deleted)"
    )
    if not history.is_file():
        if iteration > 0:
            raise ResdegError(
                f"{name}: the record {record} has no history.csv, but its checkpoint is at iteration "
                f"{iteration}: resuming would lose every row before it. {fix.capitalize()}"
            )
        return
    if expected < log_every:
        return
    rows = read_history(history)
    last = max((it for it, split, _, _ in rows if split == "train"), default=0)
    if last < expected:
        raise ResdegError(
            f"{name}: the record's history.csv ends at iteration {last}, but its checkpoint is at "
            f"iteration {iteration} (the training rows up to {expected} should be there): resuming would "
            f"lose the rows between. {fix.capitalize()}"
        )


def check_checkpoint_is_this_run(path: Path, run_id: str, expected_state: dict, device: str | None = None) -> None:
    """Refuse a checkpoint that is not this run's, before training: one that names another run
    (resdeg writes the run id into every checkpoint), or, for one that names none, whose
    network differs (parameter names or shapes of ``expected_state``). Loaded, it would fail
    deep inside Lightning with a traceback and mark the run failed.

    Also one written on another kind of device than ``device`` (cuda, cpu), where the run
    would go on: the crops and flips of an iteration are drawn by a generator of the device
    the data lives on (Philox on CUDA, Mersenne Twister on CPU) and the arithmetic differs
    (TF32), so the record would hold two runs spliced at the resume. Refused, not recorded as
    a continuation: every number of a record must come from one run."""
    import torch

    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    written_by = (checkpoint.get("resdeg") or {}).get("run_id")
    fix = "move it away (it may be another run's), or rerun with force=true to train this run afresh"
    if written_by is not None and written_by != run_id:
        raise ResdegError(f"{run_id}: the checkpoint {path} is another run's ({written_by}): {fix}")
    written_on = (checkpoint.get("resdeg") or {}).get("device")
    if device is not None and written_on is not None and written_on != device:
        raise ResdegError(
            f"{run_id}: the checkpoint {path} was written on {written_on}, and this run would go on "
            f"on {device}: its crop/flip stream and arithmetic would change at the resume. Resume it on "
            f"a {written_on} machine (trainer.accelerator), or rerun with force=true to train it afresh here"
        )
    state = checkpoint.get("state_dict") or {}
    got = {key: tuple(value.shape) for key, value in state.items()}
    want = {key: tuple(value.shape) for key, value in expected_state.items()}
    if got != want:
        differ = sorted(set(got) ^ set(want)) + sorted(k for k in set(got) & set(want) if got[k] != want[k])
        raise ResdegError(
            f"{run_id}: the checkpoint {path} holds another network ({len(differ)} parameters differ, "
            f"e.g. {', '.join(differ[:3])}): {fix}"
        )


def checkpoint_iteration(path: Path) -> int:
    import torch

    return int(torch.load(path, map_location="cpu", weights_only=False)["global_step"])


def readable_checkpoint(checkpoint_dir: Path, name: str) -> Path | None:
    """The newest checkpoint of the run that can be read (last.ckpt first, then the periodic
    ones, newest first); None when the run left none (killed before its first checkpoint).

    A checkpoint cut short (a full disk, a kill mid-write) is named and passed over; when
    none can be read, the run is not silently restarted: force=true starts it afresh.
    """
    candidates = sorted(checkpoint_dir.glob("*.ckpt"), key=lambda p: (p.name != "last.ckpt", -p.stat().st_mtime))
    unreadable = []
    for path in candidates:
        try:
            checkpoint_iteration(path)
        except Exception as exc:  # noqa: BLE001 - torch.load fails in many ways on a cut file
            unreadable.append(f"{path.name} ({type(exc).__name__})")
            continue
        if unreadable:
            log.warning(f"{name}: cannot read {', '.join(unreadable)}; resuming from {path.name} instead")
        return path
    if unreadable:
        raise ResdegError(
            f"{name}: no checkpoint of this run can be read ({', '.join(unreadable)} in {checkpoint_dir}); "
            "rerun with force=true to start the run afresh"
        )
    return None
